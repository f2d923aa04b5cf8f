#!/usr/bin/env bash
# What retraining on real new questions does (docs/benchmarks.md#real-data): real Stack
# Overflow questions exported elsewhere (Data Explorer CSV, API JSON; nothing is downloaded),
# cut at SPLIT_AT (default 2023-07-01) into an earlier slice, which `trainer fetch dump` lands
# as batches, and a later slice, landed apart as the data both models are scored on. Model A
# trains on the 16k training set alone; model B on it and the earlier real batches (their
# held-out tenth going to its evaluation data, never to training). Both are scored on the 16k
# test set, on raw-dev and on the later slice, and A is judged on the earlier batches as
# `trainer retrain` judges a champion. Prints one JSON object.
#
#   scripts/bench-real-data.sh EXPORT...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
(($# > 0)) || die "usage: scripts/bench-real-data.sh EXPORT... (Data Explorer CSV or API JSON files)"
exports=()
for f in "$@"; do exports+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")"); done
SPLIT_AT="${SPLIT_AT:-2023-07-01}"
DATA="$SHARED_DATA/stackoverflow16k"
RAW_DEV="$SHARED_DATA/raw-dev/questions.csv.gz"
log "build of the trainer"
cargo build --locked -p trainer --bin trainer --quiet
T="$BIN/trainer"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
python3 tools/posts_from_exports.py --split-at "$SPLIT_AT" --out "$W/early.xml" --out-late "$W/late.xml" \
  "${exports[@]}" >"$W/split.json"
"$T" fetch --inbox "$W/inbox" --eval "$DATA/test.csv.gz" --json dump --posts "$W/early.xml" >"$W/fetch-early.json"
"$T" fetch --inbox "$W/later" --eval "$DATA/test.csv.gz" --eval "$W/inbox" --json dump --posts "$W/late.xml" \
  >"$W/fetch-late.json"
"$T" train --quiet --data "$DATA/train.csv.gz" --eval "$DATA/test.csv.gz" --out "$W/a" --json >/dev/null
"$T" train --quiet --data "$DATA/train.csv.gz" --data "$W/inbox" --eval "$DATA/test.csv.gz" --out "$W/b" --json \
  >"$W/train-b.json"
for m in a b; do
  "$T" evaluate --quiet --json --bundle "$W/$m" --data "$DATA/test.csv.gz" >"$W/$m-test.json"
  "$T" evaluate --quiet --json --bundle "$W/$m" --data "$RAW_DEV" >"$W/$m-raw-dev.json"
  "$T" evaluate --quiet --json --bundle "$W/$m" --data "$W/later" >"$W/$m-later.json"
done
"$T" judge --bundle "$W/a" --trained-on "$DATA/train.csv.gz" --data "$W/inbox" >"$W/judge-early.json"
"$T" judge --bundle "$W/a" --trained-on "$DATA/train.csv.gz" --data "$W/later" >"$W/judge-later.json"
"$T" judge --bundle "$W/a" --trained-on "$DATA/train.csv.gz" --data "$RAW_DEV" >"$W/judge-raw-dev.json"
"$T" judge --bundle "$W/a" --trained-on "$DATA/train.csv.gz" --data "$DATA/test.csv.gz" >"$W/judge-test.json"
W="$W" SPLIT_AT="$SPLIT_AT" python3 - <<'PY'
import json, os
w = os.environ["W"]
r = lambda n: json.load(open(os.path.join(w, n)))
acc = lambda n: round(r(n)["accuracy"], 4)
fig = lambda j: {"questions": j["questions"], "accuracy": round(j["evaluation"]["accuracy"], 4),
                 "unseen_feature_share": round(j["unseen_feature_share"], 4),
                 "label_mix": {k: round(v, 3) for k, v in j["label_mix"].items()}}
early, late = r("fetch-early.json"), r("fetch-late.json")
print(json.dumps({
    "split_at": os.environ["SPLIT_AT"],
    "exported_questions": r("split.json"),
    "earlier_batches": {"labels": early["labels"], "skipped": early["skipped"]},
    "later_slice": {"labels": late["labels"], "skipped": late["skipped"]},
    "model_b_training_rows": r("train-b.json")["train_rows"],
    "accuracy": {
        "16k_only": {"test_16k": acc("a-test.json"), "raw_dev": acc("a-raw-dev.json"), "later_real": acc("a-later.json")},
        "16k_plus_earlier_real": {"test_16k": acc("b-test.json"), "raw_dev": acc("b-raw-dev.json"), "later_real": acc("b-later.json")},
    },
    "judged_16k_only": {"earlier_real": fig(r("judge-early.json")), "later_real": fig(r("judge-later.json")),
                        "raw_dev": fig(r("judge-raw-dev.json")), "test_16k": fig(r("judge-test.json"))},
}, indent=2))
PY
