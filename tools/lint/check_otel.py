"""Checks the edge's OpenTelemetry route offline, from Spin to the alerts: no Collector binary
installs here, so this is what stands in for `otelcol-contrib validate` and a live run.

    python tools/lint/check_otel.py              # the repository's files
    python tools/lint/check_otel.py --self-test  # each planted fault must be reported

1. The Collector's config (deploy/kubernetes/platform/otel-collector-config.yaml): only
   components of the contrib distribution this file knows, each with only the keys its
   Config struct has (read in opentelemetry-collector v0.159.0 and the contrib components'
   sources, docs/monitoring.md); every pipeline names defined components, every defined one is
   used, the spanmetrics connector leaves a traces pipeline and enters a metrics one; the
   receivers and the exporter bind 0.0.0.0 (since v0.104 they default to localhost, which no
   other pod reaches); spanmetrics' histogram unit is set, not left to a default that moved.
2. What that pipeline exports, by the Prometheus exporter's name translation
   (the Go module github.com/prometheus/otlptranslator: dots to underscores, the unit as a suffix, `_total` on
   monotonic sums): `traces_span_metrics_calls_total`,
   `traces_span_metrics_duration_seconds_{bucket,count,sum}`, `spin_request_count_total`, and
   their labels (spanmetrics' own, the configured dimensions, the scrape's `job`/`instance`).
3. Every edge selector in prometheus/edge-alerts.yml, its unit tests and the Grafana
   dashboards reads one of those metrics, with labels it has and values it can take: `le`
   among the configured buckets, `http_route` among spin.toml's routes, `service_name` the one
   the Collector sets, `app_id`/`component_id` spin.toml's names, `span_kind` a real kind.
4. The wiring: the executor's OTLP endpoint is the Collector Service's http port (Spin speaks
   http/protobuf unless told otherwise), and production.yml scrapes the headless Service on
   the exporter's port.

Exit 1 naming the file and the problem.
"""

import json
import pathlib
import re
import sys
import tomllib
import urllib.parse

import yaml

import planted  # beside this file

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = {
    "collector": "deploy/kubernetes/platform/otel-collector-config.yaml",
    "collector_k8s": "deploy/kubernetes/platform/otel-collector.yaml",
    "executor": "deploy/kubernetes/executor.yaml",
    "spin": "edge-classifier/spin/spin.toml",
    "production": "prometheus/production.yml",
    "alerts": "prometheus/edge-alerts.yml",
    "alerts_test": "prometheus/edge-alerts_test.yml",
    "dashboard": "grafana/dashboards/stacktag.json",
}

ANY = None  # a key whose value is not checked further
HTTP_SERVER = {"endpoint": ANY, "tls": ANY, "cors": ANY, "auth": ANY, "max_request_body_size": ANY,
               "include_metadata": ANY, "response_headers": ANY}
GRPC_SERVER = {"endpoint": ANY, "transport": ANY, "tls": ANY, "max_recv_msg_size_mib": ANY,
               "max_concurrent_streams": ANY, "read_buffer_size": ANY, "write_buffer_size": ANY,
               "keepalive": ANY, "auth": ANY, "include_metadata": ANY}
