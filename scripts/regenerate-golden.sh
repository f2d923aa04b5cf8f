#!/usr/bin/env bash
# Regenerates a golden tiny bundle and its pinned answers: edge-classifier/tests/fixtures/NAME
# (default `tiny`; `tiny-calibrated` is the current format, `tiny-presence` format 4,
# `tiny-counted` format 3). Run it only when the model or the graph changes on purpose, then
# review the diff.
#
#   scripts/regenerate-golden.sh [NAME]
#
# The training flags live in the fixture's train-args, which the trainer's tests also read to
# check that this command reproduces the committed model.onnx byte for byte.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
FIXTURE="edge-classifier/tests/fixtures/${1:-tiny}"
[ -f "$FIXTURE/train-args" ] || die "no \`$FIXTURE/train-args\`: name a fixture that has one (tiny, tiny-counted, tiny-presence, tiny-calibrated)"
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT

# Train into a scratch directory: `train --out` replaces its target whole, which would take
# the fixture's README, train-args and expected.json with it.
# shellcheck disable=SC2046 # the flags are words by design
native_build
"$BIN/trainer" train --quiet $(cat "$FIXTURE/train-args") --out "$SCRATCH/tiny"
cp "$SCRATCH"/tiny/* "$FIXTURE"/
"$BIN/examples/golden" "$FIXTURE"
git --no-pager diff --stat -- "$FIXTURE"
