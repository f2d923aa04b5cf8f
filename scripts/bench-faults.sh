#!/usr/bin/env bash
# The fault-injection run (docs/registry-sync.md#figures; figures in docs/benchmarks.md#faults): registry-sync
# `serve` against a real MLflow and real `wasmtime serve` instances, under a steady bounded load
# through its gateway, while faults are injected one after another: MLflow killed mid-download;
# registry-sync `kill -9` mid-bake, restarted while MLflow is down; a hung bake; a corrupt
# artifact; an unsigned and a wrongly signed model; a forged, a replayed and a stale webhook; a
# rotated webhook secret; a second `serve` on the same state dir; a promotion and a rollback.
#
# Prints ONE JSON object on stdout: per fault, requests sent and failed, whether the served
# version ended equal to `champion`, seconds from recovery to convergence; in total `requests`,
# `failed_requests`, `lost_promotions`. Required: 0, 0, and every fault converged within 60 s.
# The story goes to stderr; logs stay in the printed `work_dir`.
#
#   scripts/bench-faults.sh            # LOAD_CLIENTS=2 LOAD_RPS=10 (per client) by default
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v openssl >/dev/null || die "openssl is missing (the run makes its signing keys with it)"
need_wasmtime
log "builds (dev profile, as the loop and the tests run them)"
cargo build --workspace --locked --bins --quiet
[ -f "$EDGE_WASM" ] || bash scripts/build-edge.sh build

BIN="$BIN" WASMTIME="$WASMTIME" EDGE_WASM="$EDGE_WASM" ROOT="$ROOT" \
  "$CACHE/venv/bin/python" scripts/bench_faults.py
