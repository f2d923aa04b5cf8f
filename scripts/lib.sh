# What every script shares; sourced, never run: `source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`.
#
# It sets (each overridable from the environment; docs/operations.md's table lists them all):
#   ROOT          the repository root (and cds there)
#   CACHE         STACKTAG_CACHE, default ~/.cache/stacktag: tools and the venv, outside the repo
#   WASMTIME      STACKTAG_WASMTIME, default $CACHE/tools/bin/wasmtime (scripts/setup.sh builds it)
#   TARGET_DIR    CARGO_TARGET_DIR, default $ROOT/target
#   BIN           $TARGET_DIR/debug: the workspace's binaries (trainer, registry-sync, stacktag,
#                 edge-bake), built by `native_build`
#   SHARED_DATA   STACKTAG_SHARED_DATA, default $ROOT/../shared/data (holds stackoverflow16k/)
#   EDGE_WASM     the generic edge component: what `scripts/build-edge.sh build` compiles
#   EDGE_BAKED    the default baked component: what `bake` writes and spin.toml serves
#   EDGE_BUNDLE   the real 16k bundle scripts/test-edge.sh trains and bakes into EDGE_BAKED
# and exports STACKTAG_PYFUNC_CORE (the Python flavor's core, which `pyfunc_build` builds and
# registering puts in every version), and defines `log`, `die`, `need_wasmtime`, `native_build`, `edge_test_env`, `rust_targets`,
# `bg`, `bg_wait`, `wasm_build`, `pyfunc_build`, `bundle_out_args`, `bundle_arg`, `wait_http`,
# `free_port` and `served_version`.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${STACKTAG_CACHE:-$HOME/.cache/stacktag}"
WASMTIME="${STACKTAG_WASMTIME:-$CACHE/tools/bin/wasmtime}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/debug"
SHARED_DATA="${STACKTAG_SHARED_DATA:-$ROOT/../shared/data}"
# The workspace's `wasm` profile (Cargo.toml) puts both wasm builds under `<target>/wasm/`.
EDGE_WASM="$TARGET_DIR/wasm32-wasip2/wasm/edge_classifier_spin.wasm"
EDGE_BAKED="$TARGET_DIR/wasm32-wasip2/wasm/edge_classifier_spin.baked.wasm"
# The Python flavor's core, which registering a version puts in it (model-registry reads the
# variable; `pyfunc_build` builds it): exported for every tool and test the scripts run.
export STACKTAG_PYFUNC_CORE="${STACKTAG_PYFUNC_CORE:-$TARGET_DIR/wasm32-unknown-unknown/wasm/edge_classifier_python.wasm}"
# The real 16k bundle the edge and web tests bake and load (scripts/test-edge.sh trains it).
EDGE_BUNDLE="$TARGET_DIR/stacktag-edge-bundle"

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

# `native_build`: every native crate, its binaries, examples and tests, in the dev profile
# (dependencies optimised; Cargo.toml says why). One package selection everywhere, so cargo
# unifies features once and never compiles polars or tract a second time for another
# selection; the loop, the tools and the tests all run what this built, from $BIN.
native_build() {
  cargo test --workspace --locked --no-run
  # The binaries no test runs (`edge-bake`): the same crates, features and profile, so this
  # only links them.
  cargo build --workspace --locked --bins
}

# `edge_test_env COMMAND...`: runs COMMAND with what the edge component's tests read: the
# bundle baked into it, the baked component, wasmtime and the shared data.
edge_test_env() {
  STACKTAG_BUNDLE_DIR="$EDGE_BUNDLE" STACKTAG_EDGE_WASM="$EDGE_BAKED" STACKTAG_WASMTIME="$WASMTIME" \
    STACKTAG_SHARED_DATA="$SHARED_DATA" "$@"
}

# `rust_targets [--web]`: the wasm targets the builds need (`--web`: the browser's too), added
# unless present.
rust_targets() {
  # wasm32-unknown-unknown: the Python flavor's core always, the browser module with `--web`.
  local target targets=(wasm32-wasip2 wasm32-unknown-unknown)
  for target in "${targets[@]}"; do
    if rustup target list --installed | grep -qx "$target"; then
      log "rust target $target: present"
    else
      log "rust target $target: installing"
      rustup target add "$target"
    fi
  done
}

