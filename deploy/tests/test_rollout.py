"""deploy/rollout.py's decisions against a scripted kubectl that plays the operator
(fake_kubectl.py): the Deployment appearing late, the old one reporting ready, a pod that never
becomes ready, a wrong version served, a SpinApp the cluster refuses, a first deploy that
fails, and bad input.

    python -m unittest discover -s deploy/tests        (scripts/check-delivery.sh runs it)
"""

import contextlib
import io
import json
import os
import pathlib
import sys
import tempfile
import unittest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import rollout  # noqa: E402

MANIFESTS = str(HERE.parent / "kubernetes")
OLD = "ghcr.io/o/stacktag-edge@sha256:" + "a" * 64
NEW = "ghcr.io/o/stacktag-edge@sha256:" + "b" * 64


class Rollout(unittest.TestCase):
    def run_with(self, scenario, spinapp=None, deployment=None, image=NEW, version="7"):
        """Runs rollout.main against the fake; returns (exit code, state, stdout)."""
        tmp = tempfile.mkdtemp()
        state_path = os.path.join(tmp, "state.json")
        with open(state_path, "w") as f:
            json.dump({"scenario": scenario, "spinapp": spinapp, "deployment": deployment}, f)
        wrapper = os.path.join(tmp, "kubectl")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_kubectl.py"}" "$@"\n')
        os.chmod(wrapper, 0o755)
        env = {"KUBECTL": wrapper, "FAKE_KUBECTL_STATE": state_path, "ROLLOUT_POLL_S": "0.01"}
        old_env = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = rollout.main(["--image", image, "--version", version, "--run-id", "r1", "--revision", "c0ffee",
                                     "--manifests", MANIFESTS, "--timeout", "2"])
        finally:
            for k, v in old_env.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        with open(state_path) as f:
            return code, json.load(f), out.getvalue()

    @staticmethod
    def serving_old():
        return {"metadata": {"annotations": {"stacktag.dev/model-version": "6"}}, "spec": {"image": OLD}}

    def test_a_first_deploy_waits_for_the_deployment_to_appear(self):
        code, state, out = self.run_with({"deployment_after": 5, "before": "missing", "serves": {NEW: "7"}})
        self.assertEqual(code, 0, out)
        self.assertEqual(state["applied"], [NEW])
        self.assertEqual(state["rollout_status_saw"], [NEW], "rollout status ran before the Deployment existed")
        notes = state["spinapp"]["metadata"]["annotations"]
        self.assertEqual(notes["stacktag.dev/model-version"], "7")
        self.assertEqual(notes["stacktag.dev/run-id"], "r1")
        self.assertEqual(notes["org.opencontainers.image.revision"], "c0ffee")

    def test_the_old_deployment_reporting_ready_is_not_taken_for_the_new(self):
        code, state, out = self.run_with({"deployment_after": 4, "before": "old", "serves": {NEW: "7", OLD: "6"}},
                                         spinapp=self.serving_old(), deployment=OLD)
        self.assertEqual(code, 0, out)
        self.assertEqual(state["rollout_status_saw"], [NEW], "rollout status judged the old Deployment")

    def test_a_pod_that_never_becomes_ready_puts_back_what_served(self):
        code, state, out = self.run_with({"deployment_after": 1, "before": "old", "unready": [NEW], "serves": {OLD: "6"}},
                                         spinapp=self.serving_old(), deployment=OLD)
        self.assertEqual(code, 1)
        self.assertEqual(state["applied"], [NEW, OLD], "the previous image was not re-applied")
        self.assertEqual(state["spinapp"]["spec"]["image"], OLD)
        self.assertEqual(state["spinapp"]["metadata"]["annotations"]["stacktag.dev/model-version"], "6")
        self.assertIn("reverted to", out)

    def test_a_wrong_version_served_puts_back_what_served(self):
        # The new digest rolls out, but its pods report another model (a mislabelled push).
        code, state, out = self.run_with({"deployment_after": 1, "before": "old", "serves": {NEW: "5", OLD: "6"}},
                                         spinapp=self.serving_old(), deployment=OLD)
        self.assertEqual(code, 1)
        self.assertIn("reports version 5, not 7", out)
        self.assertEqual(state["applied"], [NEW, OLD])

    def test_an_operator_that_never_updates_the_deployment_fails_and_reverts(self):
        code, state, out = self.run_with({"deployment_after": 1, "before": "old", "never_updates": [NEW], "serves": {OLD: "6"}},
                                         spinapp=self.serving_old(), deployment=OLD)
        self.assertEqual(code, 1)
        self.assertIn("did not update Deployment", out)
        self.assertNotIn(NEW, state.get("rollout_status_saw", []))
        self.assertEqual(state["applied"], [NEW, OLD])

    def test_a_failed_first_deploy_says_there_is_nothing_to_put_back(self):
        code, state, out = self.run_with({"deployment_after": 1, "before": "missing", "unready": [NEW]})
        self.assertEqual(code, 1)
        self.assertIn("nothing to put back", out)
        self.assertEqual(state["applied"], [NEW])

    def test_a_cluster_that_refuses_the_spinapp_fails_loudly_and_what_served_keeps_serving(self):
        code, state, out = self.run_with({"deployment_after": 1, "before": "old", "refused": [NEW], "serves": {OLD: "6"}},
                                         spinapp=self.serving_old(), deployment=OLD)
        self.assertEqual(code, 1)
        self.assertIn("denied the request", out)
        self.assertEqual(state["spinapp"]["spec"]["image"], OLD)
        self.assertEqual(state["deployment"], OLD)

    def test_a_tag_instead_of_a_digest_is_refused_before_anything_is_applied(self):
        code, state, out = self.run_with({}, spinapp=self.serving_old(), image="ghcr.io/o/stacktag-edge:v7")
        self.assertEqual(code, 2)
        self.assertIn("must name a digest", out)
        self.assertNotIn("applied", state)


if __name__ == "__main__":
    unittest.main()
