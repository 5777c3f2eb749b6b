# Redis from Debian's package, on the debootstrap base (no registry here: docs/OPERATIONS.md).
FROM localhost/debian-base:bookworm
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends redis-server && rm -rf /var/lib/apt/lists/*
# The package creates the user; its uid is whatever the install picked.
# hadolint ignore=DL3066
USER redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
