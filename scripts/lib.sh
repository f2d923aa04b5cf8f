# What every script shares; sourced, never run: `source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`.
#
# It sets (each overridable from the environment; docs/operations.md's table lists them all):
#   ROOT          the repository root (and cds there)
#   CACHE         STACKTAG_CACHE, default ~/.cache/stacktag: tools and the venv, outside the repo
#   WASMTIME      STACKTAG_WASMTIME, default $CACHE/tools/bin/wasmtime (scripts/setup.sh builds it)
#   TARGET_DIR    CARGO_TARGET_DIR, default $ROOT/target
#   SHARED_DATA   STACKTAG_SHARED_DATA, default $ROOT/../shared/data (holds stackoverflow16k/)
#   EDGE_WASM     the generic edge component: what `scripts/build-edge.sh build` compiles
#   EDGE_BAKED    the default baked component: what `bake` writes and spin.toml serves
# and defines `log`, `die`, `need_wasmtime`, `wait_http`, `free_port` and `served_version`.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${STACKTAG_CACHE:-$HOME/.cache/stacktag}"
WASMTIME="${STACKTAG_WASMTIME:-$CACHE/tools/bin/wasmtime}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SHARED_DATA="${STACKTAG_SHARED_DATA:-$ROOT/../shared/data}"
EDGE_WASM="$TARGET_DIR/wasm32-wasip2/release/edge_classifier_spin.wasm"
EDGE_BAKED="$TARGET_DIR/wasm32-wasip2/release/edge_classifier_spin.baked.wasm"

# `log MESSAGE...`: progress on stderr, prefixed with the script's name, so stdout stays for
# results (bench-edge.sh prints its JSON there).
log() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }

# `die MESSAGE...`: an error a person can act on, then exit 1.
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# `need_wasmtime`: fails unless the pinned wasmtime-cli is where $WASMTIME says.
need_wasmtime() {
  [ -x "$WASMTIME" ] || die "no wasmtime at \`$WASMTIME\`: run scripts/setup.sh (it builds" \
    "wasmtime-cli 48 into the cache) or set STACKTAG_WASMTIME"
}

# `wait_http URL TIMEOUT_S WHAT`: polls URL until it answers 2xx, or fails after TIMEOUT_S
# seconds with a message naming WHAT and the URL (a caller adds where its log is).
wait_http() {
  local url="$1" timeout="$2" what="$3" deadline
  deadline=$(($(date +%s) + timeout))
  until curl -fsS --max-time 2 "$url" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      printf 'error: %s did not answer at `%s` within %s s\n' "$what" "$url" "$timeout" >&2
      return 1
    fi
    sleep 0.5
  done
}

# `free_port`: a loopback port free right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# `served_version GATEWAY_URL`: the registry version the registry-sync gateway serves (its
# `x-stacktag-model-version` header on GET /model), empty if none.
served_version() {
  curl -fsS -o /dev/null -D - "$1/model" 2>/dev/null | sed -n 's/^x-stacktag-model-version: *//Ip' | tr -d '\r'
}
