"""Runs every dashboard query and every alert rule against a live Prometheus that scraped a
real registry-sync gateway: a panel whose query returns nothing, or a rule that reads a
metric nobody exports, fails.

    python check_monitoring_live.py PROMETHEUS_URL [TIMEOUT_S]

Dashboard queries must return data (every panel shows something). An alert's expression
is mostly empty when all is well (it returns only what breaches), so for rules the check is
that the expression is valid PromQL and that every metric it reads has series. Polls until
all pass or TIMEOUT_S (default 60) runs out, since scrapes come every few seconds; exits 1
naming the first query that still fails.

What production's edge reports through the OpenTelemetry Collector (`traces_span_metrics_*`,
`spin_*`: prometheus/edge-alerts.yml, the edge dashboard's panels) has no source here (no
Spin, no Collector), so those queries are only parsed and run by this Prometheus, and counted
apart as `parsed_only`; tools/lint/check_otel.py checks their names against the Collector's
pipeline offline.
"""

import json
import pathlib
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
METRIC = re.compile(r"\b(stacktag_[a-z0-9_]+)")
# Metrics only the production Collector exports (deploy/kubernetes/platform/).
EDGE_METRIC = re.compile(r"\b(traces_span_metrics_[a-z0-9_]+|spin_[a-z0-9_]+)")
# A selector with its label matchers: `name{a="x", b=~"y"}` (`up` too, the scrape rules).
SELECTOR = re.compile(r'\b((?:stacktag_[a-z0-9_]+|up))\{([^}]*)\}')
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        return None, body.get("error", "query failed")
    return body["data"]["result"], None


def equality_selectors(expr):
    """Each selector of `expr` cut to its equality matchers (`route="classify"`,
    `le="0.032"`, `job="stacktag-gateway"`): those must match series, so a typo in a label
    value (or a histogram bound the exporter does not use, its float formatting included)
    fails. Regex and negative matchers may rightly match nothing on a healthy gateway
    (`status=~"5.."`), so they are left out."""
    for name, matchers in SELECTOR.findall(expr):
        equal = [f'{k}="{v}"' for k, op, v in MATCHER.findall(matchers) if op == "="]
        if equal:
            yield f"{name}{{{','.join(equal)}}}"


def has_data(result):
    """A result is data when at least one series has a number: an all-NaN answer (a ratio of
    two zero rates) is a panel that shows nothing."""
    for series in result:
        values = [series["value"]] if "value" in series else series.get("values", [])
        if any(v[1] not in ("NaN", "+Inf", "-Inf") for v in values):
            return True
    return False


def every_value(expr):
    """A dashboard query as Grafana runs it with "All" picked in every variable."""
    return expr.replace("$instance", ".*").replace("$version", ".*")


def rule_files(config):
    """The rule files a Prometheus configuration in prometheus/ loads."""
    return yaml.safe_load((ROOT / "prometheus" / config).read_text()).get("rule_files") or []


def checks():
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                edge = bool(EDGE_METRIC.search(target["expr"]))
                yield f"{path.name}: panel {panel['title']!r} {target['refId']}", every_value(target["expr"]), not edge
        for var in dashboard.get("templating", {}).get("list", []):
            m = re.fullmatch(r"label_values\((.+), *(\w+)\)", var.get("definition", ""))
            if m:
                expr = f"count by ({m.group(2)}) ({every_value(m.group(1))})"
                yield f"{path.name}: variable ${var['name']}", expr, True
        for note in dashboard.get("annotations", {}).get("list", []):
            if note.get("expr"):
                # A version change is an event: valid PromQL over series that exist.
                yield f"{path.name}: annotation {note['name']!r}", every_value(note["expr"]), False
                for metric in sorted(set(METRIC.findall(note["expr"]))):
                    yield f"{path.name}: annotation {note['name']!r} reads {metric}", f'count({{__name__="{metric}"}})', True
    # Every rule file either configuration loads: the local one's over the live gateway, the
    # production one's edge rules parsed only.
    local = rule_files("prometheus.yml")
    for file in dict.fromkeys(local + rule_files("production.yml")):
        rules = yaml.safe_load((ROOT / "prometheus" / file).read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                yield f"{file}: {name}", rule["expr"], False
                if file not in local:
                    continue
                for metric in sorted(set(METRIC.findall(rule["expr"]))):
                    yield f"{file}: {name} reads {metric}", f'count({{__name__="{metric}"}})', True
                for selector in sorted(set(equality_selectors(rule["expr"]))):
                    yield f"{file}: {name} reads {selector}", selector, True


def main(base, timeout):
    deadline = time.time() + timeout
    pending = list(checks())
    while True:
        failing = []
        for what, expr, needs_data in pending:
            result, error = query(base, expr)
            if error is not None:
                failing.append((what, expr, f"invalid: {error}"))
            elif needs_data and not has_data(result):
                failing.append((what, expr, "no data" if not result else "only NaN"))
        if not failing:
            parsed_only = sum(1 for _, expr, needs in pending if not needs and EDGE_METRIC.search(expr))
            print(json.dumps({"checked": len(pending), "parsed_only": parsed_only}))
            return 0
        if time.time() > deadline:
            for what, expr, why in failing:
                print(f"error: {what}: {why}: {expr}")
            return 1
        time.sleep(2)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1].rstrip("/"), float(sys.argv[2]) if len(sys.argv) == 3 else 60))
