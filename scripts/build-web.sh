#!/usr/bin/env bash
# Builds the web demo: one static folder with the page, the wasm-bindgen module and a bundle,
# ready for GitHub Pages or for being served by the gateway.
#
#   scripts/build-web.sh [--bundle DIR] [--out DIR]
#
#   --bundle  the bundle `trainer train --out DIR` wrote (default: STACKTAG_BUNDLE_DIR, else the
#             one scripts/test-edge.sh trains, target/stacktag-edge-bundle; `tiny-fixture` is
#             the golden edge-classifier/tests/fixtures/tiny). Copied to OUT/bundle/, which the
#             page fetches at run time: a new model is a new bundle/ folder, no rebuild.
#   --out     the site folder (default: target/web-demo/site), replaced whole (built beside
#             it, then renamed: never half-written)
#
# The module is compiled like the edge component (opt-level z, fat LTO, one codegen unit,
# simd128), then `wasm-bindgen --target web` (the CLI pinned to the crate's version, which
# scripts/setup.sh installs), which also drops the name and producers sections: 9.99 → 8.32 MB,
# 2.87 → 2.45 MB gzipped. Not run through Debian binaryen's wasm-opt (-Oz) after that: measured
# on this module it saves another 6% raw (8.32 → 7.79 MB) but 0.2% gzipped (5.6 KB), for a
# minute of build time (docs/web-demo.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The pinned CLI scripts/setup.sh installs (STACKTAG_WASM_BINDGEN overrides).
WASM_BINDGEN="${STACKTAG_WASM_BINDGEN:-$CACHE/tools/bin/wasm-bindgen}"

bundle="${STACKTAG_BUNDLE_DIR:-$TARGET_DIR/stacktag-edge-bundle}"
out="$TARGET_DIR/web-demo/site"
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) [ $# -ge 2 ] || die "\`--bundle\` needs a directory"; bundle="$2"; shift ;;
    --out) [ $# -ge 2 ] || die "\`--out\` needs a directory"; out="$2"; shift ;;
    *) die "unknown argument \`$1\` (see the header of $0)" ;;
  esac
  shift
done
case "$bundle" in
  tiny-fixture) bundle="$ROOT/edge-classifier/tests/fixtures/tiny" ;;
esac
[ -f "$bundle/manifest.json" ] || die "\`$bundle\` is not a bundle: it has no manifest.json" \
  "(pass \`--bundle DIR\` with what \`trainer train --out DIR\` wrote)"
wasm_bindgen_version="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)"
"$WASM_BINDGEN" --version 2>/dev/null | grep -qx "wasm-bindgen $wasm_bindgen_version" ||
  die "no wasm-bindgen $wasm_bindgen_version at \`$WASM_BINDGEN\`: run scripts/setup.sh"

# Size only, so set here rather than in the shared release profile, as for the edge component
# (scripts/build-edge.sh). `strip` stays off: wasm-bindgen needs the target_features section.
CARGO_PROFILE_RELEASE_OPT_LEVEL="${STACKTAG_WEB_OPT_LEVEL:-z}" \
  CARGO_PROFILE_RELEASE_LTO=fat \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
  CARGO_PROFILE_RELEASE_PANIC=abort \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128" \
  cargo build --locked --release --target wasm32-unknown-unknown -p edge-classifier-web
module="$TARGET_DIR/wasm32-unknown-unknown/release/edge_classifier_web.wasm"

mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d "$out.tmp.XXXXXX")"
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
"$WASM_BINDGEN" --target web --no-typescript --remove-name-section --remove-producers-section \
  --out-dir "$tmp/pkg" "$module"
cp web-demo/index.html web-demo/style.css web-demo/app.js web-demo/highlight.js \
  web-demo/worker.js "$tmp/"
mkdir "$tmp/bundle"
# The bundle as trained: the page checks every file against manifest.json before use.
find "$bundle" -maxdepth 1 -type f -exec cp {} "$tmp/bundle/" \;
# The service worker's cache is named after everything it caches, so a new build or a new
# bundle replaces the old cache.
build_id="$(cd "$tmp" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
sed "s/__BUILD__/$build_id/" web-demo/sw.js > "$tmp/sw.js"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
log "built $out: module $(stat -c %s "$out/pkg/edge_classifier_web_bg.wasm") bytes, bundle from $bundle"
