#!/usr/bin/env bash
# Podman on machines without a Docker engine or a registry (docs/OPERATIONS.md, "Containers"):
#   scripts/containers.sh env            print the exports that point podman at the project-local config
#   scripts/containers.sh base           localhost/debian-base:bookworm (debootstrap; cached with podman save)
#   scripts/containers.sh image [BIN]    localhost/galley:latest from deploy/docker/Dockerfile's `prebuilt` target
#   scripts/containers.sh up [BIN]       build the local images and start deploy/compose/compose.local.yaml
#   scripts/containers.sh down           stop it, remove its containers, networks and volumes, undo side effects
# Configuration lives in $GALLEY_CONTAINERS_DIR (default .tools/containers): containers.conf (runc, the
# machine's nofile limit, netavark), storage.conf (overlay storage under that directory). Nothing
# system-wide changes except what podman's bridge networks do, which `down` undoes: net.ipv4.ip_forward,
# the nft tables `ip nat`/`ip filter`, the /run/netns bind mount (states recorded before the first `up`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"

dir="${GALLEY_CONTAINERS_DIR:-$PWD/.tools/containers}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/galley"
project="${GALLEY_COMPOSE_PROJECT:-galley-local}"
compose_bin="$PWD/.tools/venv/bin/podman-compose"
say() { echo "containers: $*" >&2; }

configure() {
  mkdir -p "$dir/storage" "$dir/run" "$dir/tls"
  cat > "$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
CONF
  cat > "$dir/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
CONF
  export CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf"
}

have_image() { podman image exists "$1"; }

base() {
  configure
  have_image localhost/debian-base:bookworm && return 0
  mkdir -p "$cache"
  if [ -f "$cache/debian-base-bookworm.tar" ]; then
    podman load -q -i "$cache/debian-base-bookworm.tar" >/dev/null && return 0
  fi
  local mirror rootfs
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs="$(mktemp -d)"
  say "debootstrap bookworm from $mirror (about a minute, once)"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  # Let `apt-get install` in image builds use the same mirror.
  echo "deb $mirror bookworm main" > "$rootfs/etc/apt/sources.list"
  tar -C "$rootfs" -c . | podman import - localhost/debian-base:bookworm >/dev/null
  rm -rf "$rootfs"
  podman save -q -o "$cache/debian-base-bookworm.tar" localhost/debian-base:bookworm
}

image() { # image [BINARY]: the prebuilt target on the debootstrap base instead of debian:bookworm-slim
  base
  local binary="${1:-target/release/galley}"
  mkdir -p target/containers
  strip -o target/containers/galley "$binary"
  podman build -q --format docker --pull=never --target prebuilt \
    --build-arg RUNTIME_IMAGE=localhost/debian-base:bookworm \
    --build-arg GALLEY_BINARY=target/containers/galley \
    -t localhost/galley:latest -f deploy/docker/Dockerfile . >/dev/null
  podman image inspect localhost/galley:latest --format 'localhost/galley:latest {{.Size}} bytes'
}

record_host_state() {
  [ -f "$dir/host-state" ] && return 0
  {
    echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
    echo "nat=$(nft list table ip nat >/dev/null 2>&1 && echo 1 || echo 0)"
    echo "filter=$(nft list table ip filter >/dev/null 2>&1 && echo 1 || echo 0)"
    echo "netns=$(mountpoint -q /run/netns 2>/dev/null && echo 1 || echo 0)"
  } > "$dir/host-state"
}

restore_host_state() {
  [ -f "$dir/host-state" ] || return 0
  # shellcheck disable=SC1091
  . "$dir/host-state"
  echo "$ip_forward" > /proc/sys/net/ipv4/ip_forward 2>/dev/null || true
  [ "$nat" = 0 ] && nft delete table ip nat 2>/dev/null || true
  [ "$filter" = 0 ] && nft delete table ip filter 2>/dev/null || true
  [ "$netns" = 0 ] && mountpoint -q /run/netns 2>/dev/null && umount /run/netns 2>/dev/null || true
  rm -f "$dir/host-state"
}

tls() { # a CA and a localhost certificate it signs (rustls refuses a self-signed CA as a server certificate)
  [ -f "$dir/tls/tls.crt" ] && [ -f "$dir/ca/ca.crt" ] && return 0
  # The CA stays outside the directory nginx mounts.
  mkdir -p "$dir/ca" && chmod 0700 "$dir/ca"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Galley local compose CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout "$dir/ca/ca.key" -out "$dir/ca/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$dir/tls/tls.key" \
    -out "$dir/tls/tls.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' \
    > "$dir/tls/tls.ext"
  openssl x509 -req -in "$dir/tls/tls.csr" -CA "$dir/ca/ca.crt" -CAkey "$dir/ca/ca.key" -CAcreateserial -CAserial "$dir/ca/ca.srl" \
    -days 30 -extfile "$dir/tls/tls.ext" -out "$dir/tls/tls.crt" 2>/dev/null
  rm -f "$dir/tls/tls.csr" "$dir/tls/tls.ext"
  # The nginx master reads the key as root; the mount is read-only.
  chmod 0644 "$dir/tls/tls.key"
  chmod 0600 "$dir/ca/ca.key"
}

compose() {
  # GALLEY_COMPOSE_OVERRIDES: more compose files (space-separated paths) layered over the local one.
  local files=(-f deploy/compose/compose.local.yaml) override
  for override in ${GALLEY_COMPOSE_OVERRIDES:-}; do files+=(-f "$override"); done
  GALLEY_COMPOSE_PROJECT="$project" GALLEY_TLS_DIR="$dir/tls" \
    GALLEY_COOKIE_KEY="${GALLEY_COOKIE_KEY:-$(cat "$dir/cookie-key" 2>/dev/null || true)}" \
    "$compose_bin" -p "$project" "${files[@]}" "$@"
}

up() {
  base
  local binary="${1:-target/release/galley}"
  mkdir -p target/containers
  strip -o target/containers/galley "$binary"
  tls
  [ -f "$dir/cookie-key" ] || openssl rand -base64 48 | tr -d '\n' > "$dir/cookie-key"
  record_host_state
  # Docker format: the OCI format podman builds by default silently drops HEALTHCHECK.
  compose --podman-build-args="--format docker" build >/dev/null
  compose up -d
  say "https://localhost:${GALLEY_HTTPS_PORT:-8443}/ (CA: $dir/ca/ca.crt)"
}

down() {
  configure
  compose down -v --remove-orphans || true
  # Each build of a changed binary leaves the previous image untagged; keep only what is tagged.
  podman image prune -f >/dev/null 2>&1 || true
  restore_host_state
}

case "${1:-}" in
  env) configure; echo "export CONTAINERS_CONF=$CONTAINERS_CONF CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF" ;;
  base) base ;;
  image) shift; image "$@" ;;
  up) shift; up "$@" ;;
  down) down ;;
  *) sed -n '2,7p' "$0" >&2; exit 2 ;;
esac
