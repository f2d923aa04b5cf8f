#!/usr/bin/env bash
# The edge component's tests: builds the generic component once, trains a bundle on the
# shared data with the workspace's trainer, bakes it in, then runs the component's
# integration tests, which serve it with `wasmtime serve` on loopback.
#
#   scripts/test-edge.sh            # prepare, then the component's tests
#   scripts/test-edge.sh --prepare  # only the component and the bundle (scripts/test.sh runs
#                                   # every test in one `cargo test --workspace`)
#
# A retrained bundle costs a bake (seconds), not a wasm rebuild: cargo rebuilds the component
# only when its code changes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -x "$BIN/trainer" ] || native_build
bash scripts/build-edge.sh build
# Trained on every run: the target dir outlives a checkout, and a bundle from an older trainer
# would test the wrong thing.
log "training the bundle to bake on $SHARED_DATA/stackoverflow16k"
"$BIN/trainer" train --quiet --data "$SHARED_DATA/stackoverflow16k/train.csv.gz" \
  --eval "$SHARED_DATA/stackoverflow16k/test.csv.gz" --out "$EDGE_BUNDLE"
bash scripts/build-edge.sh bake --bundle "$EDGE_BUNDLE"
[ "${1:-}" = --prepare ] && exit 0
# Its own selection (the component's crate alone) may rebuild a few crates with its features.
edge_test_env cargo test --locked -p edge-classifier-spin