# Each component type: the keys of its Config (mapstructure tags), nested where this file
# sets nested keys.
COMPONENTS = {
    "receivers": {
        "otlp": {"protocols": {"grpc": GRPC_SERVER,
                               "http": dict(HTTP_SERVER, traces_url_path=ANY, metrics_url_path=ANY, logs_url_path=ANY)}},
    },
    "processors": {
        "memory_limiter": {"check_interval": ANY, "limit_mib": ANY, "spike_limit_mib": ANY,
                           "limit_percentage": ANY, "spike_limit_percentage": ANY},
        "batch": {"timeout": ANY, "send_batch_size": ANY, "send_batch_max_size": ANY,
                  "metadata_keys": ANY, "metadata_cardinality_limit": ANY},
        "resource": {"attributes": ANY},
    },
    "connectors": {
        "spanmetrics": {
            "dimensions": ANY, "calls_dimensions": ANY, "exclude_dimensions": ANY,
            "resource_metrics_cache_size": ANY, "resource_metrics_key_attributes": ANY,
            "aggregation_temporality": ANY, "metrics_flush_interval": ANY, "metrics_expiration": ANY,
            "metric_timestamp_cache_size": ANY, "namespace": ANY,
            "histogram": {"disable": ANY, "unit": ANY, "dimensions": ANY,
                          "explicit": {"buckets": ANY}, "exponential": {"max_size": ANY}},
            "exemplars": {"enabled": ANY, "max_per_data_point": ANY},
            "events": {"enabled": ANY, "dimensions": ANY},
            "include_instrumentation_scope": ANY, "aggregation_cardinality_limit": ANY,
            "add_resource_attributes": ANY,
        },
    },
    "exporters": {
        "prometheus": dict(HTTP_SERVER, namespace=ANY, const_labels=ANY, send_timestamps=ANY,
                           metric_expiration=ANY, resource_to_telemetry_conversion=ANY,
                           enable_open_metrics=ANY, add_metric_suffixes=ANY, without_scope_info=ANY,
                           translation_strategy=ANY),
    },
    "extensions": {"health_check": dict(HTTP_SERVER, path=ANY, check_collector_pipeline=ANY)},
}
RESOURCE_ACTIONS = {"insert", "update", "upsert", "delete", "hash", "extract", "convert"}
# connector type: (the pipeline signal it leaves, the one it enters)
CONNECTORS = {"spanmetrics": ("traces", "metrics")}
SIGNALS = {"traces", "metrics", "logs"}
# spanmetrics' defaults and always-added attributes (connector.go, factory.go).
SPANMETRICS_NAMESPACE = "traces.span.metrics"
SPANMETRICS_ATTRIBUTES = ["service.name", "span.name", "span.kind", "status.code", "collector.instance.id"]
SPAN_KINDS = {f"SPAN_KIND_{k}" for k in ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")}
UNITS = {"ms": "milliseconds", "s": "seconds"}
# The exporter's scope labels, and what Prometheus' scrape adds.
SCOPE_LABELS = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
SCRAPE_LABELS = {"job", "instance", "pod", "__name__"}
# Spin's one metric (crates/trigger-http: `spin.request_count`, no unit) and its attributes.
SPIN_METRIC = ("spin.request_count", ["trigger_type", "app_id", "component_id"])
EDGE_METRIC = re.compile(r"\b((?:traces|spin)_[a-z0-9_]+)(\{[^}]*\})?")
MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def prom_name(otel_name, unit="", monotonic=False):
    """The exporter's default translation (UnderscoreEscapingWithSuffixes)."""
    name = "_".join(p for p in re.split(r"[^a-zA-Z0-9:]+", otel_name) if p)
    suffix = UNITS.get(unit, "" if unit.startswith("{") or not unit else unit)
    if suffix and not name.endswith("_" + suffix):
        name += "_" + suffix
    return name + "_total" if monotonic else name


def prom_label(key):
    label = re.sub(r"[^a-zA-Z0-9_]", "_", key)
    return "key_" + label if label[:1].isdigit() else label


def bound(value):
    """A bucket bound as the exporter writes `le` (shortest round-trip float)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def component_type(cid):
    return cid.split("/", 1)[0]


def keys_problems(value, allowed, where):
    out = []
    if allowed is ANY or not isinstance(value, dict):
        return out
    for key, sub in value.items():
        if key not in allowed:
            out.append(f"{where}.{key}: not a key of this component (known: {', '.join(sorted(allowed))})")
        else:
            out.extend(keys_problems(sub, allowed[key], f"{where}.{key}"))
    return out


def collector_problems(cfg, where):
    out = []
    for section in cfg:
        if section not in ("receivers", "processors", "exporters", "connectors", "extensions", "service"):
            out.append(f"{where}: `{section}` is not a top-level section")
    defined = {}
    for section in COMPONENTS:
        for cid, body in (cfg.get(section) or {}).items():
            kind = component_type(cid)
            if kind not in COMPONENTS[section]:
                out.append(f"{where}: {section}.{cid}: `{kind}` is not a {section[:-1]} this check knows")
                continue
            defined[(section, cid)] = body or {}
            out.extend(keys_problems(body or {}, COMPONENTS[section][kind], f"{where}: {section}.{cid}"))
    service = cfg.get("service") or {}
    used = set()
    for ext in service.get("extensions") or []:
        if ("extensions", ext) not in defined:
            out.append(f"{where}: service.extensions: `{ext}` is not defined")
        used.add(("extensions", ext))
    pipelines = service.get("pipelines") or {}
    connector_in, connector_out = {}, {}
    for pid, pipe in pipelines.items():
        signal = component_type(pid)
        if signal not in SIGNALS:
            out.append(f"{where}: service.pipelines.{pid}: not a traces, metrics or logs pipeline")
        for role in ("receivers", "processors", "exporters"):
            for cid in pipe.get(role) or []:
                sections = [role] + (["connectors"] if role in ("receivers", "exporters") else [])
                hit = next((s for s in sections if (s, cid) in defined), None)
                if hit is None:
                    out.append(f"{where}: service.pipelines.{pid}.{role}: `{cid}` is not defined")
                    continue
                used.add((hit, cid))
                if hit == "connectors":
                    (connector_out if role == "exporters" else connector_in).setdefault(cid, set()).add(signal)
        if not pipe.get("receivers") or not pipe.get("exporters"):
            out.append(f"{where}: service.pipelines.{pid}: needs receivers and exporters")
    for key in defined:
        if key not in used:
            out.append(f"{where}: {key[0]}.{key[1]} is defined but in no pipeline")
    for (section, cid) in defined:
        if section != "connectors":
            continue
        leaves, enters = CONNECTORS[component_type(cid)]
        if leaves not in connector_out.get(cid, set()):
            out.append(f"{where}: connectors.{cid}: must be an exporter of a {leaves} pipeline")
        if enters not in connector_in.get(cid, set()):
            out.append(f"{where}: connectors.{cid}: must be a receiver of a {enters} pipeline")
    # Reachable from other pods: not the localhost default.
    endpoints = []
    for proto in ("grpc", "http"):
        for cid, body in defined.items():
            if cid[0] == "receivers" and component_type(cid[1]) == "otlp":
                p = ((body.get("protocols") or {}).get(proto))
                if p is not None:
                    endpoints.append((f"receivers.{cid[1]}.protocols.{proto}", (p or {}).get("endpoint")))
    for cid, body in defined.items():
        if cid[0] in ("exporters", "extensions") and component_type(cid[1]) in ("prometheus", "health_check"):
            endpoints.append((f"{cid[0]}.{cid[1]}", body.get("endpoint")))
    for at, endpoint in endpoints:
        if not endpoint or not str(endpoint).startswith("0.0.0.0:"):
            out.append(f"{where}: {at}.endpoint: `{endpoint}` must bind 0.0.0.0:PORT (the default is localhost, out of other pods' reach)")
    for cid, body in defined.items():
        if cid[0] == "processors" and component_type(cid[1]) == "resource":
            for a in body.get("attributes") or []:
                if a.get("action") not in RESOURCE_ACTIONS:
                    out.append(f"{where}: processors.{cid[1]}: action `{a.get('action')}` is not one of {sorted(RESOURCE_ACTIONS)}")
    return out, defined


def exported(cfg, defined, spin):
    """{prometheus metric name: (labels, {label: allowed values or None})} the pipeline exports."""
    service_name = None
    for (section, cid), body in defined.items():
        if section == "processors" and component_type(cid) == "resource":
            for a in body.get("attributes") or []:
                if a.get("key") == "service.name" and a.get("action") in ("upsert", "insert", "update"):
                    service_name = a.get("value")
    routes = {t.get("route") for t in spin.get("trigger", {}).get("http", [])}
    components = {t.get("component") for t in spin.get("trigger", {}).get("http", [])}
    out = {}
    for (section, cid), body in defined.items():
        if section != "connectors" or component_type(cid) != "spanmetrics":
            continue
        namespace = body.get("namespace", SPANMETRICS_NAMESPACE)
        dims = [d["name"] for d in body.get("dimensions") or []]
        labels = {prom_label(k) for k in SPANMETRICS_ATTRIBUTES + dims} | SCOPE_LABELS | SCRAPE_LABELS
        values = {"service_name": {service_name} if service_name else None, "span_kind": SPAN_KINDS,
                  "http_route": routes if "http.route" in dims else None}
        out[prom_name(namespace + ".calls", monotonic=True)] = (labels, values)
        hist = body.get("histogram") or {}
        unit = hist.get("unit")
        if unit in UNITS and not hist.get("disable"):
            base = prom_name(namespace + ".duration", unit)
            buckets = {bound(b) for b in (hist.get("explicit") or {}).get("buckets") or []} | {"+Inf"}
            out[base + "_bucket"] = (labels | {"le"}, dict(values, le=buckets))
            out[base + "_count"] = (labels, values)
            out[base + "_sum"] = (labels, values)
    name, attrs = SPIN_METRIC
    out[prom_name(name, monotonic=True)] = (
        set(attrs) | SCOPE_LABELS | SCRAPE_LABELS,
        {"app_id": {spin.get("application", {}).get("name")}, "component_id": components, "trigger_type": {"http"}},
    )
    return out


def reader_problems(name, text, metrics):
    out = []
    for metric, braces in EDGE_METRIC.findall(text):
        if metric not in metrics:
            out.append(f"{name}: `{metric}` is not exported by the Collector's pipeline (it exports {', '.join(sorted(metrics))})")
            continue
        labels, values = metrics[metric]
        for label, op, value in MATCHER.findall(braces[1:-1] if braces else ""):
            if label not in labels:
                out.append(f"{name}: `{metric}` has no label `{label}` (it has {', '.join(sorted(labels - {'__name__'}))})")
            elif op == "=" and values.get(label) is not None and value not in values[label]:
                out.append(f"{name}: `{metric}{{{label}=\"{value}\"}}` can never match: {label} is one of {sorted(values[label])}")
    return out


def wiring_problems(texts, cfg):
    out = []
    services = {}
    for doc in yaml.safe_load_all(texts["collector_k8s"]):
        if doc and doc.get("kind") == "Service":
            services[doc["metadata"]["name"]] = (doc["metadata"].get("namespace"), doc["spec"])
    http_port = str(((cfg.get("receivers", {}).get("otlp") or {}).get("protocols", {}).get("http") or {}).get("endpoint", "")).rsplit(":", 1)[-1]
    executor = yaml.safe_load(texts["executor"])
    endpoint = (((executor.get("spec") or {}).get("deploymentConfig") or {}).get("otel") or {}).get("exporter_otlp_endpoint")
    if not endpoint:
        out.append(f"{FILES['executor']}: no deploymentConfig.otel.exporter_otlp_endpoint: Spin exports nothing")
    else:
        url = urllib.parse.urlsplit(endpoint)
        host = (url.hostname or "").split(".")
        svc = services.get(host[0])
        if url.scheme != "http" or svc is None or (len(host) > 1 and host[1] != svc[0]):
            out.append(f"{FILES['executor']}: `{endpoint}` is not http://<a Collector Service>.<its namespace>...")
        else:
            port = next((p for p in svc[1].get("ports", []) if p.get("port") == url.port), None)
            if port is None or str(port.get("targetPort")) not in ("otlp-http", http_port):
                out.append(f"{FILES['executor']}: `{endpoint}`: Spin speaks OTLP http/protobuf, but port {url.port} of `{host[0]}` is not the receiver's http port {http_port}")
    prod = yaml.safe_load(texts["production"])
    job = next((j for j in prod.get("scrape_configs", []) if j.get("job_name") == "stacktag-edge-otel"), None)
    exporter_port = str(((cfg.get("exporters") or {}).get("prometheus") or {}).get("endpoint", "")).rsplit(":", 1)[-1]
    if job is None:
        out.append(f"{FILES['production']}: no scrape job `stacktag-edge-otel`")
    else:
        for sd in job.get("dns_sd_configs") or []:
            for name in sd.get("names") or []:
                svc = services.get(name.split(".")[0])
                if svc is None or svc[1].get("clusterIP") != "None":
                    out.append(f"{FILES['production']}: `{name}` is not a headless Collector Service (one record per pod)")
            if str(sd.get("port")) != exporter_port:
                out.append(f"{FILES['production']}: scrapes port {sd.get('port')}, the exporter listens on {exporter_port}")
        if not job.get("dns_sd_configs"):
            out.append(f"{FILES['production']}: job `stacktag-edge-otel` must find each Collector pod (dns_sd_configs)")
    return out


def findings(texts):
    cfg = yaml.safe_load(texts["collector"])
    out, defined = collector_problems(cfg, FILES["collector"])
    for (section, cid), body in defined.items():
        if section == "connectors" and component_type(cid) == "spanmetrics":
            if (body.get("histogram") or {}).get("unit") not in UNITS:
                out.append(f"{FILES['collector']}: connectors.{cid}.histogram.unit: set it (ms or s); its default moved between releases")
    metrics = exported(cfg, defined, tomllib.loads(texts["spin"]))
    dashboard = json.loads(texts["dashboard"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = "\n".join(r["expr"] for g in yaml.safe_load(texts["alerts"])["groups"] for r in g["rules"])
    series = "\n".join(s["series"] for t in yaml.safe_load(texts["alerts_test"])["tests"] for s in t.get("input_series") or [])
    out += reader_problems(FILES["alerts"], rules, metrics)
    out += reader_problems(FILES["alerts_test"], series, metrics)
    out += reader_problems(FILES["dashboard"], "\n".join(exprs), metrics)
    if not EDGE_METRIC.search(rules):
        out.append(f"{FILES['alerts']}: reads none of the edge's metrics")
    out += wiring_problems(texts, cfg)
    return out


def self_test(texts):
    def yaml_edit(key, change):
        def apply(t):
            doc = yaml.safe_load(t[key])
            change(doc)
            t[key] = yaml.safe_dump(doc)
        return apply

    sm = lambda c: c["connectors"]["spanmetrics"]
    faults = {
        "histogram unit left to its default": yaml_edit("collector", lambda c: sm(c)["histogram"].pop("unit")),
        "histogram in ms (names change)": yaml_edit("collector", lambda c: sm(c)["histogram"].update(unit="ms")),
        "the SLO's bucket removed": yaml_edit("collector", lambda c: sm(c)["histogram"]["explicit"]["buckets"].remove(0.032)),
        "the route dimension dropped": yaml_edit("collector", lambda c: sm(c).update(dimensions=[{"name": "http.response.status_code"}])),
        "a misspelled spanmetrics key": yaml_edit("collector", lambda c: sm(c).update(dimension=[])),
        "receiver on localhost": yaml_edit("collector", lambda c: c["receivers"]["otlp"]["protocols"]["http"].update(endpoint="localhost:4318")),
        "connector not feeding a metrics pipeline": yaml_edit("collector", lambda c: c["service"]["pipelines"]["metrics"].update(receivers=["otlp"])),
        "an undefined processor in a pipeline": yaml_edit("collector", lambda c: c["service"]["pipelines"]["traces"]["processors"].append("attributes/x")),
        "another service name": yaml_edit("collector", lambda c: c["processors"]["resource/edge"]["attributes"][0].update(value="edge")),
        "executor on the gRPC port": lambda t: t.update(executor=t["executor"].replace(":4318", ":4317")),
        "scrape on the wrong port": lambda t: t.update(production=t["production"].replace("port: 8889", "port: 8888")),
        "a label typo in an alert": lambda t: t.update(alerts=t["alerts"].replace('http_route="/classify"', 'http_rout="/classify"', 1)),
        "a route Spin has not": lambda t: t.update(alerts=t["alerts"].replace('http_route="/classify"', 'http_route="classify"', 1)),
        "a metric the pipeline does not export": lambda t: t.update(dashboard=t["dashboard"].replace("traces_span_metrics_calls_total", "traces_spanmetrics_calls_total", 1)),
    }
    return planted.self_test(texts, faults, findings)


def main(argv):
    texts = {k: (ROOT / v).read_text() for k, v in FILES.items()}
    if argv == ["--self-test"]:
        return self_test(texts)
    if argv:
        sys.exit(__doc__)
    found = findings(texts)
    for f in found:
        print(f"error: {f}")
    if not found:
        cfg = yaml.safe_load(texts["collector"])
        _, defined = collector_problems(cfg, FILES["collector"])
        print(json.dumps({"exported": sorted(exported(cfg, defined, tomllib.loads(texts["spin"])))}))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
