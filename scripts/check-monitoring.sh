#!/usr/bin/env bash
# Checks the monitoring files offline: the Prometheus config and alert rules with promtool
# (syntax, and the unit tests in prometheus/alerts_test.yml that fire each alert and keep it
# quiet), and the Grafana dashboards' structure. The live check, in which a real Prometheus
# scrapes a real gateway and runs every query, is a registry-sync test.
#
#   scripts/check-monitoring.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
command -v promtool >/dev/null || die "promtool is missing: run scripts/setup.sh (Debian prometheus)"
log "promtool check config (local, and production's)"
promtool check config prometheus/prometheus.yml
promtool check config prometheus/production.yml
log "promtool check rules"
promtool check rules prometheus/alerts.yml prometheus/gateway-alerts.yml prometheus/edge-alerts.yml
log "promtool test rules (each alert fires and stays quiet)"
promtool test rules prometheus/alerts_test.yml prometheus/edge-alerts_test.yml
log "the Collector's pipeline against what the edge alerts and dashboard read"
"$CACHE/venv/bin/python" tools/lint/check_otel.py
"$CACHE/venv/bin/python" tools/lint/check_otel.py --self-test
log "amtool check-config (where the alerts go)"
command -v amtool >/dev/null || die "amtool is missing: run scripts/setup.sh (Debian prometheus-alertmanager)"
amtool check-config prometheus/alertmanager.yml
log "grafana dashboards"
"$CACHE/venv/bin/python" scripts/check_dashboards.py grafana
