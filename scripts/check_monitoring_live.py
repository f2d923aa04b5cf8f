"""Runs every dashboard query and every alert rule against a live Prometheus that scraped a
real registry-sync gateway: a panel whose query returns nothing, or a rule that reads a
metric nobody exports, fails.

    python check_monitoring_live.py PROMETHEUS_URL [TIMEOUT_S]

Dashboard queries must return data (every panel shows something). An alert's expression
is mostly empty when all is well (it returns only what breaches), so for rules the check is
that the expression is valid PromQL and that every metric it reads has series. Polls until
all pass or TIMEOUT_S (default 60) runs out, since scrapes come every few seconds; exits 1
naming the first query that still fails.
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
# A histogram bucket picked by its bound: the bound must be one the exporter really uses
# (its float formatting included), or the rule would silently never match.
BUCKET = re.compile(r'(stacktag_[a-z0-9_]+_bucket\{[^}]*le="[^"]+"[^}]*\})')


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


def checks():
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                yield f"{path.name}: panel {panel['title']!r} {target['refId']}", target["expr"], True
    rules = yaml.safe_load((ROOT / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            yield f"alerts.yml: {name}", rule["expr"], False
            for metric in sorted(set(METRIC.findall(rule["expr"]))):
                yield f"alerts.yml: {name} reads {metric}", f'count({{__name__="{metric}"}})', True
            for bucket in sorted(set(BUCKET.findall(rule["expr"]))):
                yield f"alerts.yml: {name} reads the bucket {bucket}", bucket, True


def main(base, timeout):
    deadline = time.time() + timeout
    pending = list(checks())
    while True:
        failing = []
        for what, expr, needs_data in pending:
            result, error = query(base, expr)
            if error is not None:
                failing.append((what, expr, f"invalid: {error}"))
            elif needs_data and not result:
                failing.append((what, expr, "no data"))
        if not failing:
            print(json.dumps({"checked": len(pending)}))
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
