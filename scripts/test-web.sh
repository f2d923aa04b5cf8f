#!/usr/bin/env bash
# The web demo's tests: builds the site with the 16k bundle scripts/test-edge.sh trains, then
# runs the browser tests (web-demo/tests/web.test.mjs: Debian chromium via playwright-core,
# the page served from loopback) with node's test runner, against the workspace's native
# `classify_json` example.
#
#   scripts/test-web.sh              # both
#   scripts/test-web.sh --prepare    # only the site
#   scripts/test-web.sh --run        # only the tests (on a site built before)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUNDLE="${STACKTAG_BUNDLE_DIR:-$EDGE_BUNDLE}"
SITE="$TARGET_DIR/web-demo/site"
step="${1:-all}"

if [ "$step" != --run ]; then
  [ -f "$BUNDLE/manifest.json" ] || bash scripts/test-edge.sh --prepare
  bash scripts/build-web.sh --bundle "$BUNDLE" --out "$SITE"
fi
[ "$step" = --prepare ] && exit 0
[ -x "$BIN/examples/classify_json" ] || native_build
STACKTAG_WEB_SITE="$SITE" STACKTAG_NATIVE_CLASSIFY="$BIN/examples/classify_json" \
  STACKTAG_SHARED_DATA="$SHARED_DATA" STACKTAG_WEB_SCREENSHOT="$TARGET_DIR/web-demo/screenshot.png" \
  STACKTAG_MODEL_SIGNING="$CACHE/venv/bin/model_signing" \
  node --test web-demo/tests/highlight.test.mjs web-demo/tests/web.test.mjs
