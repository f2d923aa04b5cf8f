#!/usr/bin/env bash
# The main job as a test: `scripts/loop.sh --once` on a fresh state directory and free loopback
# ports, then its last line (one JSON object) is checked:
#   - versions 1 then 2 became champion (the first batch, then the next one);
#   - the gateway serves version 2, the champion;
#   - no request through the gateway failed during the swap;
#   - Prometheus scraped stacktag_model_info for both versions.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE="$(mktemp -d "${TMPDIR:-/tmp}/stacktag-loop.XXXXXX")"
trap 'rm -rf "$STATE"' EXIT
export STACKTAG_STATE_DIR="$STATE" STACKTAG_GATEWAY_PORT="$(free_port)" \
  STACKTAG_PROMETHEUS_PORT="$(free_port)" STACKTAG_MLFLOW_PORT="$(free_port)"
unset MLFLOW_TRACKING_URI
bash scripts/loop.sh --once | tee "$STATE/loop.out"
result="$(tail -n 1 "$STATE/loop.out")"
jq -e '.versions_promoted == ["1", "2"] and .champion_version == "2" and .served_version == "2"
  and .failed_requests == 0 and (.prometheus_model_versions | index("1") != null and index("2") != null)' \
  <<<"$result" >/dev/null || die "loop.sh --once did not end as expected: $result"
log "loop.sh --once: v1 then v2 promoted, v2 serves, 0 failed requests, both scraped ($(jq .loop_seconds <<<"$result") s)"