# `bg NAME COMMAND...`: starts COMMAND in the background, its output kept in a log; `bg_wait`
# waits for every one started, prints each log, and fails naming any that failed. On a fresh
# 2-core machine the set-up (downloads, the tool builds) and the three builds (native, the
# edge component, the browser module) leave each other's gaps filled: single-threaded links
# and LTO, build scripts, waits on the network. Cargo builds of different profiles and targets
# share the target directory without waiting on each other.
BG_PIDS=() BG_LOGS=() BG_NAMES=()
bg() {
  local name="$1" log
  shift
  mkdir -p "$TARGET_DIR"
  log="$(mktemp "$TARGET_DIR/bg.XXXXXX.log")"
  "$@" >"$log" 2>&1 &
  BG_PIDS+=("$!") BG_LOGS+=("$log") BG_NAMES+=("$name")
}

bg_wait() {
  local i failed=()
  for i in "${!BG_PIDS[@]}"; do
    wait "${BG_PIDS[$i]}" || failed+=("${BG_NAMES[$i]}")
    cat "${BG_LOGS[$i]}" >&2
    rm -f "${BG_LOGS[$i]}"
  done
  BG_PIDS=() BG_LOGS=() BG_NAMES=()
  [ ${#failed[@]} -eq 0 ] || die "failed: ${failed[*]} (output above)"
}

# `wasm_build PACKAGE TARGET`: a wasm adapter in the workspace's `wasm` profile (size first;
# `simd128` comes from .cargo/config.toml).
wasm_build() {
  cargo build --locked --profile wasm --target "$2" -p "$1" --lib
}

# `edge_build`: the generic edge component (scripts/build-edge.sh build).
edge_build() { wasm_build edge-classifier-spin wasm32-wasip2; }

# `web_build`: the browser module, before wasm-bindgen (scripts/build-web.sh).
web_build() { wasm_build edge-classifier-web wasm32-unknown-unknown; }

# `pyfunc_build`: the core for MLflow's `python_function` flavor ($STACKTAG_PYFUNC_CORE), which
# every registered version carries (docs/mlflow-pyfunc.md).
pyfunc_build() { wasm_build edge-classifier-python wasm32-unknown-unknown; }

# `wasm_builds [--web]`: the edge component, the Python flavor's core, then (`--web`) the
# browser module.
wasm_builds() {
  edge_build
  pyfunc_build
  [ "${1:-}" != --web ] || web_build
}

# `bundle_out_args DEFAULT_BUNDLE DEFAULT_OUT ARGS...`: parses `--bundle DIR` and `--out PATH`
# for the build scripts into $bundle and $out (`tiny-fixture` is the golden tiny bundle).
bundle_out_args() {
  bundle="$1" out="$2"
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --bundle) [ $# -ge 2 ] || die "\`--bundle\` needs a directory"; bundle="$2"; shift ;;
      --out) [ $# -ge 2 ] || die "\`--out\` needs a path"; out="$2"; shift ;;
      *) die "unknown argument \`$1\` (see the header of $0)" ;;
    esac
    shift
  done
  case "$bundle" in
    tiny-fixture) bundle="$ROOT/edge-classifier/tests/fixtures/tiny" ;;
  esac
}

# `bundle_arg ARGS...`: the bench scripts' one argument, `--bundle DIR`, into $BUNDLE (default:
# $STACKTAG_BUNDLE_DIR, else the 16k bundle scripts/test-edge.sh trains).
bundle_arg() {
  BUNDLE="${STACKTAG_BUNDLE_DIR:-$EDGE_BUNDLE}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --bundle) [ $# -ge 2 ] || die "\`--bundle\` needs a directory"; BUNDLE="$2"; shift ;;
      *) die "unknown argument \`$1\` (see the header of $0)" ;;
    esac
    shift
  done
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
