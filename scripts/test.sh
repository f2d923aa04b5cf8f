#!/usr/bin/env bash
# The test command (README, .ci/run): set-up (idempotent), then every test.
#
#   scripts/test.sh
#
# Needs ../shared/data beside the repo (or STACKTAG_SHARED_DATA); uses loopback only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash scripts/setup.sh
bash scripts/check-delivery.sh   # workflows, SpinKube manifests, Databricks job: offline, seconds

echo "== monitoring: Prometheus config, alert rules and their unit tests, Grafana dashboards"
bash scripts/check-monitoring.sh

echo "== the generic edge component (registry-sync's tests bake and serve it)"
bash scripts/build-edge.sh build

echo "== native tests (cargo test: the default members)"
cargo test --locked

echo "== the inference core builds for both wasm targets"
cargo check --locked -p edge-classifier --target wasm32-wasip2
cargo check --locked -p edge-classifier --target wasm32-unknown-unknown

echo "== the fuzz target builds (its own workspace and lockfile)"
cargo check --locked --manifest-path edge-classifier/fuzz/Cargo.toml --target-dir "$TARGET_DIR"

echo "== edge component: generic build, real bundle baked in, served by wasmtime on loopback"
bash scripts/test-edge.sh
bash scripts/test-web.sh  # web demo: site built with the 16k bundle above, tested in chromium

echo "== the main job: scripts/loop.sh --once on a fresh state dir (v1, then v2 under load)"
bash scripts/test-loop.sh
