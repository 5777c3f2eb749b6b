#!/usr/bin/env bash
# Makes sure the servers the test suite talks to are installed and running, so that `make test` works on
# a fresh machine. Everything stays on loopback:
#   - redis-server: the pre-started Redis on 127.0.0.1:6379 (or GALLEY_TEST_REDIS_URL), and private
#     instances the tests start and kill on free ports;
#   - prometheus (optional): promtool, to check deploy/observability/;
#   - rabbitmq-server: the broker on 127.0.0.1:5672 (or GALLEY_TEST_RABBITMQ_URL), and private nodes the
#     failure drills start, restart and stop on free ports;
#   - nginx: the `galley stack` end-to-end test runs a private instance (never the system's) in front of
#     the services on free ports;
#   - podman, runc, iptables, debootstrap, openssl, binutils (optional): the container images and the local compose stack
#     (galley/tests/containers.rs, make compose-test); without them those checks say SKIPPED.
# Missing packages are installed from Debian's archive when we are root (or can sudo); otherwise the
# script stops and says exactly what to install. MongoDB is never installed: its suites are opt-in
# (GALLEY_TEST_MONGODB_URI).
set -euo pipefail
# nginx lives in /usr/sbin, which a non-root PATH often lacks.
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "test-prerequisites: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}

apt_updated=0
ensure_package() { # ensure_package COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  say "$1 is missing; installing the Debian package $2"
  if command -v apt-get >/dev/null 2>&1; then
    if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq || true; apt_updated=1; fi
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; then
      command -v "$1" >/dev/null 2>&1 && return 0
    fi
  fi
  say "could not install $2. Install it yourself (Debian/Ubuntu: sudo apt-get install $2) and run make test again."
  exit 1
}

listening() { # listening PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for_port() { # wait_for_port PORT SECONDS NAME
  local deadline=$((SECONDS + $2))
  until listening "$1"; do
    if [ "$SECONDS" -ge "$deadline" ]; then say "$3 did not start listening on 127.0.0.1:$1 within $2 s"; exit 1; fi
    sleep 0.5
  done
}

ensure_package redis-server redis-server
ensure_package rabbitmq-server rabbitmq-server
ensure_package nginx nginx

# promtool (Debian `prometheus`, ~25 s to install) checks deploy/observability/; optional: the test
# that uses it says SKIPPED when it is missing, so a failed install does not stop the suite.
if ! command -v promtool >/dev/null 2>&1; then
  say "promtool is missing; installing the Debian package prometheus (optional)"
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq || true; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || say "could not install prometheus; the promtool checks will be skipped"
fi

for pair in podman:podman runc:runc iptables:iptables debootstrap:debootstrap openssl:openssl strip:binutils; do
  if ! command -v "${pair%%:*}" >/dev/null 2>&1; then
    say "${pair%%:*} is missing; installing the Debian package ${pair#*:} (optional: containers)"
    if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq || true; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pair#*:}" >/dev/null \
      || say "could not install ${pair#*:}; the container checks will be skipped"
  fi
done

if [ -z "${GALLEY_TEST_REDIS_URL:-}" ] && ! listening 6379; then
  say "no Redis on 127.0.0.1:6379; starting one (keeps nothing on disk)"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for_port 6379 20 "Redis"
fi

if [ -z "${GALLEY_TEST_RABBITMQ_URL:-}" ] && ! listening 5672; then
  say "no RabbitMQ on 127.0.0.1:5672; starting the machine's broker"
  as_root rabbitmq-server -detached >/dev/null 2>&1 || rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_for_port 5672 90 "RabbitMQ"
fi

# moto (local AWS: SQS, KMS) and OpenBao, in a project-local virtualenv.
"$(dirname "$0")/python-tools.sh"
