"""Checks databricks/ offline: the job against the Jobs API types, the Dockerfile's paths.

    python tools/lint/check_databricks.py databricks/job.json databricks/Dockerfile

job.json: read as the Jobs API 2.1 `JobSettings` of PyPI `databricks-sdk` (what `jobs/create`
and `jobs/reset` take). `from_dict` drops unknown keys and unknown enum values silently, so the
check compares the round trip `from_dict(...).as_dict()` with the file: any key that did not
survive is misspelled or not in the API. Each value's JSON type is held to the field's
annotation (a string where an int belongs fails). Then what the job needs from this repo: one
task, a job cluster with `docker_image.url`, a spark_python_task whose file exists and whose
`{{job.parameters.X}}` references name declared parameters.

Dockerfile: tools/lint/check_dockerfile.py's checks, with `target/release/trainer` as the
built path and the binary landing where run_trainer.py looks. Prints each finding as `file: message`; exit 1.
"""

import enum
import json
import re
import sys
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path

from databricks.sdk.service import jobs

import check_dockerfile as check_dockerfile_  # beside this file

ROOT = Path(__file__).resolve().parents[2]
findings = []


def finding(path, msg):
    findings.append(f"{path}: {msg}")


def diff(want, got, where, path):
    """Reports what is in `want` (the file) but not the same in `got` (the round trip)."""
    if isinstance(want, dict) and isinstance(got, dict):
        for k, v in want.items():
            if k not in got:
                finding(path, f"`{where}{k}` is not a field of the Jobs API (or its value is not allowed): {json.dumps(v)[:80]}")
            else:
                diff(v, got[k], f"{where}{k}.", path)
    elif isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (a, b) in enumerate(zip(want, got)):
            diff(a, b, f"{where[:-1]}[{i}].", path)
    elif want != got:
        finding(path, f"`{where[:-1]}` changed in the round trip: {json.dumps(want)[:80]} -> {json.dumps(got)[:80]}")


def check_types(value, tp, where, path):
    """Holds a JSON value to a dataclass field's annotation."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return check_types(value, args[0], where, path)
    if origin in (list, typing.List):
        if not isinstance(value, list):
            return finding(path, f"`{where}` must be a list")
        for i, v in enumerate(value):
            check_types(v, typing.get_args(tp)[0], f"{where}[{i}]", path)
        return
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            return finding(path, f"`{where}` must be an object")
        for k, v in value.items():
            check_types(v, typing.get_args(tp)[1], f"{where}.{k}", path)
        return
    if is_dataclass(tp):
        if not isinstance(value, dict):
            return finding(path, f"`{where}` must be an object ({tp.__name__})")
        hints = typing.get_type_hints(tp)
        for f in fields(tp):
            if f.name in value:
                check_types(value[f.name], hints[f.name], f"{where}.{f.name}" if where else f.name, path)
        return
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [e.value for e in tp]
        if value not in allowed:
            finding(path, f"`{where}` is {json.dumps(value)}, not one of {allowed[:8]}")
        return
    expect = {str: str, int: int, float: (int, float), bool: bool}.get(tp)
    if expect is not None and (not isinstance(value, expect) or (tp is int and isinstance(value, bool))):
        finding(path, f"`{where}` must be {tp.__name__}, not {json.dumps(value)}")


def check_job(path):
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return finding(path, f"cannot read: {e}")
    check_types(raw, jobs.JobSettings, "", path)
    diff(raw, jobs.JobSettings.from_dict(raw).as_dict(), "", path)

    settings = jobs.JobSettings.from_dict(raw)
    declared = {p.name for p in settings.parameters or []}
    clusters = {c.job_cluster_key: c for c in settings.job_clusters or []}
    if not settings.tasks:
        return finding(path, "no task")
    for t in settings.tasks:
        cluster = clusters.get(t.job_cluster_key)
        if cluster is None:
            finding(path, f"task `{t.task_key}` names job cluster `{t.job_cluster_key}`, which is not defined")
        elif not (cluster.new_cluster.docker_image and cluster.new_cluster.docker_image.url):
            finding(path, f"job cluster `{t.job_cluster_key}` has no `docker_image.url` (the trainer image)")
        task = t.spark_python_task
        if task is None:
            finding(path, f"task `{t.task_key}` is not a spark_python_task")
            continue
        if task.source == jobs.Source.GIT and not (ROOT / task.python_file).is_file():
            finding(path, f"task `{t.task_key}` runs `{task.python_file}`, which is not in the repository")
        for p in task.parameters or []:
            for ref in re.findall(r"\{\{job\.parameters\.([^}]+)\}\}", p):
                if ref not in declared:
                    finding(path, f"task `{t.task_key}` uses `{{{{job.parameters.{ref}}}}}`, not a declared parameter")


def check_dockerfile(path, run_trainer):
    want = re.search(r'"STACKTAG_TRAINER", "([^"]+)"', run_trainer.read_text())
    # The paths the Dockerfile may name before they exist: cargo's release binary and the
    # Python flavor's core (retrain.yml builds both before `docker build`).
    built = ["target/release/trainer", "target/wasm32-unknown-unknown/wasm/edge_classifier_python.wasm"]
    found, _ = check_dockerfile_.problems(path, built=built, runs=[want.group(1)] if want else [])
    findings.extend(found)
    if want is None:
        finding(path, f"{run_trainer.name} names no STACKTAG_TRAINER default")


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: check_databricks.py JOB_JSON DOCKERFILE")
    job, dockerfile = Path(argv[0]), Path(argv[1])
    check_job(job)
    check_dockerfile(dockerfile, dockerfile.with_name("run_trainer.py"))
    for f in findings:
        print(f)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
