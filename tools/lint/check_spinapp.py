"""Validates SpinKube manifests offline as spin-operator's API server and admission webhooks
would.

    kubectl kustomize deploy/kubernetes | python tools/lint/check_spinapp.py SCHEMA_DIR -
    python tools/lint/check_spinapp.py SCHEMA_DIR MANIFEST...
    python tools/lint/check_spinapp.py SCHEMA_DIR --self-test MANIFEST...

SCHEMA_DIR holds the operator's CustomResourceDefinitions (deploy/kubernetes/schema/). The
manifests are one rendered set (what `kubectl apply -k` would send): every SpinApp and
SpinAppExecutor is checked against the `openAPIV3Schema` of its version, with every structural
object closed to unknown fields (as strict field validation, `kubectl apply`'s default, would
refuse a misspelled field), and then against the operator's admission rules as written in its
source (spinframework/spin-operator internal/webhook/, at the commit the CRDs come from):

- SpinApp `spec.executor` is set and names a SpinAppExecutor in the SpinApp's own namespace
  (`fetchExecutor`: "executor does not exist in namespace");
- with `enableAutoscaling`, `replicas` is not set; without it, `replicas` >= 1
  (`validateReplicas`);
- `deploymentAnnotations` / `podAnnotations` only with an executor that has `createDeployment`
  (`validateAnnotations`);
- `invocationLimits.memory` is a quantity no greater than the memory limit (or the request
  when there is no limit) (`validateInvocationLimits`);
- a SpinAppExecutor's `deploymentConfig` has exactly one of `runtimeClassName` and `spinImage`
  (`validateRuntimeClassAndSpinImage`).

Gateway API HTTPRoutes are checked against the standard-channel CRD (kubernetes-sigs/gateway-api
v1.6.1) and the CEL rules the schema check cannot run: a `requestMirror` sets `percent` or
`fraction`, not both; a Service reference has a `port`. Every Service a route sends to (or
mirrors to) in its own namespace must be in the set, or be the one spin-operator makes for a
SpinApp (its name, port 80), with that port.

`--self-test` plants one fault of each kind into copies of the given set and fails unless each
is reported. Prints `where: message`; exit 1 on any finding.
"""

import pathlib
import re
import sys

import jsonschema
import yaml

import planted  # beside this file

GROUP = "core.spinkube.dev"
GATEWAY_GROUP = "gateway.networking.k8s.io"
# The Service spin-operator creates for each SpinApp: the SpinApp's name, this port.
OPERATOR_SERVICE_PORT = 80
BINARY_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
DECIMAL_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 10**-3}


def closed(schema):
    """A copy of an OpenAPI v3 schema with every structural object closed to unknown fields."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def schemas(schema_dir):
    """{(kind, apiVersion): schema} for every CRD in the folder."""
    out = {}
    for path in sorted(pathlib.Path(schema_dir).glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                out[(kind, f"{group}/{v['name']}")] = closed(v["schema"]["openAPIV3Schema"])
    return out


def quantity(text):
    """A Kubernetes resource quantity in base units, or None if it is not one."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m|)", str(text).strip())
    if not m:
        return None
    number, suffix = float(m.group(1)), m.group(2)
    return number * (BINARY_SUFFIX.get(suffix) or DECIMAL_SUFFIX[suffix])


def namespace(doc):
    return (doc.get("metadata") or {}).get("namespace") or "default"


def name(doc):
    return (doc.get("metadata") or {}).get("name")


def schema_findings(doc, by_kind, where):
    """The document against its CRD's schema (closed to unknown fields)."""
    schema = by_kind.get((doc.get("kind"), doc.get("apiVersion")))
    if schema is None:
        return [f"{where}: no CRD for {doc.get('kind')} {doc.get('apiVersion')}"]
    return [
        f"{where}: {'.'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message}"
        for e in sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    ]


