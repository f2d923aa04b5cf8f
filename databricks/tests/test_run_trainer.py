"""run_trainer.py's decisions against a scripted trainer: the fetch runs first on the job's
inbox and evaluation data, a fetch that fails does not stop the retrain, `STACKTAG_FETCH=none`
skips it, and the task's exit code is the retrain's.

    python -m unittest discover -s databricks/tests
"""

import json
import os
import stat
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

RUN_TRAINER = Path(__file__).resolve().parents[1] / "run_trainer.py"
ARGS = ["--data", "/Volumes/main/stacktag/data/batches", "--eval", "/Volumes/main/stacktag/data/eval.csv.gz", "--json"]


class RunTrainer(unittest.TestCase):
    def run_task(self, fetch_exit=0, retrain_exit=0, **env):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "calls.jsonl"
            fake = Path(tmp) / "trainer"
            fake.write_text(
                "#!/usr/bin/env python3\n"
                "import json, sys\n"
                f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                f"sys.exit({fetch_exit} if sys.argv[1] == 'fetch' else {retrain_exit})\n"
            )
            fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
            full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "STACKTAG_"))}
            full_env.update(STACKTAG_TRAINER=str(fake), DATABRICKS_TOKEN="dapi-test", DATABRICKS_HOST="https://example.cloud.databricks.com", **env)
            run = subprocess.run([sys.executable, str(RUN_TRAINER), *ARGS], env=full_env, capture_output=True, text=True)
            calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
            return run, calls

    def test_the_fetch_runs_first_on_the_jobs_inbox(self):
        run, calls = self.run_task()
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(calls[0], ["fetch", "--inbox", ARGS[1], "--eval", ARGS[3], "api"])
        self.assertEqual(calls[1], ["retrain", *ARGS])

    def test_a_failed_fetch_does_not_stop_the_retrain(self):
        run, calls = self.run_task(fetch_exit=1, retrain_exit=3)
        self.assertEqual([c[0] for c in calls], ["fetch", "retrain"])
        self.assertIn("retraining on the inbox as it is", run.stdout)
        self.assertEqual(run.returncode, 3, "the task's exit code is the retrain's")

    def test_fetch_none_skips_it(self):
        run, calls = self.run_task(STACKTAG_FETCH="none")
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual([c[0] for c in calls], ["retrain"])


if __name__ == "__main__":
    unittest.main()
