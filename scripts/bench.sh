#!/usr/bin/env bash
# The read-path benchmark: Galley against its ceiling, in one run, on loopback only.
#
#   scripts/bench.sh [duration-seconds] [connections] [rounds]
#
# Starts `galley serve` (release build) on a free port with a fresh data directory (50 seeded
# recipes, and entries ingested from a loopback feed), captures the exact bytes Galley answers each
# benchmarked request with, and starts `galley-bench-ceiling`: a bare axum server replaying those
# bytes. Then, for each route, wrk runs against Galley and the ceiling alternately (`rounds` times,
# best of each kept) and the table shows req/s, p50/p99 and Galley's rate as a ratio of the
# ceiling's. Ratios, not absolute numbers, are what to compare across runs: both sides share the
# machine's load. Afterwards the same routes are measured with `cache.backend = redis` (the local
# Redis, a unique key prefix), and sign-in is compared with raw Argon2id hashing.
# Bounded: every wrk run lasts `duration` seconds (default 5).
#
# GALLEY_BENCH_ENV adds environment assignments to every `galley serve` it starts, e.g. to measure the
# cost of telemetry: GALLEY_BENCH_ENV="RUST_LOG=info GALLEY__TELEMETRY__METRICS=false" (RUST_LOG is
# `warn` otherwise).
set -euo pipefail

duration="${1:-5}"
connections="${2:-64}"
rounds="${3:-2}"
threads=2
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk is not installed; installing it from Debian's packages" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; else sudo apt-get install -y -qq wrk; fi
fi

cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p galley -p galley-bench-ceiling --bins
galley="$target/release/galley"
ceiling_bin="$target/release/galley-bench-ceiling"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${redis_prefix:-}" ]; then
    redis-cli -h 127.0.0.1 -p 6379 --scan --pattern "${redis_prefix}*" 2>/dev/null | xargs -r redis-cli -h 127.0.0.1 -p 6379 del >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# A feed of 100 entries on a loopback static server, for /rss/entries.
mkdir -p "$work/feeds"
python3 - "$work/feeds/bench.xml" <<'PY'
import sys
items = "".join(
    f"<item><title>Entry {i}</title><link>https://example.com/posts/{i}</link>"
    f"<guid>https://example.com/posts/{i}</guid><pubDate>Mon, 0{1 + i % 9} Nov 2026 10:00:00 GMT</pubDate>"
    f"<description>Summary of entry {i}, long enough to look like a real one.</description></item>"
    for i in range(100))
open(sys.argv[1], "w").write(f'<?xml version="1.0"?><rss version="2.0"><channel><title>Bench</title>'
                             f'<link>https://example.com/</link><description>d</description>{items}</channel></rss>')
PY
feed_port="$(free_port)"
python3 -m http.server "$feed_port" --bind 127.0.0.1 --directory "$work/feeds" >/dev/null 2>&1 &
pids+=($!)

# start_galley NAME [ENV=VALUE...]: starts `galley serve` with a fresh data dir; sets $base.
start_galley() {
  local name="$1"; shift
  local port; port="$(free_port)"
  mkdir -p "$work/$name"
  env RUST_LOG=warn GALLEY_CONFIG_DIR="$work/none" GALLEY__FETCH__ALLOW_PRIVATE_HOSTS='["127.0.0.1/32"]' \
    GALLEY__LIMITS__ENABLED=false ${GALLEY_BENCH_ENV:-} "$@" \
    "$galley" serve --bind "127.0.0.1:$port" --data-dir "$work/$name" >"$work/$name.log" 2>&1 &
  pids+=($!)
  base="http://127.0.0.1:$port"
  for _ in $(seq 1 200); do curl -fsS "$base/health/ready" >/dev/null 2>&1 && break; sleep 0.05; done
  curl -fsS "$base/health/ready" >/dev/null || { cat "$work/$name.log" >&2; exit 1; }
}

