#!/usr/bin/env bash
# The main job: the local train → promote → sync → serve loop, on embedded defaults.
#
#   scripts/loop.sh [--once]
#
# 1. Set-up (idempotent), then the release trainer and registry-sync, and the generic edge
#    component (compiled once; models are baked into copies of it).
# 2. MLflow on loopback (sqlite under .stacktag/mlflow, kept between runs) unless
#    MLFLOW_TRACKING_URI points at one, with webhooks enabled.
# 3. The scheduler's step, `trainer retrain`: train on the shared stack_overflow_16k data only
#    if it changed since the champion, register the model as `challenger`, and let the gate
#    promote it only if it scores at least as well as the champion on the same test set.
# 4. registry-sync serve: sees `champion` (webhook, polling as fallback), checks and bakes the
#    model, and serves it behind its gateway on 127.0.0.1:8780 (STACKTAG_GATEWAY_PORT).
# 5. Prometheus on loopback scraping the gateway (prometheus/prometheus.yml).
# Then one classification through the gateway, and the URLs. It stays up until Ctrl-C and
# then stops what it started; `--once` stops right away. A second run reuses everything under
# .stacktag/ (STACKTAG_STATE_DIR) and says the champion is already current.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

once=0
for arg in "$@"; do
  case "$arg" in
    --once) once=1 ;;
    *) die "unknown argument \`$arg\` (usage: scripts/loop.sh [--once])" ;;
  esac
done

DATA="$SHARED_DATA/stackoverflow16k"
WORK="${STACKTAG_STATE_DIR:-$ROOT/.stacktag}"
GATEWAY_PORT="${STACKTAG_GATEWAY_PORT:-8780}"
PROMETHEUS_PORT="${STACKTAG_PROMETHEUS_PORT:-9090}"
GATEWAY="http://127.0.0.1:$GATEWAY_PORT"
mkdir -p "$WORK"
[ -f "$DATA/train.csv.gz" ] || die "the shared data is missing at \`$DATA\` (set STACKTAG_SHARED_DATA to the folder holding stackoverflow16k/)"
started=$(date +%s)
step() { log "[$(($(date +%s) - started)) s] $*"; }

