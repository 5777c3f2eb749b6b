#!/usr/bin/env bash
# Load-tests the hot read paths of the release build with wrk, on loopback only.
#
#   scripts/bench.sh [duration-seconds] [connections]
#
# Starts `galley serve` on a free port with a fresh data directory (50 seeded recipes), then measures
# GET /recipes?limit=20, GET /recipes/{id}, an authenticated GET /auth/me and POST /auth/signin (whose
# cost is Argon2id by design). Bounded: each run lasts the given duration (default 10 s).
set -euo pipefail

duration="${1:-10}"
connections="${2:-64}"
threads=2
root="$(cd "$(dirname "$0")/.." && pwd)"

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is not installed; installing it from Debian's packages" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; else sudo apt-get install -y -qq wrk; fi
fi

cargo build --release --quiet -p galley --manifest-path "$root/Cargo.toml"
binary="${CARGO_TARGET_DIR:-$root/target}/release/galley"

data="$(mktemp -d)"
log="$data/galley.log"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
RUST_LOG=warn GALLEY_CONFIG_DIR="$data/none" "$binary" serve --bind "127.0.0.1:$port" --data-dir "$data" >"$log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$base/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/health/ready" >/dev/null

id="$(curl -fsS "$base/recipes?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')"

run() {
  local path="$1"; shift
  echo "== GET $path${1:+ (authenticated)}"
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "$@" "$base$path" | grep -E 'Requests/sec|Latency|50%|99%|Transfer'
}
echo "galley release build, $connections connections, $threads wrk threads, ${duration}s per endpoint, $(nproc) cores"
run "/recipes?limit=20"
run "/recipes/$id"

password='correct horse!'
curl -fsS -X POST "$base/auth/signup" -H 'content-type: application/json' \
  -d "{\"email\":\"bench@example.com\",\"username\":\"bench\",\"password\":\"$password\"}" >/dev/null
token="$(curl -fsS -X POST "$base/auth/signin" -H 'content-type: application/json' \
  -d "{\"username\":\"bench\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
run "/auth/me" -H "Authorization: Bearer $token"

# Sign-in is CPU-bound on purpose (Argon2id, 19 MiB, t=2): measure it with as many connections as cores.
cat >"$data/signin.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"bench","password":"$password"}'
LUA
echo "== POST /auth/signin ($(nproc) connections)"
wrk -t1 -c"$(nproc)" -d"${duration}s" --latency -s "$data/signin.lua" "$base/auth/signin" | grep -E 'Requests/sec|Latency|50%|99%|Non-2xx'
