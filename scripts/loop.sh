#!/usr/bin/env bash
# The main job: new data lands, and minutes later the edge and the browser serve a better
# model. Everything on loopback, on embedded defaults:
#
#   scripts/loop.sh [--once]
#
# 0. Set-up (idempotent) and builds: the release trainer and registry-sync, the generic edge
#    component (compiled once; models are baked into copies of it), the web demo's site.
#    Not counted in `loop_seconds`.
# 1. The stack: MLflow (sqlite, webhooks on) unless MLFLOW_TRACKING_URI points at one;
#    registry-sync serve (local deployer, webhook registered, polling as the fallback) with
#    its gateway on 127.0.0.1:8780 (STACKTAG_GATEWAY_PORT), fronting the edge component and the
#    web demo at /demo/; Prometheus scraping the gateway every 2 s (prometheus/prometheus.yml,
#    scrape interval shortened for this loop).
# 2. The shared training data is cut into batches (`trainer split`: 500 questions per language
#    first, then the rest) and the first one lands in the inbox, `$STATE/inbox/`.
# 3. The scheduler, `trainer retrain --data INBOX` every STACKTAG_RETRAIN_EVERY seconds (5),
#    trains only when the inbox's data changed since the champion, registers `challenger`
#    and lets the gate promote it only if it beats the champion on the same test set. The
#    promotion moves `champion`; MLflow's webhook tells registry-sync, which verifies, bakes
#    and swaps the edge instance.
# 4. Once v1 serves, the next batch lands, under load through the gateway: v2 is trained,
#    gated, promoted and swapped in with no failed request.
# 5. A few real test questions classified through the gateway, the URLs, the time of each
#    step. It stays up until Ctrl-C, then stops what it started; `--once` stops right away,
#    and its last line is one JSON object:
#      {"champion_version", "served_version", "versions_promoted", "failed_requests",
#       "loop_seconds", "prometheus_model_versions", "state_dir"}
#
# All state lives under STACKTAG_STATE_DIR (default .stacktag/). A second run reuses it: the
# inbox holds every batch already, and the scheduler says the champion is current.
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
STATE="${STACKTAG_STATE_DIR:-$ROOT/.stacktag}"
GATEWAY_PORT="${STACKTAG_GATEWAY_PORT:-8780}"
PROMETHEUS_PORT="${STACKTAG_PROMETHEUS_PORT:-9090}"
MLFLOW_PORT="${STACKTAG_MLFLOW_PORT:-5000}"
RETRAIN_EVERY="${STACKTAG_RETRAIN_EVERY:-5}"
MODEL=stacktag
GATEWAY="http://127.0.0.1:$GATEWAY_PORT"
PROMETHEUS="http://127.0.0.1:$PROMETHEUS_PORT"
[ -f "$DATA/train.csv.gz" ] || die "the shared data is missing at \`$DATA\` (set STACKTAG_SHARED_DATA to the folder holding stackoverflow16k/)"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
PY="$CACHE/venv/bin/python"

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

# --- 0. set-up and builds (not timed) ------------------------------------------------------
log "set-up and builds"
bash scripts/setup.sh
cargo build --release --locked -p trainer -p registry-sync
bash scripts/build-edge.sh build
# The site only: the gateway serves the serving model's bundle in place of this one.
bash scripts/build-web.sh --bundle tiny-fixture --out "$STATE/web-demo"
TRAINER="$TARGET_DIR/release/trainer"
SYNC="$TARGET_DIR/release/registry-sync"

started=$(date +%s.%N)
elapsed() { awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }
step() { log "[$(elapsed) s] $*"; }
TIMES=()
mark() { TIMES+=("$(elapsed) s  $*"); }

