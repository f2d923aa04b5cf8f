#!/usr/bin/env bash
# Bakes a bundle into the generic edge component, then benchmarks the result under
# `wasmtime serve` on loopback with wrk, in both instance modes, and prints ONE JSON object:
#
#   {"fresh_p50_ms", "fresh_p99_ms", "fresh_rps", "reuse_p50_ms", "reuse_p99_ms", "reuse_rps",
#    "generic_wasm_bytes", "baked_wasm_bytes", "bake_s"}
#
#   scripts/bench-edge.sh [--build] [--bundle DIR]
#
#   --build    compile the generic component first (scripts/build-edge.sh build); without it,
#              the one already built is used
#   --bundle   the bundle to bake and serve (default: STACKTAG_BUNDLE_DIR; `tiny-fixture` works)
#
# bake_s is the whole `scripts/build-edge.sh bake` (wizer, snapshot check, rename): the cost of
# shipping a new model. fresh = `--max-instance-reuse-count 1`: a new instance per request, the
# worst case and what hosts that never reuse do. reuse = `--max-instance-reuse-count 128`: the
# wasmtime default for WASIp3 components, set explicitly because this component is WASIp2
# (where wasmtime's default is 1). Each mode: POST /classify with one real question,
# STACKTAG_BENCH_SECONDS (default 10) after a 2 s warm-up, STACKTAG_BENCH_CONNECTIONS (default 2)
# connections on 2 wrk threads. Progress goes to stderr; stdout holds only the JSON.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build=0
bundle="${STACKTAG_BUNDLE_DIR:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=1 ;;
    --bundle) [ $# -ge 2 ] || die "\`--bundle\` needs a directory"; bundle="$2"; shift ;;
    *) die "unknown argument \`$1\` (see the header of $0)" ;;
  esac
  shift
done
[ -n "$bundle" ] || die "no bundle to bench: pass \`--bundle DIR\` or set STACKTAG_BUNDLE_DIR"
SECONDS_PER_MODE="${STACKTAG_BENCH_SECONDS:-10}"
CONNECTIONS="${STACKTAG_BENCH_CONNECTIONS:-2}"
need_wasmtime
command -v wrk >/dev/null || die "wrk is missing: run scripts/setup.sh"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

[ "$build" = 0 ] || bash scripts/build-edge.sh build
BAKED="$WORK/baked.wasm"
start="$(date +%s.%N)"
bash scripts/build-edge.sh bake --bundle "$bundle" --out "$BAKED"
bake_s="$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')"

# Compile once, so that neither mode measures Cranelift.
"$WASMTIME" compile "$BAKED" -o "$WORK/edge.cwasm"
# wrk's `done` hook prints the figures itself, so nothing parses wrk's report.
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text": "how do i sort a dictionary by value? i have a dict of names and scores and want the top ten. sorted(d.items(), key=lambda kv: kv[1]) gives tuples, is there a better way?"}'
function done(summary, latency, requests)
  local e = summary.errors
  local failed = e.connect + e.read + e.write + e.status + e.timeout
  io.stderr:write(string.format("wrk: %d requests, %d failed\n", summary.requests, failed))
  local out = assert(io.open(os.getenv("WRK_RESULT"), "w"))
  out:write(string.format("%.3f %.3f %.1f %d\n", latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6), failed))
  out:close()
end
LUA

# Starts `wasmtime serve` in a mode, benchmarks it, writes "p50_ms p99_ms rps" to $WORK/result.
run_mode() {
  local reuse="$1"
  "$WASMTIME" serve -Scli --addr 127.0.0.1:0 --allow-precompiled \
    --max-instance-reuse-count "$reuse" "$WORK/edge.cwasm" 2> "$WORK/serve.log" > /dev/null &
  SERVER_PID=$!
  local addr=""
  for _ in $(seq 1 200); do
    addr="$(sed -n 's#^Serving HTTP on http://\([0-9.:]*\)/.*#\1#p' "$WORK/serve.log")"
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || die "wasmtime serve did not start: $(cat "$WORK/serve.log")"
  local status
  status="$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -d '{"text":"how do i sort a list"}' "http://$addr/classify")"
  [ "$status" = 200 ] || die "POST /classify answered $status"
  WRK_RESULT="$WORK/warmup" wrk -t2 -c"$CONNECTIONS" -d2s -s "$WORK/post.lua" \
    "http://$addr/classify" > /dev/null
  log "reuse count $reuse: ${SECONDS_PER_MODE}s at $CONNECTIONS connections"
  WRK_RESULT="$WORK/wrk" wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_MODE}s" -s "$WORK/post.lua" \
    "http://$addr/classify" >&2
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  local p50 p99 rps failed
  read -r p50 p99 rps failed < "$WORK/wrk"
  [ "$failed" = 0 ] || die "wrk saw $failed failed requests at reuse count $reuse"
  echo "$p50 $p99 $rps" > "$WORK/result"
}

run_mode 1
read -r fresh_p50 fresh_p99 fresh_rps < "$WORK/result"
run_mode 128
read -r reuse_p50 reuse_p99 reuse_rps < "$WORK/result"
printf '{"fresh_p50_ms": %s, "fresh_p99_ms": %s, "fresh_rps": %s, "reuse_p50_ms": %s, "reuse_p99_ms": %s, "reuse_rps": %s, "generic_wasm_bytes": %s, "baked_wasm_bytes": %s, "bake_s": %s}\n' \
  "$fresh_p50" "$fresh_p99" "$fresh_rps" "$reuse_p50" "$reuse_p99" "$reuse_rps" \
  "$(stat -c %s "$EDGE_WASM")" "$(stat -c %s "$BAKED")" "$bake_s"
