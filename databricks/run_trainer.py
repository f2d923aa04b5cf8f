"""The Databricks job's task (databricks/job.json): runs the trainer binary of the image.

A spark_python_task runs this file on the driver of the job cluster, whose container is the
image from databricks/Dockerfile. First `trainer fetch` brings the questions asked since the
last run from the Stack Exchange API into the `--data` folder, a Unity Catalog volume, which is
the inbox (docs/harvest.md; `STACKTAG_FETCH=none` in the cluster's environment skips it); then
its arguments go to `trainer retrain` unchanged, e.g.

    --data /Volumes/main/stacktag/data/batches --eval /Volumes/main/stacktag/data/eval.csv.gz

A fetch that stops early (out of quota, an API error) keeps what it brought and the retrain
goes on with the inbox as it is.

MLflow is the workspace's own (MLFLOW_TRACKING_URI=databricks), the registry Unity Catalog.
The service principal's OAuth client id and secret (DATABRICKS_CLIENT_ID and
DATABRICKS_CLIENT_SECRET; or a DATABRICKS_TOKEN) come from the cluster's environment (secret
references in job.json); DATABRICKS_HOST, when the cluster does not set it, from the workspace
URL Spark reports. The trainer's exit code is this task's,
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
    oauth = os.environ.get("DATABRICKS_CLIENT_ID") and os.environ.get("DATABRICKS_CLIENT_SECRET")
    if not (oauth or os.environ.get("DATABRICKS_TOKEN")):
        sys.exit(
            "error: neither DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET nor DATABRICKS_TOKEN is set: "
            "job.json passes the service principal's from the secret scope `stacktag`"
        )
    env = dict(os.environ)
    env.setdefault("MLFLOW_TRACKING_URI", "databricks")
    env.setdefault("MLFLOW_REGISTRY_URI", "databricks-uc")
    env["DATABRICKS_HOST"] = workspace_host()
    if env.get("STACKTAG_FETCH", "api") == "api":
        fetch = [TRAINER, "fetch", "--inbox", flag_value(argv, "--data"), "--eval", flag_value(argv, "--eval"), "api"]
        print("running:", " ".join(fetch), flush=True)
        if subprocess.run(fetch, env=env, check=False).returncode != 0:
            print("warning: the fetch stopped early; retraining on the inbox as it is", flush=True)
    cmd = [TRAINER, "retrain", *argv]
    print("running:", " ".join(cmd), flush=True)
    return subprocess.run(cmd, env=env, check=False).returncode


def flag_value(argv, flag):
    """The value after `flag` in the task's arguments (job.json always passes both)."""
    try:
        return argv[argv.index(flag) + 1]
    except (ValueError, IndexError):
        sys.exit(f"error: the task's arguments have no `{flag} VALUE`: {argv}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
