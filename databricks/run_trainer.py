"""The Databricks job's task (databricks/job.json): runs the trainer binary of the image.

A spark_python_task runs this file on the driver of the job cluster, whose container is the
image from databricks/Dockerfile. Its arguments go to `trainer retrain` unchanged, e.g.

    --data /Volumes/main/stacktag/data/batches --eval /Volumes/main/stacktag/data/eval.csv.gz

MLflow is the workspace's own (MLFLOW_TRACKING_URI=databricks). DATABRICKS_TOKEN comes from
the cluster's environment (a secret reference in job.json); DATABRICKS_HOST, when the cluster
does not set it, from the workspace URL Spark reports. The trainer's exit code is this task's,
so a run that was not promoted fails the task when `--fail-if-not-promoted` is passed.
"""

import os
import subprocess
import sys

# The path databricks/Dockerfile copies the binary to.
TRAINER = os.environ.get("STACKTAG_TRAINER", "/opt/stacktag/trainer")


def workspace_host():
    """The workspace URL, from the environment or else from Spark's configuration."""
    host = os.environ.get("DATABRICKS_HOST")
    if host:
        return host
    try:
        from pyspark.sql import SparkSession  # present on every Databricks runtime

        url = SparkSession.builder.getOrCreate().conf.get("spark.databricks.workspaceUrl")
    except Exception as e:  # noqa: BLE001 - any failure means the same thing here
        sys.exit(f"error: DATABRICKS_HOST is not set and Spark did not report the workspace URL ({e})")
    return url if url.startswith("https://") else f"https://{url}"


def main(argv):
    if not os.access(TRAINER, os.X_OK):
        sys.exit(f"error: no trainer binary at `{TRAINER}`: the cluster must run the image from databricks/Dockerfile")
    if not os.environ.get("DATABRICKS_TOKEN"):
        sys.exit("error: DATABRICKS_TOKEN is not set: job.json passes it from the secret scope `stacktag`")
    env = dict(os.environ)
    env.setdefault("MLFLOW_TRACKING_URI", "databricks")
    env["DATABRICKS_HOST"] = workspace_host()
    cmd = [TRAINER, "retrain", *argv]
    print("running:", " ".join(cmd), flush=True)
    return subprocess.run(cmd, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