# prepare: a user, a token, ingested entries; sets $id, $token.
prepare() {
  local password='correct horse!'
  curl -fsS -X POST "$base/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"bench@example.com\",\"username\":\"bench\",\"password\":\"$password\"}" >/dev/null
  token="$(curl -fsS -X POST "$base/auth/signin" -H 'content-type: application/json' \
    -d "{\"username\":\"bench\",\"password\":\"$password\"}" | json_field '["access_token"]')"
  local job
  job="$(curl -fsS -X POST "$base/rss/fetch" -H "authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"url\":\"http://127.0.0.1:$feed_port/bench.xml\"}" | json_field '["job_id"]')"
  for _ in $(seq 1 200); do
    [ "$(curl -fsS "$base/rss/jobs/$job" -H "authorization: Bearer $token" | json_field '["status"]')" = done ] && break
    sleep 0.05
  done
  id="$(curl -fsS "$base/recipes?limit=1" | json_field '["items"][0]["id"]')"
}

# capture NAME PATH [CURL-ARGS...]: records Galley's answer to PATH as ceiling route /NAME.
capture() {
  local name="$1" path="$2"; shift 2
  local headers="$work/capture/$name.headers" body="$work/capture/$name.body"
  mkdir -p "$work/capture"
  curl -sS -D "$headers" -o "$body" "$@" "$base$path"
  touch "$body" # curl writes no file for an empty body (a 304)
  local status content_type etag
  status="$(head -1 "$headers" | awk '{print $2}')"
  content_type="$( (grep -i '^content-type:' "$headers" || true) | head -1 | cut -d' ' -f2- | tr -d '\r')"
  etag="$( (grep -i '^etag:' "$headers" || true) | head -1 | cut -d' ' -f2- | tr -d '\r')"
  local body_file="$body"
  [ -s "$body" ] || body_file=-
  printf '/%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "${content_type:--}" "${etag:--}" "$body_file" >>"$work/manifest.tsv"
  printf -v "etag_$name" '%s' "$etag"
  printf -v "bytes_$name" '%s' "$(wc -c <"$body")"
}

# measure URL [WRK-ARGS...] → "req/s p50 p99" of the best of $rounds runs is left in $best.
wrk_once() {
  local out; out="$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "$@")"
  local rps p50 p99
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  local non2xx; non2xx="$(awk '/Non-2xx/ {print $5}' <<<"$out")"
  echo "$rps $p50 $p99 ${non2xx:-0}"
}

rows=()
# compare LABEL GOAL GALLEY-PATH CEILING-NAME [WRK-ARGS...]
compare() {
  local label="$1" goal="$2" path="$3" name="$4"; shift 4
  local g_best="0 - - 0" c_best="0 - - 0"
  for _ in $(seq 1 "$rounds"); do
    local g c
    g="$(wrk_once "$@" "$base$path")"
    c="$(wrk_once "$ceiling/$name")"
    awk -v a="$g" -v b="$g_best" 'BEGIN {split(a,x," "); split(b,y," "); exit !(x[1] > y[1])}' && g_best="$g"
    awk -v a="$c" -v b="$c_best" 'BEGIN {split(a,x," "); split(b,y," "); exit !(x[1] > y[1])}' && c_best="$c"
  done
  rows+=("$label|$goal|$g_best|$c_best")
}

print_table() {
  printf '\n%-44s %9s %8s %8s %9s %8s %8s %7s %5s\n' "route ($1)" "galley/s" "p50" "p99" "ceiling/s" "p50" "p99" "ratio" "goal"
  for row in "${rows[@]}"; do
    IFS='|' read -r label goal g c <<<"$row"
    read -r g_rps g_p50 g_p99 g_bad <<<"$g"
    read -r c_rps c_p50 c_p99 _ <<<"$c"
    local ratio; ratio="$(awk -v a="$g_rps" -v b="$c_rps" 'BEGIN {printf "%.0f%%", (b > 0 ? 100 * a / b : 0)}')"
    local flag=""; [ "${g_bad:-0}" != 0 ] && flag="  (non-2xx/3xx answers: $g_bad)"
    printf '%-44s %9.0f %8s %8s %9.0f %8s %8s %7s %5s%s\n' "$label" "$g_rps" "$g_p50" "$g_p99" "$c_rps" "$c_p50" "$c_p99" "$ratio" "$goal" "$flag"
  done
  rows=()
}

