# nginx 1.22 from Debian's package, on the debootstrap base.
FROM localhost/debian-base:bookworm
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light && rm -rf /var/lib/apt/lists/*
EXPOSE 8080 8443
CMD ["nginx", "-c", "/etc/nginx/nginx.conf", "-g", "daemon off;"]
