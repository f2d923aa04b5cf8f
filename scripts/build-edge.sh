#!/usr/bin/env bash
# Builds the edge classifier Spin component once, without a model, and bakes model bundles
# into copies of it, so that a new model takes seconds and no Rust compile.
#
#   scripts/build-edge.sh build                              # cargo: the generic component
#   scripts/build-edge.sh bake [--bundle DIR] [--out FILE]   # wasmtime wizer: no cargo, seconds
#   scripts/build-edge.sh [--bundle DIR] [--out FILE]        # build, then bake (spin build)
#
#   build     compiles the generic component (opt-level z, fat LTO, simd128) to
#             target/wasm32-wasip2/release/edge_classifier_spin.wasm, plus the native snapshot
#             check `snapshot-span` that `bake` runs. Served as is, it answers 503
#             `unavailable`: it has no model.
#   bake      pre-initialises a copy of the generic component with `wasmtime wizer`, which
#             preopens the bundle at `/bundle`: `wizer-initialize` reads and verifies it and
#             parses the model, and the snapshot ships the ready classifier. Then it checks that
#             wasmtime will map the snapshot copy-on-write (fails otherwise) and renames the
#             result into place (never a half-written output). It fails if the generic
#             component or the check is not built yet.
#   --bundle  the bundle directory `trainer train --out DIR` wrote (default: STACKTAG_BUNDLE_DIR;
#             `tiny-fixture` is the golden edge-classifier/tests/fixtures/tiny)
#   --out     where the baked component goes (default:
#             target/wasm32-wasip2/release/edge_classifier_spin.baked.wasm, spin.toml's `source`)
#
# Needs wasmtime-cli 48 for `bake` (scripts/setup.sh caches it; STACKTAG_WASMTIME overrides).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

step=all
case "${1:-}" in
  build | bake) step="$1"; shift ;;
esac
bundle="${STACKTAG_BUNDLE_DIR:-}"
out="$EDGE_BAKED"
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) [ $# -ge 2 ] || die "\`--bundle\` needs a directory"; bundle="$2"; shift ;;
    --out) [ $# -ge 2 ] || die "\`--out\` needs a file"; out="$2"; shift ;;
    *) die "unknown argument \`$1\` (see the header of $0)" ;;
  esac
  shift
done
[ "$step" = build ] || [ -n "$bundle" ] || die "no bundle to bake: pass \`--bundle DIR\` or set" \
  "STACKTAG_BUNDLE_DIR to what \`trainer train --out DIR\` wrote (\`tiny-fixture\` for the" \
  "golden tiny bundle); \`$0 build\` compiles the generic component alone"

# The native snapshot check, built by `build` in cargo's dev profile (the one `cargo test`
# builds it in too, so the tests and the bake run one binary).
SPAN_CHECK="$TARGET_DIR/debug/snapshot-span"

build() {
  # Size and speed of the component only, so set here rather than in the shared release
  # profile: opt-level "z" puts the code (tract, tokenizers, SDK) at 8.4 MB of wasm, against
  # 10.6 MB at "s" and about 16 at 3, with no measurable cost per request (SIMD kernels do the
  # work); fat LTO and one codegen unit shave more; simd128 turns on tract's wasm SIMD kernels.
  CARGO_PROFILE_RELEASE_OPT_LEVEL="${STACKTAG_EDGE_OPT_LEVEL:-z}" \
    CARGO_PROFILE_RELEASE_LTO=fat \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
    CARGO_PROFILE_RELEASE_STRIP=true \
    CARGO_PROFILE_RELEASE_PANIC=abort \
    CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-C target-feature=+simd128" \
    cargo build --locked --release --target wasm32-wasip2 -p edge-classifier-spin --lib
  cargo build --locked --quiet -p edge-classifier-spin --bin snapshot-span
  log "built the generic component (no model): $EDGE_WASM ($(stat -c %s "$EDGE_WASM") bytes)"
}

bake() {
  case "$bundle" in
    tiny-fixture) bundle="$ROOT/edge-classifier/tests/fixtures/tiny" ;;
  esac
  [ -f "$bundle/manifest.json" ] || die "\`$bundle\` is not a bundle: it has no manifest.json" \
    "(pass what \`trainer train --out DIR\` wrote)"
  [ -f "$EDGE_WASM" ] || die "no generic component at \`$EDGE_WASM\`: run \`$0 build\` first"
  [ -x "$SPAN_CHECK" ] || die "no snapshot check at \`$SPAN_CHECK\`: run \`$0 build\` first"
  need_wasmtime
  mkdir -p "$(dirname "$out")"
  # On any failure below, no half-written output is left behind. Not a local: when `set -e`
  # stops the script, the EXIT trap runs after the function's locals are gone (a failed
  # snapshot check once left its 17 MB temporary next to the output).
  BAKE_TMP="$(mktemp "$out.tmp.XXXXXX")"
  trap 'rm -f "$BAKE_TMP"' EXIT
  # --keep-init-func=true: without it wizer's output is not a valid component (docs/toolchain.md).
  # Only the bundle directory is preopened, and wizer passes no environment. Its stdout (it
  # prints the init function's result, `()`) goes to stderr: callers such as bench-edge.sh
  # keep stdout for their own output.
  "$WASMTIME" wizer -Scli -Shttp --keep-init-func=true \
    --dir "$bundle::/bundle" "$EDGE_WASM" -o "$BAKE_TMP" >&2 ||
    die "baking \`$bundle\` into the component failed (wizer's message is above)"
  "$SPAN_CHECK" "$BAKE_TMP" >&2
  mv -f "$BAKE_TMP" "$out"
  trap - EXIT
  log "baked \`$bundle\` into $out ($(stat -c %s "$out") bytes)"
}

case "$step" in
  build) build ;;
  bake) bake ;;
  all) build; bake ;;
esac