def findings(docs, by_kind):
    out = []
    ours = [d for d in docs if str(d.get("apiVersion", "")).startswith(GROUP + "/")]
    executors = {(namespace(d), name(d)): d for d in ours if d.get("kind") == "SpinAppExecutor"}
    for doc in ours:
        where = f"{doc.get('kind')} {namespace(doc)}/{name(doc)}"
        out += schema_findings(doc, by_kind, where)
        if (doc.get("kind"), doc.get("apiVersion")) not in by_kind:
            continue
        spec = doc.get("spec") or {}
        if doc.get("kind") == "SpinAppExecutor":
            config = spec.get("deploymentConfig")
            if config is not None:
                has_class, has_image = "runtimeClassName" in config, "spinImage" in config
                if has_class and has_image:
                    out.append(f"{where}: spec.deploymentConfig: runtimeClassName and spinImage are mutually exclusive (admission rule)")
                if not has_class and not has_image:
                    out.append(f"{where}: spec.deploymentConfig: either runtimeClassName or spinImage must be set (admission rule)")
            continue
        if doc.get("kind") != "SpinApp":
            continue
        executor = None
        if not spec.get("executor"):
            out.append(f"{where}: spec.executor: must be set (admission rule: no default executor without one installed)")
        else:
            executor = executors.get((namespace(doc), spec["executor"]))
            if executor is None:
                elsewhere = sorted(f"{ns}/{n}" for ns, n in executors if n == spec["executor"])
                hint = f" (one exists in {', '.join(elsewhere)})" if elsewhere else ""
                out.append(f"{where}: spec.executor: `{spec['executor']}` does not exist in namespace {namespace(doc)}{hint} (admission rule)")
        if spec.get("enableAutoscaling") and "replicas" in spec:
            out.append(f"{where}: spec.replicas: cannot be set when enableAutoscaling is true (admission rule)")
        if not spec.get("enableAutoscaling") and spec.get("replicas", 0) < 1:
            out.append(f"{where}: spec.replicas: must be > 0 without enableAutoscaling (admission rule)")
        if executor is not None and not (executor.get("spec") or {}).get("createDeployment"):
            for field in ("deploymentAnnotations", "podAnnotations"):
                if spec.get(field):
                    out.append(f"{where}: spec.{field}: cannot be set when the executor does not create deployments (admission rule)")
        limit = (spec.get("invocationLimits") or {}).get("memory")
        if limit is not None:
            wanted = quantity(limit)
            resources = spec.get("resources") or {}
            bound = (resources.get("limits") or {}).get("memory") or (resources.get("requests") or {}).get("memory")
            if wanted is None:
                out.append(f"{where}: spec.invocationLimits.memory: `{limit}` is not a memory quantity (admission rule)")
            elif bound is not None and quantity(bound) is not None and wanted > quantity(bound):
                out.append(f"{where}: spec.invocationLimits.memory: {limit} is over the pod's memory {bound} (admission rule)")
    if not any(d.get("kind") == "SpinApp" for d in ours):
        out.append("no SpinApp in the manifests")
    return out + route_findings(docs, by_kind)


def service_ports(docs):
    """{(namespace, name): {ports}} of every Service in the set and every one the operator
    makes for a SpinApp."""
    out = {}
    for d in docs:
        if d.get("kind") == "Service" and d.get("apiVersion") == "v1":
            out[(namespace(d), name(d))] = {p.get("port") for p in (d.get("spec") or {}).get("ports") or []}
        elif d.get("kind") == "SpinApp" and str(d.get("apiVersion", "")).startswith(GROUP + "/"):
            out[(namespace(d), name(d))] = {OPERATOR_SERVICE_PORT}
    return out


