"""Validates SpinApp manifests offline against the operator's own CRD schema.

    python tools/lint/check_spinapp.py CRD_YAML MANIFEST...

CRD_YAML is spin-operator's CustomResourceDefinition (kept in deploy/kubernetes/schema/). Each
`kind: SpinApp` document in the manifests is checked against the `openAPIV3Schema` of its
version, with two additions that make it behave like an API server with strict field
validation (`kubectl apply`'s default): an object schema with `properties` and no
`additionalProperties`/`x-kubernetes-preserve-unknown-fields` is closed, so an unknown or
misspelled field fails, as it would on the server; and the operator's admission rule on
replicas (internal/webhook/spinapp_validating.go: with `enableAutoscaling`, `replicas` must
not be set; without it, `replicas` must be at least 1). Prints `file: path: message`; exit 1.
"""

import sys

import jsonschema
import yaml


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


def schemas(crd_path):
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    return kind, {f"{group}/{v['name']}": closed(v["schema"]["openAPIV3Schema"]) for v in crd["spec"]["versions"]}


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: check_spinapp.py CRD_YAML MANIFEST...")
    kind, by_version = schemas(argv[0])
    findings, checked = [], 0
    for path in argv[1:]:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            if doc.get("kind") != kind:
                continue
            checked += 1
            schema = by_version.get(doc.get("apiVersion"))
            if schema is None:
                findings.append(f"{path}: apiVersion `{doc.get('apiVersion')}` is not one of {sorted(by_version)}")
                continue
            for e in sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path)):
                where = ".".join(str(p) for p in e.absolute_path) or "(document)"
                findings.append(f"{path}: {where}: {e.message}")
            spec = doc.get("spec") or {}
            if spec.get("enableAutoscaling") and "replicas" in spec:
                findings.append(f"{path}: spec.replicas: cannot be set when enableAutoscaling is true (operator admission rule)")
            if not spec.get("enableAutoscaling") and spec.get("replicas", 0) < 1:
                findings.append(f"{path}: spec.replicas: must be > 0 without enableAutoscaling (operator admission rule)")
    for f in findings:
        print(f)
    if checked == 0:
        print(f"no {kind} found in {argv[1:]}")
        return 1
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