# --- 1. the stack --------------------------------------------------------------------------
if [ -z "${MLFLOW_TRACKING_URI:-}" ]; then
  export MLFLOW_TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"
  if curl -fsS "$MLFLOW_TRACKING_URI/health" >/dev/null 2>&1; then
    step "MLflow already answers at $MLFLOW_TRACKING_URI"
  else
    mkdir -p "$STATE/mlflow"
    # Webhook secrets are stored encrypted with this key; a fixed one per state dir keeps
    # registered webhooks working across restarts (docs/toolchain.md).
    [ -s "$STATE/mlflow/fernet.key" ] ||
      "$PY" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' >"$STATE/mlflow/fernet.key"
    MLFLOW_LOG="$STATE/mlflow/server.log"
    MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY="$(cat "$STATE/mlflow/fernet.key")" \
      MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true \
      MLFLOW_WEBHOOK_CACHE_TTL=1 MLFLOW_DISABLE_TELEMETRY=true \
      start MLflow "$MLFLOW_LOG" "$CACHE/venv/bin/mlflow" server \
      --backend-store-uri "sqlite:///$STATE/mlflow/mlflow.db" --artifacts-destination "$STATE/mlflow/artifacts" \
      --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1
    # It starts in 12-16 s here; two minutes covers a cold, busy machine.
    wait_http "$MLFLOW_TRACKING_URI/health" 120 "the local MLflow server" ||
      die "MLflow did not come up at \`$MLFLOW_TRACKING_URI\`; its log is \`$MLFLOW_LOG\`" \
        "(last lines: $(tail -n 5 "$MLFLOW_LOG" 2>/dev/null | tr '\n' ' '))"
  fi
fi
mark "MLflow up"
champion() {
  curl -fsS "$MLFLOW_TRACKING_URI/api/2.0/mlflow/registered-models/alias?name=$MODEL&alias=champion" 2>/dev/null |
    jq -r '.model_version.version // empty' 2>/dev/null || true
}
served() { served_version "$GATEWAY"; }
initial_champion="$(champion)"

# The smoke evaluation reads plain CSV: the test set, decompressed once.
[ -s "$STATE/eval.csv" ] || gzip -dc "$DATA/test.csv.gz" >"$STATE/eval.csv"
[ -s "$STATE/webhook-secret" ] || (umask 077 && head -c 32 /dev/urandom | base64 >"$STATE/webhook-secret")
curl -fsS "$GATEWAY/gateway/health" >/dev/null 2>&1 &&
  die "something already answers at $GATEWAY: stop it or set STACKTAG_GATEWAY_PORT"
STACKTAG_WEBHOOK_SECRET="$(cat "$STATE/webhook-secret")" \
  start registry-sync "$STATE/registry-sync.log" "$SYNC" serve --registered-model "$MODEL" \
  --eval "$STATE/eval.csv" --state-dir "$STATE/sync" --listen "127.0.0.1:$GATEWAY_PORT" \
  --poll-interval 10 --register-webhook --web-demo "$STATE/web-demo"
wait_http "$GATEWAY/gateway/health" 60 "the registry-sync gateway" ||
  die "registry-sync did not start; its log is \`$STATE/registry-sync.log\`" \
    "(last lines: $(tail -n 5 "$STATE/registry-sync.log" 2>/dev/null | tr '\n' ' '))"
# What registry-sync does, as it happens (its full log stays in the file).
setsid bash -c "tail -n 0 -F '$STATE/registry-sync.log' 2>/dev/null | grep --line-buffered -E '^registry-sync: (version|sync failed|MLflow webhook)'" &
PIDS+=("$!")

prometheus_up=0
if curl -fsS "$PROMETHEUS/-/ready" >/dev/null 2>&1; then
  step "something already answers at $PROMETHEUS: not starting Prometheus"
