#!/usr/bin/env bash
# The test command (README, .ci/run): set-up (idempotent), the builds, then every test.
#
#   scripts/test.sh
#
# Needs ../shared/data beside the repo (or STACKTAG_SHARED_DATA); uses loopback only. One
# native build serves every step (`native_build`: the whole workspace in one selection), and
# one `cargo test --workspace` runs every Rust test, the edge component's and the main job's
# included.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

echo "== set-up, the native workspace (every crate, binary, example and test, one build) and the two wasm builds, side by side"
rust_targets --web
bg "scripts/setup.sh --web" bash scripts/setup.sh --web
bg "the wasm builds" wasm_builds --web
native_build
bg_wait

bash scripts/check-delivery.sh   # workflows, SpinKube manifests, Databricks job, links: offline
echo "== monitoring: Prometheus config, alert rules and their unit tests, Grafana dashboards"
bash scripts/check-monitoring.sh

echo "== the edge component: generic build, a real 16k bundle baked in; the web demo's site"
bash scripts/test-edge.sh --prepare
bash scripts/test-web.sh --prepare

echo "== every Rust test: the default members, the edge component under wasmtime, the main job"
edge_test_env cargo test --workspace --locked

echo "== the web demo in chromium"
bash scripts/test-web.sh --run
