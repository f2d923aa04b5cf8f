#!/usr/bin/env bash
# The edge component's tests (scripts/test.sh runs this): builds the generic component once,
# trains a bundle on the shared data, bakes it in (scripts/build-edge.sh), then runs the
# component's integration tests, which serve it with `wasmtime serve` on loopback.
#
#   scripts/test-edge.sh
#
# A retrained bundle costs a bake (seconds), not a wasm rebuild: cargo rebuilds the component
# only when its code changes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUNDLE="$TARGET_DIR/stacktag-edge-bundle"

bash scripts/build-edge.sh build
log "training the bundle to bake on $SHARED_DATA/stackoverflow16k"
cargo run --locked --quiet -p trainer -- train --quiet \
  --data "$SHARED_DATA/stackoverflow16k/train.csv.gz" \
  --eval "$SHARED_DATA/stackoverflow16k/test.csv.gz" --out "$BUNDLE"
bash scripts/build-edge.sh bake --bundle "$BUNDLE"

STACKTAG_BUNDLE_DIR="$BUNDLE" STACKTAG_EDGE_WASM="$EDGE_BAKED" STACKTAG_WASMTIME="$WASMTIME" \
  STACKTAG_SHARED_DATA="$SHARED_DATA" cargo test --locked -p edge-classifier-spin
