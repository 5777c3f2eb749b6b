# The Galley image on the debootstrap base with a host-built binary (deploy/docker/Dockerfile's
# `prebuilt` target, minus the registry base image this machine cannot pull).
FROM localhost/debian-base:bookworm
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 galley \
    && useradd --system --uid 10001 --gid galley --home-dir /var/lib/galley --no-create-home galley \
    && mkdir -p /var/lib/galley && chown galley:galley /var/lib/galley
WORKDIR /srv/galley
COPY config/ ./config/
ARG GALLEY_BINARY=target/containers/galley
COPY ${GALLEY_BINARY} /usr/local/bin/galley
ENV GALLEY_PROFILE=production
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --retries=3 CMD ["galley", "health", "http://127.0.0.1:8080/health/ready"]
USER 10001:10001
ENTRYPOINT ["galley"]
CMD ["serve", "--bind", "0.0.0.0:8080", "--data-dir", "/var/lib/galley"]