def route_findings(docs, by_kind):
    """HTTPRoutes: the CRD's schema, its CEL rules on mirrors and Service references, and the
    Services they name."""
    out = []
    services = service_ports(docs)
    for doc in docs:
        if doc.get("kind") != "HTTPRoute" or not str(doc.get("apiVersion", "")).startswith(GATEWAY_GROUP + "/"):
            continue
        where = f"HTTPRoute {namespace(doc)}/{name(doc)}"
        out += schema_findings(doc, by_kind, where)

        def reference(ref, at):
            if ref.get("group", "") != "" or ref.get("kind", "Service") != "Service":
                return
            if "port" not in ref:
                out.append(f"{where}: {at}: Must have port for Service reference (CEL rule)")
                return
            ns = ref.get("namespace") or namespace(doc)
            ports = services.get((ns, ref.get("name")))
            if ns != namespace(doc):
                return  # another namespace's Service (and its ReferenceGrant) is not in this set
            if ports is None:
                out.append(f"{where}: {at}: Service `{ns}/{ref.get('name')}` is neither in the set nor made by the operator for a SpinApp")
            elif ref["port"] not in ports:
                out.append(f"{where}: {at}: Service `{ns}/{ref.get('name')}` has no port {ref['port']} (it has {sorted(ports)})")

        for i, rule in enumerate((doc.get("spec") or {}).get("rules") or []):
            for j, ref in enumerate(rule.get("backendRefs") or []):
                reference(ref, f"spec.rules.{i}.backendRefs.{j}")
            for j, f in enumerate(rule.get("filters") or []):
                mirror = f.get("requestMirror")
                if mirror is None:
                    continue
                at = f"spec.rules.{i}.filters.{j}.requestMirror"
                if "percent" in mirror and "fraction" in mirror:
                    out.append(f"{where}: {at}: Only one of percent or fraction may be specified (CEL rule)")
                reference(mirror.get("backendRef") or {}, f"{at}.backendRef")
    return out


def self_test(docs, by_kind):
    """Each planted fault must be reported; the set itself must be clean."""

    def of(kind, ds):
        return next(d for d in ds if d.get("kind") == kind)

    faults = {
        "executor missing": lambda ds: ds.remove(of("SpinAppExecutor", ds)),
        "executor in another namespace": lambda ds: of("SpinAppExecutor", ds)["metadata"].update(namespace="spin-system"),
        "replicas with autoscaling": lambda ds: of("SpinApp", ds)["spec"].update(replicas=3, enableAutoscaling=True),
        "no replicas without autoscaling": lambda ds: of("SpinApp", ds)["spec"].update(enableAutoscaling=False, replicas=0),
        "runtimeClassName and spinImage": lambda ds: of("SpinAppExecutor", ds)["spec"]["deploymentConfig"].update(spinImage="ghcr.io/x/spin:1"),
        "annotations without operator deployments": lambda ds: (
            of("SpinAppExecutor", ds)["spec"].update(createDeployment=False),
            of("SpinApp", ds)["spec"].update(podAnnotations={"a": "b"}),
        ),
        "invocation memory over the limit": lambda ds: of("SpinApp", ds)["spec"].update(invocationLimits={"memory": "4Gi"}),
        "a misspelled field": lambda ds: of("SpinApp", ds)["spec"].update(replica=2),
    }
    if any(d.get("kind") == "HTTPRoute" for d in docs):
        mirror = lambda ds: next(f["requestMirror"] for r in of("HTTPRoute", ds)["spec"]["rules"] for f in r.get("filters") or [] if "requestMirror" in f)
        faults.update({
            "a mirror with percent and fraction": lambda ds: mirror(ds).update(fraction={"numerator": 1, "denominator": 20}),
            "a mirror to a Service without a port": lambda ds: mirror(ds)["backendRef"].pop("port"),
            "a mirror to a Service not in the set": lambda ds: mirror(ds)["backendRef"].update(name="stacktag-nowhere"),
            "a backend on a port the Service lacks": lambda ds: of("HTTPRoute", ds)["spec"]["rules"][0]["backendRefs"][0].update(port=8080),
            "a mirror percent over 100": lambda ds: mirror(ds).update(percent=500),
            "a misspelled route field": lambda ds: mirror(ds).update(percentage=5),
        })
    return planted.self_test(docs, faults, lambda ds: findings(ds, by_kind))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    by_kind = schemas(argv[0])
    test = "--self-test" in argv
    sources = [a for a in argv[1:] if a != "--self-test"]
    docs = []
    for source in sources:
        text = sys.stdin.read() if source == "-" else pathlib.Path(source).read_text()
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    if test:
        return self_test(docs, by_kind)
    found = findings(docs, by_kind)
    for f in found:
        print(f)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