else
  mkdir -p "$STATE/prometheus"
  sed -e "s/127.0.0.1:8780/127.0.0.1:$GATEWAY_PORT/" -e 's/^\(  scrape_interval:\).*/\1 2s/' \
    prometheus/prometheus.yml >"$STATE/prometheus/prometheus.yml"
  cp prometheus/alerts.yml "$STATE/prometheus/alerts.yml"
  start Prometheus "$STATE/prometheus/server.log" prometheus \
    --config.file="$STATE/prometheus/prometheus.yml" --storage.tsdb.path="$STATE/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
  wait_http "$PROMETHEUS/-/ready" 60 "Prometheus" || die "Prometheus did not start (log: $STATE/prometheus/server.log)"
  prometheus_up=1
fi
mark "registry-sync and Prometheus up"

# --- 2. batches and the inbox --------------------------------------------------------------
BATCHES="$STATE/batches"
INBOX="$STATE/inbox"
if [ ! -f "$BATCHES/batch-0002.parquet" ]; then
  "$TRAINER" split --data "$DATA/train.csv.gz" --out "$BATCHES" --first-per-label 500 --rest-batches 1 | sed 's/^/split: /'
fi
mkdir -p "$INBOX"
land() { # land BATCH: copy under a name the trainer does not read, then rename into place
  cp "$BATCHES/$1" "$INBOX/.$1.landing"
  mv "$INBOX/.$1.landing" "$INBOX/$1"
  step "landed $1 in $INBOX"
}
[ -f "$INBOX/batch-0001.parquet" ] || land batch-0001.parquet

# --- 3. the scheduler ----------------------------------------------------------------------
# One retrain at a time; what it decides goes to the screen, its "nothing to do" to its log.
: >"$STATE/scheduler.log"
setsid bash -c "
  while true; do
    '$TRAINER' retrain --data '$INBOX' --eval '$DATA/test.csv.gz' --registered-model '$MODEL' 2>&1 |
      sed 's/^/scheduler: /' | tee -a '$STATE/scheduler.log' | grep --line-buffered -v '^scheduler: nothing to do' || true
    sleep $RETRAIN_EVERY
  done" &
PIDS+=("$!")
step "started the scheduler: trainer retrain on $INBOX every $RETRAIN_EVERY s (log: $STATE/scheduler.log)"

# `wait_serving WHAT TIMEOUT`: until the champion is set and the gateway serves it.
wait_serving() {
  local deadline=$(($(date +%s) + $2)) c s
  while :; do
    c="$(champion)"
    s="$(served)"
    [ -n "$c" ] && [ "$c" = "$s" ] && [ "$c" != "${3:-}" ] && { echo "$c"; return 0; }
    [ "$(date +%s)" -lt "$deadline" ] ||
      die "$1 did not reach the gateway within $2 s (champion: ${c:-none}, served: ${s:-none});" \
        "see $STATE/scheduler.log and $STATE/registry-sync.log"
    sleep 0.2
  done
}
# `wait_scraped VERSION`: until Prometheus has stored stacktag_model_info for it.
wait_scraped() {
  [ "$prometheus_up" = 1 ] || return 0
  local deadline=$(($(date +%s) + 60))
  until curl -fsS "$PROMETHEUS/api/v1/query" --data-urlencode "query=stacktag_model_info{version=\"$1\"}" 2>/dev/null |
    jq -e '.data.result | length > 0' >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || die "Prometheus never scraped stacktag_model_info for version $1"
    sleep 0.5
  done
}

v1="$(wait_serving "the first model" 600)"
mark "version $v1 serves"
wait_scraped "$v1"

