#!/usr/bin/env bash
# Measures registry-sync end to end and prints ONE JSON object on stdout:
#   promotion_to_serving_s  `champion` set in MLflow → first answer from that version through
#                           the gateway (registry-sync polls every 0.5 s here, no webhook)
#   bake_s                  `build-edge.sh bake` of the same bundle, timed on its own
#   swap_requests, swap_failed_requests
#                           wrk through the gateway (2 connections, SWAP_SECONDS) while the
#                           alias moves and the gateway swaps instances
#   direct_p50_ms, gateway_p50_ms, gateway_rps
#                           wrk, same request, one connection, against the serving
#                           `wasmtime serve` itself and then through the gateway; rps with 8
#   generic_wasm_bytes, baked_wasm_bytes
#   promotion_idle_s        the same as promotion_to_serving_s for a third version, with no
#                           load running (the swap figure above has wrk competing for the 2 cores)
#   rollback_to_serving_s   `champion` moved back to the first version, whose baked component
#                           registry-sync kept: no download, no bake, only the instance start
#
# The sync log's per-step timings (download, evaluation, bake, instance start) go to stderr.
#
# It starts its own MLflow (sqlite in a temp dir, a free loopback port), trains the real 16k
# bundle once with the release trainer (cached in $CACHE/bench-sync/), registers it twice
# (two versions to swap between) and runs the release `registry-sync serve`.
#
#   scripts/bench-sync.sh            # SWAP_SECONDS=25 BENCH_SECONDS=5 by default
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SWAP_SECONDS="${SWAP_SECONDS:-25}"
BENCH_SECONDS="${BENCH_SECONDS:-5}"
DATA="$SHARED_DATA/stackoverflow16k"
[ -f "$DATA/train.csv.gz" ] || die "the shared data is missing at \`$DATA\` (set STACKTAG_SHARED_DATA)"
command -v wrk >/dev/null || die "wrk is missing: run scripts/setup.sh"
need_wasmtime

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-sync.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  # registry-sync's `wasmtime serve` children (recorded in its state dir).
  for f in "$WORK"/sync/pids/*; do [ -f "$f" ] && kill "$(basename "$f")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
secs() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", e - s }'; }

log "release builds"
# Release: the figures are the service at its best (docs/benchmarks.md).
cargo build --release --locked --quiet -p trainer -p registry-sync -p stacktag
[ -f "$EDGE_WASM" ] || bash scripts/build-edge.sh build
TRAINER="$TARGET_DIR/release/trainer"
SYNC="$TARGET_DIR/release/registry-sync"

# --- MLflow, started as the loop and the tests start it (`stacktag mlflow`) ---------------------
port="$(free_port)"
export MLFLOW_TRACKING_URI="http://127.0.0.1:$port"
"$TARGET_DIR/release/stacktag" mlflow --dir "$WORK/mlflow" --port "$port" 2>"$WORK/mlflow.log" &
PIDS+=("$!")
wait_http "$MLFLOW_TRACKING_URI/health" 120 "MLflow" || die "MLflow did not start (log: $WORK/mlflow/server.log)"

# --- the 16k bundle, trained once, registered twice -------------------------------------------
MODEL=bench-sync
BUNDLE="$CACHE/bench-sync/bundle16k"
register() {
  # `--register` logs a run and registers a new version with alias `challenger`.
  "$TRAINER" train --data "$DATA/train.csv.gz" --eval "$DATA/test.csv.gz" --out "$1" --register \
    --experiment bench-sync --registered-model "$MODEL" >&2
}
api() { curl -fsS "$MLFLOW_TRACKING_URI/api/2.0/mlflow/$1" "${@:2}"; }
challenger() { api "registered-models/alias?name=$MODEL&alias=challenger" | jq -r .model_version.version; }
set_champion() {
  api registered-models/alias -X POST -H 'content-type: application/json' \
    -d "{\"name\":\"$MODEL\",\"alias\":\"champion\",\"version\":\"$1\"}" >/dev/null
}
log "training and registering the 16k model twice (release trainer)"
register "$WORK/bundle-a"
v1="$(challenger)"
register "$WORK/bundle-b"
v2="$(challenger)"
register "$WORK/bundle-c"
v3="$(challenger)"
mkdir -p "$(dirname "$BUNDLE")" && rm -rf "$BUNDLE" && cp -r "$WORK/bundle-b" "$BUNDLE"
set_champion "$v1"

# --- bake_s, on its own ----------------------------------------------------------------------
start="$(date +%s.%N)"
bash scripts/build-edge.sh bake --bundle "$BUNDLE" --out "$WORK/baked.wasm" 2>/dev/null
bake_s="$(secs "$start" "$(date +%s.%N)")"

# --- registry-sync serve, champion = v1 -----------------------------------------------------
gport="$(free_port)"
GATEWAY="http://127.0.0.1:$gport"
"$SYNC" serve --eval "$DATA/test.csv.gz" --generic-component "$EDGE_WASM" --registered-model "$MODEL" --state-dir "$WORK/sync" \
  --listen "127.0.0.1:$gport" --poll-interval 0.5 >"$WORK/sync.log" 2>&1 &
PIDS+=("$!")
served() { served_version "$GATEWAY"; }
# `promote_to VERSION` → seconds from the alias move to the first answer from VERSION.
promote_to() {
  local start deadline
  start="$(date +%s.%N)"
  set_champion "$1"
  deadline=$(($(date +%s) + 120))
  until [ "$(served)" = "$1" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "version $1 never served (log: $WORK/sync.log)"
    sleep 0.02
  done
  secs "$start" "$(date +%s.%N)"
}
deadline=$(($(date +%s) + 300))
until [ "$(served)" = "$v1" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || die "version $v1 never served (log: $WORK/sync.log)"
  sleep 0.2
done

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
wrk.body = "how do i sort a dictionary by value? i have a dict of names and scores and want the top ten. sorted(d.items(), key=lambda kv: kv[1]) gives tuples, is there a better way?"
function done(summary, latency, requests)
  local e = summary.errors
  local failed = e.connect + e.read + e.write + e.status + e.timeout
  local out = assert(io.open(os.getenv("WRK_RESULT"), "w"))
  out:write(string.format("%.3f %.1f %d %d\n", latency:percentile(50) / 1000,
    summary.requests / (summary.duration / 1e6), summary.requests, failed))
  out:close()
end
LUA
# `bench URL CONNECTIONS SECONDS` → "p50_ms rps requests failed"
bench() {
  WRK_RESULT="$WORK/wrk.out" wrk -t1 -c"$2" -d"$3s" --timeout 30s -s "$WORK/post.lua" "$1/classify" >/dev/null
  cat "$WORK/wrk.out"
}

# --- the swap under load, and promotion_to_serving_s ---------------------------------------
log "moving champion to $v2 under load through the gateway (${SWAP_SECONDS} s)"
WRK_RESULT="$WORK/swap.out" wrk -t1 -c2 -d"${SWAP_SECONDS}s" --timeout 30s -s "$WORK/post.lua" \
  "$GATEWAY/classify" >/dev/null &
WRK_PID=$!
sleep 1
promotion_s="$(promote_to "$v2")"
wait "$WRK_PID"
read -r _ _ swap_requests swap_failed <"$WORK/swap.out"

# --- direct vs gateway, same request, same instance ------------------------------------------
direct="$(sed -n 's#^Serving HTTP on http://\([0-9.:]*\)/.*#\1#p' "$WORK/sync/models/$v2/edge.wasm.log" | tail -n 1)"
[ -n "$direct" ] || die "cannot find the instance's address in $WORK/sync/models/$v2/edge.wasm.log"
log "latency: direct http://$direct vs the gateway, ${BENCH_SECONDS} s each"
read -r direct_p50 _ _ _ < <(bench "http://$direct" 1 "$BENCH_SECONDS")
read -r gateway_p50 _ _ _ < <(bench "$GATEWAY" 1 "$BENCH_SECONDS")
read -r _ gateway_rps _ _ < <(bench "$GATEWAY" 8 "$BENCH_SECONDS")

# --- promotion with nothing else running, then a rollback ------------------------------------
sleep 2 # the old instance drains and stops
log "moving champion to $v3 with no load"
promotion_idle_s="$(promote_to "$v3")"
sleep 2
log "rolling champion back to $v1"
rollback_s="$(promote_to "$v1")"
grep 'stacktag::sync' "$WORK/sync.log" >&2 || true

jq -n --arg model "$MODEL" \
  --argjson promotion "$promotion_s" --argjson bake "$bake_s" \
  --argjson swap_requests "$swap_requests" --argjson swap_failed "$swap_failed" \
  --argjson direct "$direct_p50" --argjson gateway "$gateway_p50" --argjson rps "$gateway_rps" \
  --argjson idle "$promotion_idle_s" --argjson rollback "$rollback_s" \
  --argjson generic "$(stat -c %s "$EDGE_WASM")" --argjson baked "$(stat -c %s "$WORK/sync/models/$v2/edge.wasm")" \
  '{promotion_to_serving_s: $promotion, bake_s: $bake, swap_requests: $swap_requests,
    swap_failed_requests: $swap_failed, direct_p50_ms: $direct, gateway_p50_ms: $gateway,
    gateway_rps: $rps, generic_wasm_bytes: $generic, baked_wasm_bytes: $baked,
    promotion_idle_s: $idle, rollback_to_serving_s: $rollback, poll_interval_s: 0.5}' -c
