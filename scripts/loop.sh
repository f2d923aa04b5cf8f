#!/usr/bin/env bash
# The main job: the local auto-train loop on embedded defaults.
#
#   scripts/loop.sh
#
# Today: set-up, train on the shared stack_overflow_16k data, verify the bundle with the
# serving core, and score it; then retrain-register-gate against MLflow (a local server
# unless MLFLOW_TRACKING_URI is set). (Sync and serving join as their issues land.)
# Everything it writes goes under .stacktag/ in the repo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA="$SHARED_DATA/stackoverflow16k"
WORK="$ROOT/.stacktag"
mkdir -p "$WORK"

bash scripts/setup.sh
cargo build --release --locked -p trainer

TRAINER="$TARGET_DIR/release/trainer"
"$TRAINER" train --data "$DATA/train.csv.gz" --eval "$DATA/test.csv.gz" --out "$WORK/bundle"
"$TRAINER" evaluate --bundle "$WORK/bundle" --data "$DATA/test.csv.gz"
echo "bundle: $WORK/bundle (confusion matrix: $WORK/bundle/confusion_matrix.svg)"

# --- the registry and the gate --------------------------------------------------------------
# A local MLflow server under .stacktag/mlflow (kept between runs) unless MLFLOW_TRACKING_URI
# points at one. Then the scheduler's step: retrain only if the data changed since the
# champion, register the model as `challenger`, and promote it only if it scores at least as
# well as the champion on the same test set. A second run on the same data says so and stops.
if [ -z "${MLFLOW_TRACKING_URI:-}" ]; then
  export MLFLOW_TRACKING_URI="http://127.0.0.1:${STACKTAG_MLFLOW_PORT:-5000}"
  if ! curl -fsS "$MLFLOW_TRACKING_URI/health" >/dev/null 2>&1; then
    mkdir -p "$WORK/mlflow"
    # Its own process group, so that stopping it also stops its workers.
    MLFLOW_LOG="$WORK/mlflow/server.log"
    setsid "$CACHE/venv/bin/mlflow" server \
      --backend-store-uri "sqlite:///$WORK/mlflow/mlflow.db" --artifacts-destination "$WORK/mlflow/artifacts" \
      --host 127.0.0.1 --port "${STACKTAG_MLFLOW_PORT:-5000}" --workers 1 >"$MLFLOW_LOG" 2>&1 &
    MLFLOW_PID=$!
    # On exit: stop the whole group and wait until it is gone (a graceful uvicorn shutdown
    # takes seconds; a next run must not find a server that is about to vanish).
    stop_mlflow() {
      kill -TERM -- "-$MLFLOW_PID" 2>/dev/null || return 0
      for _ in $(seq 1 100); do
        kill -0 -- "-$MLFLOW_PID" 2>/dev/null || return 0
        sleep 0.2
      done
      kill -KILL -- "-$MLFLOW_PID" 2>/dev/null || true
    }
    trap stop_mlflow EXIT
    # It starts in 12-16 s here; two minutes covers a cold, busy machine.
    wait_http "$MLFLOW_TRACKING_URI/health" 120 "the local MLflow server" ||
      die "MLflow did not come up at \`$MLFLOW_TRACKING_URI\`; its log is \`$MLFLOW_LOG\`" \
        "(last lines: $(tail -n 5 "$MLFLOW_LOG" 2>/dev/null | tr '\n' ' '))"
  fi
fi
"$TRAINER" retrain --data "$DATA/train.csv.gz" --eval "$DATA/test.csv.gz" --out "$WORK/candidate"
