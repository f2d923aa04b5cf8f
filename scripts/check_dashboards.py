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
            if p.get("datasource", {}).get("uid") not in uids:
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
                if t.get("datasource", {}).get("uid") not in uids:
                    fail(where, f"target {t.get('refId')} queries an unprovisioned datasource")
                queries += 1
    print(json.dumps({"dashboards": len(dashboards), "queries": queries, "datasources": sorted(uids)}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1])
