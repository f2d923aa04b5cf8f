#!/usr/bin/env bash
# The harvest figures (docs/benchmarks.md#harvest): `trainer fetch dump` on a generated dump of
# POSTS rows (default 200,000) against Python's iterparse on the same file, and `trainer fetch
# api` against a loopback replay of the API's JSON (PAGES pages per tag, default 20). The
# workspace's dev profile, as retrain.yml and the loop run it (its dependencies are optimised,
# Cargo.toml). Prints one JSON object (scripts/bench_harvest.py says what is in it).
#
#   scripts/bench-harvest.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
log "build of the trainer"
cargo build --locked -p trainer --bin trainer --quiet
TRAINER="$BIN/trainer" FIXTURES="$ROOT/harvest/tests/fixtures" \
  "$CACHE/venv/bin/python" scripts/bench_harvest.py
