#!/usr/bin/env bash
# The main job (README command 1): set-up, the builds, then `stacktag up`, which runs the loop
# (new data lands, and minutes later the edge serves a better model) on loopback, on embedded
# defaults:
#
#   scripts/loop.sh [--once] [--web-demo] [--dump POSTS.xml]
#
#   --once      stop once the second model serves (else serve until Ctrl-C)
#   --web-demo  also build the browser module and serve the web demo at the gateway's /demo/
#               (wasm-bindgen-cli and a second wasm build: minutes on a fresh machine)
#   --dump F    the second batch is a Stack Exchange data dump's questions (Posts.xml, plain or
#               gzip), labelled by their tags, instead of the rest of the 16k training set
#
# What `stacktag up` does, prints and returns: docs/operations.md. Its story goes to stderr,
# its report (one JSON object) is the one line on stdout. State lives under
# STACKTAG_STATE_DIR (default .stacktag/); a second run reuses it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

up=() web=0
usage="usage: scripts/loop.sh [--once] [--web-demo] [--dump POSTS.xml]"
while (($# > 0)); do
  case "$1" in
    --once) up+=(--once) ;;
    --web-demo) web=1 ;;
    --dump)
      (($# > 1)) || die "\`--dump\` needs a file ($usage)"
      up+=(--dump "$(cd "$(dirname "$2")" && pwd)/$(basename "$2")")
      shift
      ;;
    *) die "unknown argument \`$1\` ($usage)" ;;
  esac
  shift
done

log "set-up and builds, side by side (a fresh machine: docs/benchmarks.md says how long)"
setup=()
[ "$web" = 0 ] || setup+=(--web)
rust_targets "${setup[@]}"
bg "scripts/setup.sh ${setup[*]}" bash scripts/setup.sh "${setup[@]}"
bg "the wasm builds" wasm_builds "${setup[@]}"
# The loop's binary only, but resolved for the whole workspace (`--workspace`): the same crates
# with the same features as `native_build` (what the tests run), so the tests reuse all of it.
cargo build --workspace --locked --bin stacktag
bg_wait
if [ "$web" = 1 ]; then
  site="${STACKTAG_STATE_DIR:-$ROOT/.stacktag}/web-demo"
  # The site only: the gateway serves the serving model's bundle in place of this one.
  bash scripts/build-web.sh --bundle tiny-fixture --out "$site"
  up+=(--web-demo "$site")
fi
exec "$BIN/stacktag" up --repo "$ROOT" --generic-component "$EDGE_WASM" "${up[@]}"
