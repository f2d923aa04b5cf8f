#!/usr/bin/env bash
# The web demo's tests (scripts/test.sh runs this): builds the site with a real bundle
# (scripts/build-web.sh), the native example the answers are compared with, then runs the
# browser tests (web-demo/tests/web.test.mjs: Debian chromium via playwright-core, the page
# served from loopback) with node's test runner.
#
#   scripts/test-web.sh
#
# The bundle is the 16k one scripts/test-edge.sh trains (trained here the same way if it is
# missing; STACKTAG_BUNDLE_DIR overrides), so in scripts/test.sh this costs no training.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUNDLE="${STACKTAG_BUNDLE_DIR:-$TARGET_DIR/stacktag-edge-bundle}"
SITE="$TARGET_DIR/web-demo/site"

if [ ! -f "$BUNDLE/manifest.json" ]; then
  log "training the bundle on $SHARED_DATA/stackoverflow16k"
  cargo run --locked --quiet -p trainer -- train --quiet \
    --data "$SHARED_DATA/stackoverflow16k/train.csv.gz" \
    --eval "$SHARED_DATA/stackoverflow16k/test.csv.gz" --out "$BUNDLE"
fi
bash scripts/build-web.sh --bundle "$BUNDLE" --out "$SITE"
# The dev profile, which `cargo test` has already built the core's dependencies in.
cargo build --locked --quiet -p edge-classifier --example classify_json

STACKTAG_WEB_SITE="$SITE" STACKTAG_NATIVE_CLASSIFY="$TARGET_DIR/debug/examples/classify_json" \
  STACKTAG_SHARED_DATA="$SHARED_DATA" STACKTAG_WEB_SCREENSHOT="$TARGET_DIR/web-demo/screenshot.png" \
  node --test web-demo/tests/highlight.test.mjs web-demo/tests/web.test.mjs
