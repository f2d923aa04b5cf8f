"""Creates or updates the Databricks job from job.json, runs it and waits for the result.

    python databricks/submit.py databricks/job.json [--image URL] [--git-url URL]
        [--git-commit SHA] [--run-as APPLICATION_ID] [--notify EMAIL ...]
        [--param NAME=VALUE ...] [--dry-run]

.github/workflows/retrain.yml runs it with DATABRICKS_HOST and DATABRICKS_TOKEN set. The job
is found by its `name`: created if missing, else reset to the file (so the workspace holds
what the repository says). `--image` sets the job cluster's `docker_image.url` (the image retrain.yml built
and tagged with the commit), `--git-url` and `--git-commit` the code the task runs, `--run-as`
the service principal the job runs as (it must own the Unity Catalog model: only the owner
may move `champion`), `--notify` who hears of a failure. The wait outlasts the job's own
timeout plus a cold container cluster's start (the SDK's default gives up after 20 minutes
while the run goes on). `--dry-run` prints the settings and calls nothing
(scripts/check-delivery.sh runs it that way). Exit 1 when the run does not succeed.
"""

import argparse
import json
import sys
from datetime import timedelta

from databricks.sdk.service import jobs


def settings_from(args):
    with open(args.job) as f:
        raw = json.load(f)
    for cluster in raw.get("job_clusters", []):
        if args.image:
            cluster["new_cluster"]["docker_image"]["url"] = args.image
    if args.git_url:
        raw["git_source"]["git_url"] = args.git_url
    if args.git_commit:
        raw["git_source"].pop("git_branch", None)
        raw["git_source"]["git_commit"] = args.git_commit
    if args.run_as:
        raw["run_as"] = {"service_principal_name": args.run_as}
    if args.notify:
        raw.setdefault("email_notifications", {})["on_failure"] = args.notify
    return jobs.JobSettings.from_dict(raw)


# A cold container cluster (image pull included) can take this long to start.
CLUSTER_START = timedelta(minutes=25)


def wait_limit(settings):
    """How long to wait for a run: the job's own timeout plus a cold cluster's start."""
    return timedelta(seconds=settings.timeout_seconds or 3600) + CLUSTER_START


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("job")
    p.add_argument("--image")
    p.add_argument("--git-url")
    p.add_argument("--git-commit")
    p.add_argument("--run-as", help="application id of the service principal the job runs as")
    p.add_argument("--notify", action="append", default=[], help="e-mail told of a failed run")
    p.add_argument("--param", action="append", default=[], help="NAME=VALUE job parameter")
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    settings = settings_from(args)
    params = dict(kv.split("=", 1) for kv in args.param)
    if args.dry_run:
        wait = int(wait_limit(settings).total_seconds())
        print(json.dumps({"settings": settings.as_dict(), "job_parameters": params, "wait_seconds": wait}, indent=2))
        return 0

    from databricks.sdk import WorkspaceClient  # reads DATABRICKS_HOST / DATABRICKS_TOKEN

    w = WorkspaceClient()
    existing = [j for j in w.jobs.list(name=settings.name)]
    if len(existing) > 1:
        sys.exit(f"error: {len(existing)} jobs are named `{settings.name}`; keep one")
    if existing:
        job_id = existing[0].job_id
        w.jobs.reset(job_id=job_id, new_settings=settings)
        print(f"job `{settings.name}` ({job_id}) reset to {args.job}")
    else:
        job_id = w.jobs.create(**{k: getattr(settings, k) for k in settings.as_dict()}).job_id
        print(f"job `{settings.name}` ({job_id}) created from {args.job}")
    run = w.jobs.run_now(job_id=job_id, job_parameters=params or None).result(timeout=wait_limit(settings))
    state = run.state.result_state.value if run.state and run.state.result_state else "UNKNOWN"
    print(f"run {run.run_id}: {state} ({run.run_page_url})")
    return 0 if state == "SUCCESS" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
