#!/usr/bin/env python3
"""Rolls the edge out on SpinKube, proves the rollout, or puts back what served before.

    python3 deploy/rollout.py --image REPO@sha256:DIGEST --version N [--run-id ID] [--revision SHA]
        [--namespace stacktag] [--app stacktag-edge] [--manifests deploy/kubernetes]
        [--timeout 300] [--check-image curlimages/curl:8.10.1]

deploy.yml calls it after `spin registry push` (and with an earlier digest for a rollback: no
rebuild). Standard library only, so it runs on any runner with python3 and kubectl. Steps:

1. Record what serves now: the SpinApp's image and annotations (none on a first deploy).
2. Apply the kustomization with the SpinApp at the new digest and annotated with the model
   version, run id and revision (a kustomize overlay: nothing is edited in place).
3. Wait until the operator's Deployment exists **and** its pod template carries the new
   digest: right after `apply` the Deployment may not exist yet (first deploy) or may still be
   the old one, which `rollout status` would report as rolled out.
4. `kubectl rollout status` of that Deployment.
5. In the cluster, through the Service: `GET /model` must report the version, and one
   `POST /classify` must answer 200.

Any failure re-applies what served before (its image and annotations), waits for that, and
exits 1 with `::error::` lines naming the step. Exit 0 only when the new version is proven.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ANNOTATIONS = {
    "version": "stacktag.dev/model-version",
    "run_id": "stacktag.dev/run-id",
    "revision": "org.opencontainers.image.revision",
}
QUESTION = "how do i read a file line by line in python"


class Failed(Exception):
    """A step failed; its message names the step and what was seen."""


def log(msg):
    print(f"rollout: {msg}", file=sys.stderr, flush=True)


def kubectl(*args, check=True, input=None):
    """Runs kubectl (`KUBECTL`, default `kubectl` on PATH); returns (exit code, stdout, stderr)."""
    cmd = [os.environ.get("KUBECTL", "kubectl"), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, input=input)
    if check and p.returncode != 0:
        raise Failed(f"`kubectl {' '.join(args)}` failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return p.returncode, p.stdout, p.stderr


def serving(ns, app):
    """The SpinApp's image and our annotations, or None if there is none yet."""
    code, out, err = kubectl("-n", ns, "get", "spinapp", app, "-o", "json", check=False)
    if code != 0:
        if "NotFound" in err or "not found" in err:
            return None
        raise Failed(f"cannot read SpinApp {ns}/{app}: {err.strip()}")
    doc = json.loads(out)
    notes = doc.get("metadata", {}).get("annotations") or {}
    return {"image": doc["spec"]["image"], "annotations": {k: v for k, v in notes.items() if k in ANNOTATIONS.values()}}


def apply(manifests, app, image, annotations):
    """`kubectl apply -k` of an overlay over `manifests` that sets the SpinApp's image and
    annotations (JSON patches, so no YAML library is needed)."""
    patch = [
        {"op": "replace", "path": "/spec/image", "value": image},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ]
    with tempfile.TemporaryDirectory(prefix="rollout-") as overlay:
        base = os.path.relpath(os.path.abspath(manifests), overlay)
        with open(os.path.join(overlay, "kustomization.yaml"), "w") as f:
            json.dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [base],
                    "patches": [{"target": {"kind": "SpinApp", "name": app}, "patch": json.dumps(patch)}],
                },
                f,
            )
        kubectl("apply", "-k", overlay)


def wait_for_template(ns, app, image, timeout):
    """Until the Deployment exists and its pod template runs `image`."""
    deadline = time.monotonic() + timeout
    seen = "no Deployment"
    while time.monotonic() < deadline:
        code, out, err = kubectl("-n", ns, "get", "deployment", app, "-o", "json", check=False)
        if code == 0:
            containers = json.loads(out)["spec"]["template"]["spec"].get("containers", [])
            images = [c.get("image") for c in containers]
            if image in images:
                return
            seen = f"the Deployment's pod template runs {images}"
        elif "NotFound" not in err and "not found" not in err:
            seen = err.strip()
        time.sleep(float(os.environ.get("ROLLOUT_POLL_S", "2")))
    raise Failed(f"the operator did not update Deployment {ns}/{app} to {image} within {timeout} s ({seen})")


