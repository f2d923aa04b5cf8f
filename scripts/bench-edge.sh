#!/usr/bin/env bash
# Benchmarks the built Spin component under `wasmtime serve` on loopback with wrk, in both
# instance modes, and prints ONE JSON object:
#
#   {"fresh_p50_ms", "fresh_p99_ms", "fresh_rps", "reuse_p50_ms", "reuse_p99_ms", "reuse_rps",
#    "wasm_bytes"}
#
#   scripts/bench-edge.sh                    # the component already built (scripts/build-edge.sh)
#   STACKTAG_BUNDLE_DIR=DIR scripts/bench-edge.sh --build   # build (and pre-initialise) first
#
# fresh = `--max-instance-reuse-count 1`: a new instance per request, the worst case and what
# hosts that never reuse do. reuse = `--max-instance-reuse-count 128`: the wasmtime default for
# WASIp3 components, set explicitly because this component is WASIp2 (where wasmtime's default
# is 1). Each mode: POST /classify with one real question, STACKTAG_BENCH_SECONDS (default 10)
# after a 2 s warm-up, STACKTAG_BENCH_CONNECTIONS (default 2) connections on 2 wrk threads.
# Progress goes to stderr; stdout holds only the JSON.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ "${1:-}" = "--build" ]; then
  bash scripts/build-edge.sh >&2
fi
WASM="${STACKTAG_EDGE_WASM:-${CARGO_TARGET_DIR:-$ROOT/target}/wasm32-wasip2/release/edge_classifier_spin.wasm}"
WASMTIME="${STACKTAG_WASMTIME:-${STACKTAG_CACHE:-$HOME/.cache/stacktag}/tools/bin/wasmtime}"
SECONDS_PER_MODE="${STACKTAG_BENCH_SECONDS:-10}"
CONNECTIONS="${STACKTAG_BENCH_CONNECTIONS:-2}"
[ -f "$WASM" ] || { echo "error: no component at \`$WASM\`: run STACKTAG_BUNDLE_DIR=DIR scripts/build-edge.sh" >&2; exit 1; }
[ -x "$WASMTIME" ] || { echo "error: no wasmtime at \`$WASMTIME\`: run scripts/setup.sh" >&2; exit 1; }
command -v wrk >/dev/null || { echo "error: wrk is missing: run scripts/setup.sh" >&2; exit 1; }

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Compile once, so that neither mode measures Cranelift.
"$WASMTIME" compile "$WASM" -o "$WORK/edge.cwasm"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"text": "how do i sort a dictionary by value? i have a dict of names and scores and want the top ten. sorted(d.items(), key=lambda kv: kv[1]) gives tuples, is there a better way?"}'
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
  [ -n "$addr" ] || { echo "error: wasmtime serve did not start:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
  local status
  status="$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    -d '{"text":"how do i sort a list"}' "http://$addr/classify")"
  [ "$status" = 200 ] || { echo "error: POST /classify answered $status" >&2; exit 1; }
  wrk -t2 -c"$CONNECTIONS" -d2s -s "$WORK/post.lua" "http://$addr/classify" > /dev/null
  wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_MODE}s" --latency -s "$WORK/post.lua" \
    "http://$addr/classify" > "$WORK/wrk.txt"
  echo "--- reuse count $reuse" >&2
  cat "$WORK/wrk.txt" >&2
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  python3 - "$WORK/wrk.txt" > "$WORK/result" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(r"^\s*%s\s+([\d.]+)(us|ms|s)\s*$" % re.escape(label), text, re.M)
    if not m:
        sys.exit(f"error: no {label} latency in wrk output")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
if re.search(r"Non-2xx or 3xx responses", text) or re.search(r"Socket errors", text):
    sys.exit("error: wrk saw failed requests:\n" + text)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(f"{ms('50%'):.3f} {ms('99%'):.3f} {rps:.1f}")
PY
}

run_mode 1
read -r fresh_p50 fresh_p99 fresh_rps < "$WORK/result"
run_mode 128
read -r reuse_p50 reuse_p99 reuse_rps < "$WORK/result"
printf '{"fresh_p50_ms": %s, "fresh_p99_ms": %s, "fresh_rps": %s, "reuse_p50_ms": %s, "reuse_p99_ms": %s, "reuse_rps": %s, "wasm_bytes": %s}\n' \
  "$fresh_p50" "$fresh_p99" "$fresh_rps" "$reuse_p50" "$reuse_p99" "$reuse_rps" "$(stat -c %s "$WASM")"
