#!/usr/bin/env bash
# Builds the web demo: one static folder with the page, the wasm-bindgen module and a bundle,
# ready for GitHub Pages or for being served by the gateway.
#
#   scripts/build-web.sh [--bundle DIR] [--out DIR]
#
#   --bundle  the bundle `trainer train --out DIR` wrote (default: STACKTAG_BUNDLE_DIR, else the
#             one scripts/test.sh trains, target/stacktag-edge-bundle; `tiny-fixture` is
#             the golden edge-classifier/tests/fixtures/tiny). Copied to OUT/bundle/, which the
#             page fetches at run time: a new model is a new bundle/ folder, no rebuild.
#   --out     the site folder (default: target/web-demo/site), replaced whole (built beside
#             it, then renamed: never half-written)
#
# The module is compiled in the workspace's `wasm` profile, as the edge component is, then
# `wasm-bindgen --target web` (the CLI pinned to the crate's version, which scripts/setup.sh
# installs) drops the name and producers sections. Not run through wasm-opt: it saves 0.2%
# gzipped for a minute of build time (docs/web-demo.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The pinned CLI scripts/setup.sh installs (STACKTAG_WASM_BINDGEN overrides).
WASM_BINDGEN="${STACKTAG_WASM_BINDGEN:-$CACHE/tools/bin/wasm-bindgen}"

bundle_out_args "${STACKTAG_BUNDLE_DIR:-$TARGET_DIR/stacktag-edge-bundle}" "$TARGET_DIR/web-demo/site" "$@"
[ -f "$bundle/manifest.json" ] || die "\`$bundle\` is not a bundle: it has no manifest.json" \
  "(pass \`--bundle DIR\` with what \`trainer train --out DIR\` wrote)"
wasm_bindgen_version="$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)"
"$WASM_BINDGEN" --version 2>/dev/null | grep -qx "wasm-bindgen $wasm_bindgen_version" ||
  die "no wasm-bindgen $wasm_bindgen_version at \`$WASM_BINDGEN\`: run scripts/setup.sh"

web_build
module="$TARGET_DIR/wasm32-unknown-unknown/wasm/edge_classifier_web.wasm"

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
# The keys whose signatures the page requires (STACKTAG_TRUSTED_KEYS: PEM files, comma-
# separated, as registry-sync reads them); empty, the page checks digests only
# (docs/signing.md). Always there, so the page never fetches a missing file.
: > "$tmp/trusted-keys.pem"
IFS=',' read -r -a trusted_key_files <<< "${STACKTAG_TRUSTED_KEYS:-}"
for f in "${trusted_key_files[@]}"; do
  [ -n "$f" ] || continue
  grep -q 'BEGIN PUBLIC KEY' "$f" 2>/dev/null || die "STACKTAG_TRUSTED_KEYS: \`$f\` holds no PEM public key"
  cat "$f" >> "$tmp/trusted-keys.pem"
done
# The service worker's cache is named after everything it caches, so a new build or a new
# bundle replaces the old cache.
build_id="$(cd "$tmp" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
sed "s/__BUILD__/$build_id/" web-demo/sw.js > "$tmp/sw.js"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
log "built $out: module $(stat -c %s "$out/pkg/edge_classifier_web_bg.wasm") bytes, bundle from $bundle"
