#!/usr/bin/env bash
# Self-test of the Databricks stand-in: MLflow's own client (and databricks-sdk) round-trip
# through it, every fault shows once, and closing its stdin leaves no process behind.
#
#   tools/databricks-standin/selftest.sh            (STACKTAG_VENV: the venv, default ~/.cache/stacktag/venv)
#
# Prints one line per step and ends with "selftest: N passed, 0 failed"; exits non-zero on the
# first failure, after showing the stand-in's log.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${STACKTAG_VENV:-$HOME/.cache/stacktag/venv}"
PY="$VENV/bin/python"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/standin-selftest.XXXXXX")"
MODEL=main.stacktag.rt
START=$(date +%s)
PASSED=0
SPID=""

log() { printf 'selftest %3ds %s\n' "$(($(date +%s) - START))" "$*"; }

# Processes whose command line names this run's work dir: the stand-in and its MLflow tree.
ours() {
  local p
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$WORK/"; then
      echo "${p#/proc/}"
    fi
  done
}

cleanup() {
  local rc=$?
  exec 9>&- 2>/dev/null || true
  if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then kill -TERM "$SPID" 2>/dev/null || true; sleep 2; fi
  for p in $(ours); do kill -KILL "$p" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ]; then
    echo "--- oracle log (last 40 lines) ---"
    tail -n 40 "$WORK/oracle.log" 2>/dev/null || true
    echo "--- stand-in log (last 40 lines) ---"
    tail -n 40 "$WORK/standin.log" 2>/dev/null || true
    echo "selftest: $PASSED passed, 1 failed (work dir kept: $WORK)"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# The oracle's stderr (MLflow's chatter, and its MISMATCH/FAILED line) goes to a log shown on failure.
oracle() { "$PY" "$HERE/oracle.py" --standin "@$WORK/standin.json" "$@" 2>>"$WORK/oracle.log"; }
field() { "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); print(eval(sys.argv[1], {}, {"d": d}))' "$1"; }
pass() { PASSED=$((PASSED + 1)); log "ok: $*"; }

# --- start: stdin is a FIFO this shell holds open on fd 9 (closing it = EOF) ---------------
mkfifo "$WORK/stdin"
"$PY" "$HERE/standin.py" --state-dir "$WORK/state" <"$WORK/stdin" >"$WORK/standin.json" 2>"$WORK/standin.log" &
SPID=$!
exec 9>"$WORK/stdin"
for _ in $(seq 1 360); do
  [ -s "$WORK/standin.json" ] && break
  kill -0 "$SPID" 2>/dev/null || { log "the stand-in exited before it was ready"; exit 1; }
  sleep 0.5
done
[ -s "$WORK/standin.json" ] || { log "the stand-in did not get ready in 180 s"; exit 1; }
[ "$(wc -l <"$WORK/standin.json")" -eq 1 ] || { log "the stand-in printed more than one line"; exit 1; }
HOST="$(field 'd["host"]' <"$WORK/standin.json")"
pass "stand-in ready at $HOST (s3 $(field 'd["s3_endpoint"]' <"$WORK/standin.json"))"

# --- MLflow's client: log, register, alias, load, download --------------------------------
RT="$(oracle roundtrip --model "$MODEL")"
VERSION="$(field 'd["version"]' <<<"$RT")"
SHA="$(field 'd["run_artifact"]["sha256"]' <<<"$RT")"
pass "roundtrip: $MODEL v$VERSION READY, champion set, ONNX loaded and run, run artifact bytes equal"

CK="$(oracle check --model "$MODEL" --alias champion --version "$VERSION" --tag stacktag.oracle=roundtrip \
  --run-artifact reports/eval.bin --require-pyfunc)"
[ "$(field 'd["run_artifact"]["files"]["eval.bin"]["sha256"]' <<<"$CK")" = "$SHA" ] ||
  { log "check downloaded a different run artifact"; exit 1; }
pass "check (PAT): v$(field 'd["version"]' <<<"$CK"), inputs $(field '[i["name"] for i in d["onnx_inputs"]]' <<<"$CK")"

# The same through OAuth M2M, and with MLflow's SDK Files API path switched off.
MLFLOW_DISABLE_DATABRICKS_SDK_FOR_RUN_ARTIFACTS=true oracle --auth oauth check --model "$MODEL" \
  --version "$VERSION" --run-artifact reports/eval.bin >/dev/null
pass "check (OAuth M2M, MLFLOW_DISABLE_DATABRICKS_SDK_FOR_RUN_ARTIFACTS=true)"

# --- databricks-sdk's OAuth M2M token request ----------------------------------------------
OA="$(oracle oauth-token)"
pass "oauth-token: $(field '" / ".join(d["sequence"])' <<<"$OA")"
oracle oauth-token --client-secret not-the-secret --expect-error invalid_client >/dev/null
pass "oauth-token with a wrong secret: invalid_client"

# --- the HTTP contract docs/databricks-standin.md documents ------------------------------------------------
oracle protocol >/dev/null
pass "protocol: errors, S3 refusals, paging, signed headers"

# --- every fault once, through MLflow's client ----------------------------------------------
FA="$(oracle faults --model "$MODEL")"
pass "faults: $(field '", ".join(k for k in d if k != "command")' <<<"$FA")"

# --- stop by closing stdin: the stand-in exits 0 and nothing of it is left -------------------
exec 9>&-
for _ in $(seq 1 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$SPID" 2>/dev/null; then log "the stand-in did not exit within 20 s of stdin EOF"; exit 1; fi
wait "$SPID" || { log "the stand-in exited with $?"; exit 1; }
SPID=""
LEFT="$(ours)"
[ -z "$LEFT" ] || { log "processes left behind: $LEFT"; ps -o pid,cmd -p $LEFT || true; exit 1; }
pass "stdin EOF: stand-in exited 0, no MLflow process left"

log "done in $(($(date +%s) - START)) s"
echo "selftest: $PASSED passed, 0 failed"
