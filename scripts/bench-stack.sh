#!/usr/bin/env bash
# The local stack's numbers (issue 13), in one run, loopback only:
#
#   scripts/bench-stack.sh [duration-seconds] [connections]
#
# `galley stack up` in a fresh temp state directory (cold: CA, OpenBao initialised, RabbitMQ node
# created), `down`, `up` again (warm: the same state), then the resident memory of every component
# (the process groups of the pids `status --json` reports), and `GET /recipes?limit=20` with wrk through nginx (HTTPS) and
# straight at recipes-api (HTTP, the address in status): req/s of each and nginx's as a ratio of direct.
# Both runs share the machine's load, so the ratio is what to compare. Needs the release build and
# what `galley stack` needs (redis-server, rabbitmq-server, nginx, scripts/python-tools.sh), and wrk.
set -euo pipefail

duration="${1:-5}"
connections="${2:-32}"
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
command -v wrk >/dev/null 2>&1 || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p galley --bin galley
galley="$target/release/galley"

state="$(mktemp -d)"
cleanup() {
  "$galley" stack --state-dir "$state" down --grace 5 >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
https_port="$(free_port)"
http_port="$(free_port)"
stack() { "$galley" stack --state-dir "$state" "$@"; }
seconds() { python3 -c 'import time; print(f"{time.monotonic():.3f}")'; }

stack init >/dev/null
start="$(seconds)"
stack up --https-port "$https_port" --http-port "$http_port" >/dev/null
cold="$(python3 -c "print(f'{$(seconds) - $start:.1f}')")"
stack down --grace 5 >/dev/null
start="$(seconds)"
stack up --https-port "$https_port" --http-port "$http_port" >/dev/null
warm="$(python3 -c "print(f'{$(seconds) - $start:.1f}')")"

report="$(stack status --json)"
# Each component runs as its own process group (RabbitMQ's pid is a launcher script; nginx has workers):
# the resident memory of every process of the group is summed (shared pages counted once per process).
memory="$(python3 - "$report" <<'PY'
import json, os, sys
report = json.loads(sys.argv[1])
groups = {}
for entry in os.listdir("/proc"):
    if not entry.isdigit():
        continue
    try:
        with open(f"/proc/{entry}/stat") as stat:
            pgrp = int(stat.read().rsplit(")", 1)[1].split()[2])
        with open(f"/proc/{entry}/status") as status:
            rss = next((int(l.split()[1]) for l in status if l.startswith("VmRSS:")), 0)
    except (OSError, ValueError, IndexError):
        continue
    groups[pgrp] = groups.get(pgrp, 0) + rss
total = 0
rows = []
for component in report["components"]:
    rss = groups.get(component.get("pid") or -1, 0) // 1024
    total += rss
    rows.append(f"{component['name']}={rss}")
print(f"{total} MiB ({' '.join(rows)})")
PY
)"
direct="$(python3 -c "
import json, sys
report = json.loads(sys.argv[1])
print(next(c['address'] for c in report['components'] if c['name'] == 'recipes-api'))" "$report")"

wrk_rps() { wrk -t2 -c"$connections" -d"${duration}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
# Warm both paths (TLS sessions, the cache), then measure each once.
wrk -t1 -c4 -d1s "https://localhost:$https_port/recipes?limit=20" >/dev/null
wrk -t1 -c4 -d1s "http://$direct/recipes?limit=20" >/dev/null
through_nginx="$(wrk_rps "https://localhost:$https_port/recipes?limit=20")"
straight="$(wrk_rps "http://$direct/recipes?limit=20")"
ratio="$(python3 -c "print(f'{100 * $through_nginx / $straight:.0f}%')")"

echo "stack up: cold ${cold} s, warm ${warm} s"
echo "resident memory of the stack: $memory"
echo "GET /recipes?limit=20, ${duration} s, ${connections} connections: through nginx (HTTPS) ${through_nginx}/s," \
  "direct (HTTP) ${straight}/s: nginx at ${ratio} of direct"
