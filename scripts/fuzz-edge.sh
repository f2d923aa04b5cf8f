#!/usr/bin/env bash
# Fuzzes the request-handling path of the edge component (`edge_classifier::service::handle`,
# what the Spin adapter calls for every request) with libFuzzer.
#
#   scripts/fuzz-edge.sh [SECONDS]      # default 600; prints libFuzzer's summary
#
# The target is a cargo-fuzz layout (edge-classifier/fuzz, `cargo fuzz run service` works where
# cargo-fuzz and nightly exist). Here only stable rustc exists, so this script builds the same
# target with plain cargo and the sanitizer-coverage flags cargo-fuzz passes (stable codegen
# options); AddressSanitizer is left out: the core forbids `unsafe`, so a panic is the failure
# that matters, and libFuzzer catches those. STACKTAG_BUNDLE_DIR picks the bundle (default: the
# golden tiny bundle, edge-classifier/tests/fixtures/tiny, which keeps executions fast and is
# the bundle `cargo test -p edge-classifier` replays the seeds and the corpus against).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SECONDS_TO_RUN="${1:-600}"
FUZZ="$ROOT/edge-classifier/fuzz"
export STACKTAG_BUNDLE_DIR="${STACKTAG_BUNDLE_DIR:-$ROOT/edge-classifier/tests/fixtures/tiny}"

HOST="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps the flags off build scripts and proc-macros, as cargo-fuzz does. Its own
# target directory whatever CARGO_TARGET_DIR says: the instrumented build must not replace the
# workspace's artifacts, and the binary's path below depends on it.
cargo build --manifest-path "$FUZZ/Cargo.toml" --target-dir "$FUZZ/target" --release \
  --target "$HOST" --bin service

CORPUS="$FUZZ/target/corpus/service"
mkdir -p "$CORPUS" "$FUZZ/artifacts/service"
# Seeds live in git (fuzz/seeds); the growing corpus stays under fuzz/target.
cp -n "$FUZZ"/seeds/* "$CORPUS"/ 2>/dev/null || true
"$FUZZ/target/$HOST/release/service" "$CORPUS" \
  -max_total_time="$SECONDS_TO_RUN" -max_len=8192 -timeout=10 -rss_limit_mb=4096 \
  -artifact_prefix="$FUZZ/artifacts/service/" -print_final_stats=1
