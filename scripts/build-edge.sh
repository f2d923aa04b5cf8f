#!/usr/bin/env bash
# Builds the edge classifier Spin component once, without a model, and bakes model bundles
# into copies of it, so that a new model takes seconds and no Rust compile.
#
#   scripts/build-edge.sh build                              # cargo: the generic component
#   scripts/build-edge.sh bake [--bundle DIR] [--out FILE]   # edge-bake: no cargo, seconds
#   scripts/build-edge.sh [--bundle DIR] [--out FILE]        # build, then bake (spin build)
#
#   build     compiles the generic component in the workspace's `wasm` profile to
#             target/wasm32-wasip2/wasm/edge_classifier_spin.wasm. Served as is, it answers
#             503 `unavailable`: it has no model.
#   bake      runs `edge-bake` (edge_classifier_bake, the one bake registry-sync also runs):
#             verifies the bundle, pre-initialises a copy of the generic component with
#             `wasmtime wizer` (the bundle preopened at `/bundle`: the component parses it once
#             and the snapshot ships the ready classifier), checks that wasmtime will map the
#             snapshot copy-on-write, and renames the result into place (never a half-written
#             output). Needs the generic component and the workspace's binaries
#             (`native_build`, built here if missing).
#   --bundle  the bundle directory `trainer train --out DIR` wrote (default: STACKTAG_BUNDLE_DIR;
#             `tiny-fixture` is the golden edge-classifier/tests/fixtures/tiny)
#   --out     where the baked component goes (default:
#             target/wasm32-wasip2/wasm/edge_classifier_spin.baked.wasm, spin.toml's `source`)
#
# Needs wasmtime-cli 48 for `bake` (scripts/setup.sh caches it; STACKTAG_WASMTIME overrides).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

step=all
case "${1:-}" in
  build | bake) step="$1"; shift ;;
esac
bundle_out_args "${STACKTAG_BUNDLE_DIR:-}" "$EDGE_BAKED" "$@"
[ "$step" = build ] || [ -n "$bundle" ] || die "no bundle to bake: pass \`--bundle DIR\` or set" \
  "STACKTAG_BUNDLE_DIR to what \`trainer train --out DIR\` wrote (\`tiny-fixture\` for the" \
  "golden tiny bundle); \`$0 build\` compiles the generic component alone"

build() {
  edge_build
  log "built the generic component (no model): $EDGE_WASM ($(stat -c %s "$EDGE_WASM") bytes)"
}

bake() {
  [ -x "$BIN/edge-bake" ] || native_build
  need_wasmtime
  "$BIN/edge-bake" bake --wasmtime "$WASMTIME" --generic "$EDGE_WASM" --bundle "$bundle" --out "$out"
}

case "$step" in
  build) build ;;
  bake) bake ;;
  all) build; bake ;;
esac
