#!/usr/bin/env bash
# The web demo's figures, measured in the real browser (Debian chromium, page on loopback):
# one JSON object on stdout.
#
#   scripts/bench-web.sh [--bundle DIR]
#
#   module_bytes, module_gz_bytes   the wasm module alone, raw and gzipped (-9)
#   page_gz_bytes                   everything the page fetched before its first answer, each
#                                   file gzipped (-9): HTML, CSS, JS, module and bundle
#   first_answer_ms                 navigation start to the first answer drawn, in a running,
#                                   idle chromium with a fresh profile (nothing cached, no
#                                   service worker yet) and nothing attached until then
#   first_answer_automated_ms       the same in a page Playwright opens right after launching
#                                   the browser (how it was measured before; kept to compare)
#   classify_p50_ms, classify_p99_ms  one classify in the worker (the module call), over 500
#                                   real test questions, each seen for the first time
#   native_p50_ms, ratio            the native core (release build) on the same questions in
#                                   the same run, and classify_p50_ms / native_p50_ms
#   parity_max_abs_diff, parity_label_mismatches  the worker's answers against the native core's
#
# --bundle as for scripts/build-web.sh (default: the 16k bundle scripts/test-edge.sh trains).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bundle_arg "$@"
SITE="$TARGET_DIR/web-demo/bench-site"

bash scripts/build-web.sh --bundle "$BUNDLE" --out "$SITE" >&2
# Release, as any native figure in docs/benchmarks.md: the comparison is with the core at its best.
cargo build --locked --release --quiet -p edge-classifier --example classify_json >&2

STACKTAG_WEB_SITE="$SITE" STACKTAG_NATIVE_CLASSIFY="$TARGET_DIR/release/examples/classify_json" \
  STACKTAG_SHARED_DATA="$SHARED_DATA" node web-demo/tests/bench.mjs