echo "galley release build vs bare-axum ceiling: $connections connections, $threads wrk threads, ${duration}s x $rounds rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

start_galley memory
prepare
: >"$work/manifest.tsv"
capture list "/recipes?limit=20"
capture item "/recipes/$id"
capture entries "/rss/entries?limit=20"
capture not_modified "/recipes/$id" -H "If-None-Match: $etag_item"
capture list_not_modified "/recipes?limit=20" -H "If-None-Match: $etag_list"
ceiling_port="$(free_port)"
"$ceiling_bin" "127.0.0.1:$ceiling_port" "$work/manifest.tsv" &
pids+=($!)
ceiling="http://127.0.0.1:$ceiling_port"
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$ceiling/item" 2>/dev/null && break; sleep 0.05; done
echo "bodies: list $bytes_list B, item $bytes_item B, entries $bytes_entries B; list ETag ${etag_list:-none}"

compare "GET /recipes?limit=20 (cache warm)" "70%" "/recipes?limit=20" list
compare "GET /recipes/{id}" "70%" "/recipes/$id" item
compare "GET /rss/entries?limit=20" "50%" "/rss/entries?limit=20" entries
compare "GET /recipes/{id} If-None-Match → 304" "80%" "/recipes/$id" not_modified -H "If-None-Match: $etag_item"
if [ -n "${etag_list:-}" ]; then
  compare "GET /recipes?limit=20 If-None-Match → 304" "80%" "/recipes?limit=20" list_not_modified -H "If-None-Match: $etag_list"
fi
print_table "cache.backend = memory"

redis_prefix="galley-bench-$$-"
start_galley redis GALLEY__CACHE__BACKEND=redis GALLEY__CACHE__REDIS__PREFIX="$redis_prefix"
prepare
before="$(redis-cli -h 127.0.0.1 info stats | awk -F: '/total_commands_processed/ {print $2}' | tr -d '\r')"
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$base/recipes/$id"; done
after="$(redis-cli -h 127.0.0.1 info stats | awk -F: '/total_commands_processed/ {print $2}' | tr -d '\r')"
echo "redis mode: $(( (after - before - 1) / 100 )) Redis commands per warm GET /recipes/{id} (100 requests; counts every client of this Redis)"
compare "GET /recipes?limit=20 (cache warm)" "-" "/recipes?limit=20" list
compare "GET /recipes/{id}" "-" "/recipes/$id" item
print_table "cache.backend = redis"

# Fixed costs: idle memory and time to ready of a fresh `galley serve`; sign-in against raw Argon2id.
cores="$(nproc)"
start_galley budgets # a fresh data dir: migrations, seeding, key generation
prepare
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
started_ns="$(date +%s%N)"
start_galley budgets # the same data dir, warm
ready_ms=$(( ($(date +%s%N) - started_ns) / 1000000 ))
sleep 1
rss_kb="$(awk '/VmRSS/ {print $2}' "/proc/${pids[-1]}/status")"
cat >"$work/signin.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"bench","password":"correct horse!"}'
LUA
# Sign-in throughput: with one connection per core a hashing slot idles while its request does the
# rest of its work (signing, store writes, the round trip); with two per core the pool stays busy,
# which is the throughput the goal is about. Both are printed.
signin_at() { wrk -t1 -c"$1" -d"${duration}s" -s "$work/signin.lua" "$base/auth/signin" | awk '/Requests\/sec/ {print $2}'; }
signin="$(signin_at "$cores")"
signin_saturated="$(signin_at $((2 * cores)))"
raw="$("$ceiling_bin" argon2 "$duration" "$cores")"
echo
echo "budgets: idle RSS $((rss_kb / 1024)) MiB (budget 30), ready in ${ready_ms} ms on a warm data dir (budget 300; includes process start and polling every 50 ms)"
awk -v a="$signin" -v s="$signin_saturated" -v b="$raw" -v c="$cores" 'BEGIN {
  printf "sign-in: %.1f/s with %d connections, %.1f/s with %d, vs raw Argon2id %.1f/s on %d threads: %.0f%% / %.0f%% (goal: within 10%%, i.e. >= 90%%)\n", a, c, s, 2 * c, b, c, 100 * a / b, 100 * s / b }'
