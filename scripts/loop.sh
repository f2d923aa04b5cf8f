#!/usr/bin/env bash
# The main job: the local auto-train loop on embedded defaults.
#
#   scripts/loop.sh
#
# Today: set-up, train on the shared stack_overflow_16k data, verify the bundle with the
# serving core, and score it. (Registry, promotion gate, sync and serving join as their
# issues land.) Everything it writes goes under .stacktag/ in the repo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DATA="${STACKTAG_SHARED_DATA:-$ROOT/../shared/data}/stackoverflow16k"
WORK="$ROOT/.stacktag"
mkdir -p "$WORK"

bash scripts/setup.sh
cargo build --release --locked -p trainer

TRAINER="$ROOT/target/release/trainer"
"$TRAINER" train --data "$DATA/train.csv.gz" --eval "$DATA/test.csv.gz" --out "$WORK/bundle"
"$TRAINER" evaluate --bundle "$WORK/bundle" --data "$DATA/test.csv.gz"
echo "bundle: $WORK/bundle (confusion matrix: $WORK/bundle/confusion_matrix.svg)"