def check_in_cluster(ns, app, version, check_image):
    """`GET /model` and one `POST /classify` through the Service, from a pod in the namespace."""
    url = f"http://{app}.{ns}.svc"
    script = (
        f"curl -fsS --max-time 10 {url}/model && echo && "
        f"curl -fsS --max-time 10 -o /dev/null -w 'classify %{{http_code}}\\n' "
        f"-H 'content-type: text/plain' --data '{QUESTION}' {url}/classify"
    )
    name = f"stacktag-rollout-check-{int(time.time())}"
    code, out, err = kubectl(
        "-n", ns, "run", name, "--rm", "-i", "--quiet", "--restart=Never", f"--image={check_image}",
        "--command", "--", "sh", "-c", script, check=False,
    )
    if code != 0:
        raise Failed(f"the in-cluster check failed ({code}): {(err or out).strip()}")
    lines = [l for l in out.splitlines() if l.strip()]
    try:
        manifest = json.loads(lines[0])
    except (IndexError, json.JSONDecodeError):
        raise Failed(f"`/model` did not answer a manifest: {out.strip()[:200]}") from None
    served = str(manifest.get("model_version"))
    if served != str(version):
        raise Failed(f"`/model` reports version {served}, not {version}: the pods serve another model")
    if "classify 200" not in out:
        raise Failed(f"`/classify` did not answer 200: {out.strip()[:200]}")


def roll(args, image, annotations):
    apply(args.manifests, args.app, image, annotations)
    log(f"applied {image}; waiting for the operator's Deployment to carry it")
    wait_for_template(args.namespace, args.app, image, args.timeout)
    kubectl("-n", args.namespace, "rollout", "status", f"deployment/{args.app}", f"--timeout={args.timeout}s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True, help="REPO@sha256:DIGEST (a digest, never a tag)")
    ap.add_argument("--version", required=True, help="the registry version the image serves")
    ap.add_argument("--run-id", default="")
    ap.add_argument("--revision", default="")
    ap.add_argument("--namespace", default="stacktag")
    ap.add_argument("--app", default="stacktag-edge")
    ap.add_argument("--manifests", default="deploy/kubernetes")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--check-image", default="curlimages/curl:8.10.1")
    args = ap.parse_args(argv)
    if "@sha256:" not in args.image:
        print(f"::error::--image must name a digest (REPO@sha256:...), not `{args.image}`")
        return 2
    if not args.version.isdigit():
        print(f"::error::--version must be a registry version number, not `{args.version}`")
        return 2
    notes = {ANNOTATIONS["version"]: args.version}
    if args.run_id:
        notes[ANNOTATIONS["run_id"]] = args.run_id
    if args.revision:
        notes[ANNOTATIONS["revision"]] = args.revision
    try:
        before = serving(args.namespace, args.app)
    except Failed as e:
        print(f"::error::{e}")
        return 1
    log(f"serving now: {before['image'] if before else 'nothing (first deploy)'}")
    try:
        roll(args, args.image, notes)
        check_in_cluster(args.namespace, args.app, args.version, args.check_image)
    except Failed as e:
        print(f"::error::rollout of version {args.version} ({args.image}) failed: {e}")
        if before is None:
            print("::error::nothing served before: nothing to put back; the SpinApp stays as applied")
            return 1
        log(f"putting back {before['image']}")
        try:
            roll(args, before["image"], before["annotations"])
            print(f"::error::reverted to {before['image']}; version {args.version} is NOT deployed")
        except Failed as again:
            print(f"::error::the revert to {before['image']} failed too: {again}")
        return 1
    log(f"version {args.version} serves ({args.image})")
    print(json.dumps({"version": args.version, "image": args.image, "previous": before["image"] if before else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
