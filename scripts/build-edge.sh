#!/usr/bin/env bash
# Builds the edge classifier Spin component with a model bundle baked in, then pre-initialises
# it so that no request ever parses the model.
#
#   STACKTAG_BUNDLE_DIR=DIR scripts/build-edge.sh [--spin] [--no-preinit]
#
#   STACKTAG_BUNDLE_DIR  the bundle directory `trainer train --out DIR` wrote (required);
#                        `tiny-fixture` explicitly asks for edge-classifier/tests/fixtures/tiny
#   --spin               read `max_body_bytes` from the Spin variable (what spin.toml's build
#                        runs); without it, from the STACKTAG_MAX_BODY_BYTES env var, which is
#                        what `wasmtime serve` can give (it has no Spin variables)
#   --no-preinit         skip `wasmtime wizer` (the model is then parsed once per instance)
#
# Output: target/wasm32-wasip2/release/edge_classifier_spin.wasm (spin.toml's `source`).
# Needs wasmtime-cli 48 for the pre-init step (scripts/setup.sh caches it; STACKTAG_WASMTIME
# overrides the path).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

features=()
preinit=1
for arg in "$@"; do
  case "$arg" in
    --spin) features=(--features spin-variables) ;;
    --no-preinit) preinit=0 ;;
    *) echo "error: unknown argument \`$arg\` (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ -z "${STACKTAG_BUNDLE_DIR:-}" ]; then
  echo "error: set STACKTAG_BUNDLE_DIR to a bundle directory (\`trainer train --out DIR\`)," \
    "or to \`tiny-fixture\` for the tiny test fixture" >&2
  exit 2
fi

# Size and speed of the component only, so set here rather than in the shared release profile:
# opt-level "z" puts the whole code (tract, tokenizers, SDK) at 8.4 MB of wasm, against 10.6 MB
# at "s" and about 16 at 3, with no measurable cost per request (the model is tiny and SIMD
# kernels do the work); fat LTO and one codegen unit shave more; simd128 turns on tract's wasm
# SIMD kernels.
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${STACKTAG_EDGE_OPT_LEVEL:-z}"
export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_STRIP=true
export CARGO_PROFILE_RELEASE_PANIC=abort
export CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-C target-feature=+simd128"

cargo build --locked --release --target wasm32-wasip2 -p edge-classifier-spin "${features[@]}"

# Cargo copies its plain build from deps/ to this path on every run, so wizer always starts from
# the plain component, and a rerun pre-initialises again (about 15 s).
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/wasm32-wasip2/release/edge_classifier_spin.wasm"
if [ "$preinit" = 0 ]; then
  echo "built (not pre-initialised): $OUT ($(stat -c %s "$OUT") bytes)"
  exit 0
fi
WASMTIME="${STACKTAG_WASMTIME:-${STACKTAG_CACHE:-$HOME/.cache/stacktag}/tools/bin/wasmtime}"
if ! [ -x "$WASMTIME" ]; then
  echo "error: wasmtime not found at \`$WASMTIME\`: run scripts/setup.sh, set STACKTAG_WASMTIME," \
    "or build with --no-preinit" >&2
  exit 1
fi
# --keep-init-func=true: without it wizer's output is not a valid component (TOOLCHAIN.md).
"$WASMTIME" wizer -Scli -Shttp --keep-init-func=true "$OUT" -o "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "built and pre-initialised: $OUT ($(stat -c %s "$OUT") bytes)"
