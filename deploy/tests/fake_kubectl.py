#!/usr/bin/env python3
"""A scripted `kubectl` that plays spin-operator's behaviours for deploy/rollout.py's tests.

Its state and scenario live in the JSON file `FAKE_KUBECTL_STATE`; every call is appended to
`calls`. `apply -k` renders with the real kubectl (`REAL_KUBECTL`) and takes the SpinApp from
the result. The scenario says how the operator answers:

  deployment_after   `get deployment` calls after an apply before the Deployment carries
                     the applied image
  before             what those calls see meanwhile: "missing" (NotFound: a first deploy) or
                     "old" (the previous Deployment, fully rolled out)
  unready            images whose pods never become ready (`rollout status` times out)
  serves             {image: version} what `/model` reports for the image that runs
  never_updates      images the operator never puts into the Deployment
  refused            images whose SpinApp the admission webhook denies (`apply` fails)
"""

import json
import os
import subprocess
import sys

import yaml


def main(argv):
    path = os.environ["FAKE_KUBECTL_STATE"]
    with open(path) as f:
        state = json.load(f)
    state.setdefault("calls", []).append(argv)
    scenario = state["scenario"]
    args = [a for a in argv if a not in ("-n", state.get("namespace", "stacktag"))]
    out, err, code = "", "", 0

    def notfound(what):
        return "", f'Error from server (NotFound): {what} "stacktag-edge" not found', 1

    if args[:2] == ["get", "spinapp"]:
        if state.get("spinapp") is None:
            out, err, code = notfound("spinapps.core.spinkube.dev")
        else:
            out = json.dumps(state["spinapp"])
    elif args[:2] == ["apply", "-k"]:
        real = os.environ.get("REAL_KUBECTL", "/usr/bin/kubectl")
        rendered = subprocess.run([real, "kustomize", args[2]], capture_output=True, text=True, check=True).stdout
        app = next(d for d in yaml.safe_load_all(rendered) if d and d.get("kind") == "SpinApp")
        if app["spec"]["image"] in scenario.get("refused", []):
            err = ('Error from server (Invalid): error when applying patch: admission webhook "vspinapp.kb.io" '
                   'denied the request: SpinApp.core.spinkube.dev "stacktag-edge" is invalid')
            with open(path, "w") as f:
                json.dump(state, f)
            sys.stderr.write(err)
            return 1
        state["spinapp"] = {"metadata": {"annotations": app["metadata"].get("annotations") or {}}, "spec": app["spec"]}
        state["applied"] = state.get("applied", []) + [app["spec"]["image"]]
        state["gets_since_apply"] = 0
        out = "spinapp.core.spinkube.dev/stacktag-edge configured\n"
    elif args[:2] == ["get", "deployment"]:
        state["gets_since_apply"] = state.get("gets_since_apply", 0) + 1
        wanted = state["spinapp"]["spec"]["image"] if state.get("spinapp") else None
        if wanted and wanted not in scenario.get("never_updates", []) and state["gets_since_apply"] > scenario.get("deployment_after", 0):
            state["deployment"] = wanted
        elif scenario.get("before") == "missing" and not state.get("deployment"):
            out, err, code = notfound("deployments.apps")
        if code == 0:
            out = json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "stacktag-edge", "image": state.get("deployment")}]}}}})
    elif args[:2] == ["rollout", "status"]:
        state["rollout_status_saw"] = state.get("rollout_status_saw", []) + [state.get("deployment")]
        if state.get("deployment") in scenario.get("unready", []):
            err, code = 'error: timed out waiting for the condition', 1
        else:
            out = 'deployment "stacktag-edge" successfully rolled out\n'
    elif args[:1] == ["run"]:
        version = scenario.get("serves", {}).get(state.get("deployment"))
        out = json.dumps({"model_version": version, "labels": ["csharp", "java", "javascript", "python"]}) + "\nclassify 200\n"
    else:
        err, code = f"fake kubectl: unscripted call {argv}", 2
    with open(path, "w") as f:
        json.dump(state, f)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