# --- 4. the next batch lands, under load ----------------------------------------------------
failed_requests=0
if [ ! -f "$INBOX/batch-0002.parquet" ]; then
  # Back-to-back classifications through the gateway until told to stop: every answer that is
  # not a 200 counts as failed.
  LOAD_DIR="$(mktemp -d "$STATE/.load.XXXXXX")"
  setsid bash -c "
    ok=0; failed=0
    while [ ! -e '$LOAD_DIR/stop' ]; do
      code=\$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: text/plain' \
        --data-binary 'how do i sort a dict by value in a list comprehension' '$GATEWAY/classify')
      if [ \"\$code\" = 200 ]; then ok=\$((ok + 1)); else failed=\$((failed + 1)); echo \"\$code\" >>'$LOAD_DIR/failures'; fi
      sleep 0.05
    done
    echo \"\$ok \$failed\" >'$LOAD_DIR/result'" &
  PIDS+=("$!")
  land batch-0002.parquet
  v2="$(wait_serving "the model trained on the new batch" 600 "$v1")"
  mark "version $v2 serves"
  touch "$LOAD_DIR/stop"
  for _ in $(seq 1 100); do [ -s "$LOAD_DIR/result" ] && break; sleep 0.1; done
  read -r load_ok failed_requests <"$LOAD_DIR/result"
  step "load through the gateway during the swap: $load_ok answered, $failed_requests failed"
  rm -rf "$LOAD_DIR"
  wait_scraped "$v2"
else
  # The scheduler's first round on the unchanged inbox says so.
  deadline=$(($(date +%s) + 120))
  until grep -q '^scheduler: nothing to do' "$STATE/scheduler.log" 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || die "the scheduler never finished a round (log: $STATE/scheduler.log)"
    sleep 0.2
  done
  step "every batch is in the inbox already; $(grep '^scheduler: nothing to do' "$STATE/scheduler.log" | tail -n 1)"
fi

# --- 5. what serves now ----------------------------------------------------------------------
final="$(served)"
echo
echo "real test questions through the gateway ($GATEWAY/classify):"
"$PY" scripts/sample_questions.py "$DATA/test.csv.gz" 1 | while read -r row; do
  truth="$(jq -r .label <<<"$row")"
  jq -r .text <<<"$row" >"$STATE/.question"
  answer="$(curl -fsS -D "$STATE/.headers" -H 'content-type: text/plain' --data-binary @"$STATE/.question" "$GATEWAY/classify")"
  version="$(sed -n 's/^x-stacktag-model-version: *//Ip' "$STATE/.headers" | tr -d '\r')"
  printf '  %-10s -> %-10s (p %.3f, version %s)  %s...\n' "$truth" "$(jq -r .label <<<"$answer")" \
    "$(jq -r '[.probabilities[].probability] | max' <<<"$answer")" "$version" "$(head -c 70 "$STATE/.question" | tr '\n' ' ')"
done
rm -f "$STATE/.question" "$STATE/.headers"
echo
echo "web demo:   $GATEWAY/demo/"
echo "gateway:    $GATEWAY  (POST /classify, GET /model, GET /health, GET /metrics)"
echo "MLflow UI:  $MLFLOW_TRACKING_URI"
[ "$prometheus_up" = 1 ] && echo "Prometheus: $PROMETHEUS"
echo "state:      $STATE"
echo
echo "time since the stack started:"
printf '  %s\n' "${TIMES[@]}"
echo

promoted=()
[ "$initial_champion" = "$v1" ] || promoted+=("$v1")
[ -n "${v2:-}" ] && promoted+=("$v2")
prom_versions='[]'
if [ "$prometheus_up" = 1 ]; then
  prom_versions="$(curl -fsS "$PROMETHEUS/api/v1/query" --data-urlencode 'query=count by (version) (count_over_time(stacktag_model_info[1h]))' |
    jq -c '[.data.result[].metric.version] | sort')"
fi
loop_seconds="$(elapsed)"
if [ "$once" = 0 ]; then
  log "serving until Ctrl-C; drop more batches into $INBOX and the scheduler picks them up"
  wait
fi
jq -cn --arg champion "$(champion)" --arg served "$final" --argjson failed "$failed_requests" \
  --argjson seconds "$loop_seconds" --argjson prom "$prom_versions" --arg state "$STATE" \
  --args '{champion_version: $champion, served_version: $served, versions_promoted: $ARGS.positional,
    failed_requests: $failed, loop_seconds: $seconds, prometheus_model_versions: $prom, state_dir: $state}' \
  "${promoted[@]}"
