"""Checks Grafana dashboards offline (there is no Grafana server here): structure, ids, and
that every panel queries the provisioned Prometheus datasource.

    python check_dashboards.py GRAFANA_DIR

GRAFANA_DIR holds provisioning/datasources/*.yaml and dashboards/*.json. Exits 1 naming the
file and the problem; the live check (check_monitoring_live.py) runs the queries themselves.
"""

import json
import pathlib
import sys

import yaml

import re

# A stacktag metric with its matchers, if any.
SELECTOR = re.compile(r"\bstacktag_[a-z0-9_]+(?:\{[^}]*\})?")
# A metric the production Collector exports for the edge (tools/lint/check_otel.py checks the
# names), with its matchers, if any.
EDGE_SELECTOR = re.compile(r"\b(?:traces_span_metrics_[a-z0-9_]+|spin_[a-z0-9_]+)(?:\{[^}]*\})?")
# What picks the edge's own series out of everything a shared Collector may export.
EDGE_SCOPE = ('service_name="stacktag-edge"', 'app_id="stacktag-edge-classifier"')
MIN_SCHEMA_VERSION = 36  # Grafana 9.x+: panels carry their own datasource objects.


def fail(where, problem):
    print(f"error: {where}: {problem}")
    sys.exit(1)


def main(root):
    root = pathlib.Path(root)
    uids = set()
    for path in sorted((root / "provisioning" / "datasources").glob("*.yaml")):
        for ds in yaml.safe_load(path.read_text()).get("datasources", []):
            if ds.get("type") != "prometheus" or not ds.get("uid"):
                fail(path, f"datasource {ds.get('name')!r} must be type prometheus with a uid")
            # A Grafana with a default datasource already (kube-prometheus-stack) refuses a
            # second one and crash-loops.
            if ds.get("isDefault"):
                fail(path, f"datasource {ds['uid']!r} must not be the default")
            # Grafana (not the browser) fetches it: a loopback URL is the container itself.
            url = str(ds.get("url", ""))
            if not url.startswith("${") and any(h in url for h in ("127.0.0.1", "localhost")):
                fail(path, f"datasource {ds['uid']!r} URL {url!r} is loopback: take it from the environment")
            uids.add(ds["uid"])
    if not uids:
        fail(root / "provisioning" / "datasources", "no datasource is provisioned")
    dashboards = sorted((root / "dashboards").glob("*.json"))
    if not dashboards:
        fail(root / "dashboards", "no dashboard")
    seen_uids, queries = set(), 0
    for path in dashboards:
        d = json.loads(path.read_text())
        for key in ("uid", "title", "schemaVersion", "panels"):
            if key not in d:
                fail(path, f"missing `{key}`")
        if not isinstance(d["schemaVersion"], int) or d["schemaVersion"] < MIN_SCHEMA_VERSION:
            fail(path, f"schemaVersion {d['schemaVersion']!r} < {MIN_SCHEMA_VERSION}")
        if d["uid"] in seen_uids:
            fail(path, f"dashboard uid {d['uid']!r} is used twice")
        seen_uids.add(d["uid"])
        variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
        source = variables.get("datasource")
        if not source or source.get("type") != "datasource" or source.get("query") != "prometheus":
            fail(path, "needs a `datasource` variable (type datasource, query prometheus)")
        for name in ("instance", "version"):
            v = variables.get(name)
            if not v or v.get("type") != "query" or v.get("datasource", {}).get("uid") != "${datasource}":
                fail(path, f"needs an `{name}` query variable on ${{datasource}}")
        annotations = [a for a in d.get("annotations", {}).get("list", []) if a.get("expr")]
        if not any("stacktag_deployed_version" in a["expr"] for a in annotations):
            fail(path, "needs an annotation where the deployed model version changed")
        uids_here = uids | {"${datasource}"}
        ids = set()
        for p in d["panels"]:
            where = f"{path} panel {p.get('id')!r} ({p.get('title')!r})"
            if not isinstance(p.get("id"), int) or p["id"] in ids:
                fail(where, "panel ids must be unique integers")
            ids.add(p["id"])
            if not p.get("title"):
                fail(where, "no title")
            grid = p.get("gridPos", {})
            if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
                fail(where, "gridPos needs integer x, y, w, h")
            if p.get("datasource", {}).get("uid") not in uids_here:
                fail(where, f"datasource uid {p.get('datasource')!r} is not provisioned ({sorted(uids)})")
            targets = p.get("targets") or []
            if not targets:
                fail(where, "no query")
            refs = [t.get("refId") for t in targets]
            if len(set(refs)) != len(refs) or None in refs:
                fail(where, f"refIds must be unique: {refs}")
            for t in targets:
                if not t.get("expr", "").strip():
                    fail(where, f"target {t.get('refId')} has no PromQL `expr`")
                if t.get("datasource", {}).get("uid") not in uids_here:
                    fail(where, f"target {t.get('refId')} queries an unprovisioned datasource")
                # Every series the panel reads follows the instance picker.
                for selector in SELECTOR.findall(t["expr"]):
                    if 'instance=~"$instance"' not in selector:
                        fail(where, f"target {t.get('refId')}: `{selector}` ignores the $instance variable")
                # The edge's series (production only) carry no gateway instance; they must name
                # the edge, and such a panel must say it is production's.
                edge = EDGE_SELECTOR.findall(t["expr"])
                for selector in edge:
                    if not any(scope in selector for scope in EDGE_SCOPE):
                        fail(where, f"target {t.get('refId')}: `{selector}` does not select the edge ({' or '.join(EDGE_SCOPE)})")
                if edge and "production" not in p["title"].lower():
                    fail(where, "reads the production edge's metrics: say so in the title")
                queries += 1
    print(json.dumps({"dashboards": len(dashboards), "queries": queries, "datasources": sorted(uids)}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1])
