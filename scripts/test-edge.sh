#!/usr/bin/env bash
# The edge component's tests (scripts/test.sh runs this): trains a bundle on the shared data,
# bakes it into the Spin component (scripts/build-edge.sh), then runs the component's
# integration tests, which serve it with `wasmtime serve` on loopback.
#
#   scripts/test-edge.sh
#
# The bundle is cached in target/stacktag-edge-bundle and replaced only when a retrain gives a
# different model or tokenizer, so an unchanged trainer does not force a 7-minute wasm rebuild
# (the manifest's timestamp alone would).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DATA="${STACKTAG_SHARED_DATA:-$ROOT/../shared/data}/stackoverflow16k"
BUNDLE="$ROOT/target/stacktag-edge-bundle"
FRESH="$ROOT/target/stacktag-edge-bundle.new"

rm -rf "$FRESH"
cargo run --locked --quiet -p trainer -- train --quiet \
  --data "$DATA/train.csv.gz" --eval "$DATA/test.csv.gz" --out "$FRESH"
if [ -f "$BUNDLE/manifest.json" ] && cmp -s "$BUNDLE/model.onnx" "$FRESH/model.onnx" \
  && cmp -s "$BUNDLE/tokenizer.json" "$FRESH/tokenizer.json"; then
  rm -rf "$FRESH"
else
  rm -rf "$BUNDLE"
  mv "$FRESH" "$BUNDLE"
fi

export STACKTAG_BUNDLE_DIR="$BUNDLE"
bash scripts/build-edge.sh
cargo test --locked -p edge-classifier-spin