# Every background process gets its own process group and is stopped on exit, in reverse.
PIDS=()
stop_all() {
  local i pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid="${PIDS[$i]}"
    kill -TERM -- "-$pid" 2>/dev/null || continue
    for _ in $(seq 1 100); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap 'exit 130' INT TERM
start() { # start NAME LOG COMMAND...: in the background, in its own process group
  local name="$1" logfile="$2"
  shift 2
  setsid "$@" >"$logfile" 2>&1 &
  PIDS+=("$!")
  step "started $name (log: $logfile)"
}

step "set-up and builds"
bash scripts/setup.sh
cargo build --release --locked -p trainer -p registry-sync
bash scripts/build-edge.sh build
TRAINER="$TARGET_DIR/release/trainer"
SYNC="$TARGET_DIR/release/registry-sync"

# --- MLflow ----------------------------------------------------------------------------------
if [ -z "${MLFLOW_TRACKING_URI:-}" ]; then
  export MLFLOW_TRACKING_URI="http://127.0.0.1:${STACKTAG_MLFLOW_PORT:-5000}"
  if curl -fsS "$MLFLOW_TRACKING_URI/health" >/dev/null 2>&1; then
    step "MLflow already answers at $MLFLOW_TRACKING_URI"
  else
    mkdir -p "$WORK/mlflow"
    # Webhook secrets are stored encrypted with this key; a fixed one per state dir keeps
    # registered webhooks working across restarts (TOOLCHAIN.md).
    [ -s "$WORK/mlflow/fernet.key" ] ||
      "$CACHE/venv/bin/python" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' \
        >"$WORK/mlflow/fernet.key"
    MLFLOW_LOG="$WORK/mlflow/server.log"
    MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY="$(cat "$WORK/mlflow/fernet.key")" \
      MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true \
      MLFLOW_WEBHOOK_CACHE_TTL=1 MLFLOW_DISABLE_TELEMETRY=true \
      start MLflow "$MLFLOW_LOG" "$CACHE/venv/bin/mlflow" server \
      --backend-store-uri "sqlite:///$WORK/mlflow/mlflow.db" --artifacts-destination "$WORK/mlflow/artifacts" \
      --host 127.0.0.1 --port "${STACKTAG_MLFLOW_PORT:-5000}" --workers 1
    # It starts in 12-16 s here; two minutes covers a cold, busy machine.
    wait_http "$MLFLOW_TRACKING_URI/health" 120 "the local MLflow server" ||
      die "MLflow did not come up at \`$MLFLOW_TRACKING_URI\`; its log is \`$MLFLOW_LOG\`" \
        "(last lines: $(tail -n 5 "$MLFLOW_LOG" 2>/dev/null | tr '\n' ' '))"
    step "MLflow answers at $MLFLOW_TRACKING_URI"
  fi
fi

# --- train, register, gate -------------------------------------------------------------------
step "trainer retrain (trains only if the data changed since the champion)"
"$TRAINER" retrain --data "$DATA/train.csv.gz" --eval "$DATA/test.csv.gz" --out "$WORK/candidate" --quiet

# --- registry-sync: watch the champion, bake it, serve it -------------------------------------
# The smoke evaluation reads plain CSV: the test set, decompressed once.
[ -s "$WORK/eval.csv" ] || gzip -dc "$DATA/test.csv.gz" >"$WORK/eval.csv"
[ -s "$WORK/webhook-secret" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$WORK/webhook-secret")
curl -fsS "$GATEWAY/gateway/health" >/dev/null 2>&1 &&
  die "something already answers at $GATEWAY: stop it or set STACKTAG_GATEWAY_PORT"
STACKTAG_WEBHOOK_SECRET="$(cat "$WORK/webhook-secret")" \
  start registry-sync "$WORK/registry-sync.log" "$SYNC" serve \
  --eval "$WORK/eval.csv" --state-dir "$WORK/sync" --listen "127.0.0.1:$GATEWAY_PORT" \
  --poll-interval 5 --register-webhook
wait_http "$GATEWAY/health" 300 "the registry-sync gateway serving a model (GET /health through it)" ||
  die "registry-sync did not serve a model; its log is \`$WORK/registry-sync.log\`" \
    "(last lines: $(tail -n 5 "$WORK/registry-sync.log" 2>/dev/null | tr '\n' ' '))"
step "the gateway serves a model at $GATEWAY"

# --- Prometheus, scraping the gateway ---------------------------------------------------------
if command -v prometheus >/dev/null && ! curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null 2>&1; then
  mkdir -p "$WORK/prometheus"
  sed "s/127.0.0.1:8780/127.0.0.1:$GATEWAY_PORT/" prometheus/prometheus.yml >"$WORK/prometheus/prometheus.yml"
  cp prometheus/alerts.yml "$WORK/prometheus/alerts.yml"
  start Prometheus "$WORK/prometheus/server.log" prometheus \
    --config.file="$WORK/prometheus/prometheus.yml" --storage.tsdb.path="$WORK/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
  wait_http "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" 60 "Prometheus" || die "Prometheus did not start"
fi

# --- one classification through the gateway --------------------------------------------------
QUESTION='How do I group a list of objects by a field with streams? I tried Collectors.groupingBy but get a Map of Lists'
answer="$(curl -fsS -D "$WORK/last-answer.headers" -H 'content-type: text/plain' --data-binary "$QUESTION" "$GATEWAY/classify")"
version="$(sed -n 's/^x-stacktag-model-version: *//Ip' "$WORK/last-answer.headers" | tr -d '\r')"
label="$(printf '%s' "$answer" | sed -n 's/^{"label":"\([^"]*\)".*/\1/p')"
echo
echo "question: $QUESTION"
echo "answer:   ${label:-?} (model version ${version:-?}); full answer: $answer"
echo
echo "gateway:    $GATEWAY  (POST /classify, GET /model, GET /health, /metrics)"
echo "MLflow UI:  $MLFLOW_TRACKING_URI"
echo "Prometheus: http://127.0.0.1:$PROMETHEUS_PORT"
echo "state:      $WORK"
step "done"
if [ "$once" = 1 ]; then
  exit 0
fi
log "serving until Ctrl-C"
wait
