#!/usr/bin/env python3
"""A loopback stand-in for the Databricks endpoints Stacktag uses, checked by MLflow's own client.

Usage::

    python standin.py --state-dir DIR [--port 0] [--token PAT]
                      [--client-id ID --client-secret SECRET] [--token-ttl SECONDS]
                      [--credential-ttl SECONDS] [--page-size N] [--run-artifacts s3|azure]
                      [--ignore-stdin] [--verbose]

When everything answers it prints ONE JSON line on stdout (and nothing else ever goes there)::

    {"host": "http://127.0.0.1:P", "s3_endpoint": "http://127.0.0.1:S", "token": "<PAT>",
     "client_id": "...", "client_secret": "...", "bucket": "...", "workspace_id": "...",
     "mlflow_url": "http://127.0.0.1:M", "run_artifacts": "s3", "pid": N}

and runs until its stdin reaches EOF (the test harness holds a pipe to it), SIGTERM or SIGINT;
then it stops the MLflow child (its whole process group) and exits. Logs go to stderr; the
MLflow child's output goes to DIR/mlflow-server.log.

What is real and what is simulated
----------------------------------
Real:
- The tracking server: ``mlflow server`` 3.17.2 from the venv, as a child process, sqlite in
  DIR, ``--default-artifact-root dbfs:/databricks/mlflow-tracking --no-serve-artifacts`` so runs
  get Databricks' artifact URIs (``dbfs:/databricks/mlflow-tracking/<exp>/<run>/artifacts``).
  Every tracking call (experiments, runs, params, metrics, tags, log-batch, logged models...)
  is answered by it, unchanged but for the exceptions in ``standin_api.py``.
- Object storage: moto's S3 (in-process), behind an S3 front that checks SigV4 signatures,
  credential scope and expiry against what the stand-in issued (``standin_s3.py``).
- The checks: every request the stand-in answers itself is parsed into the request proto of
  MLflow's own client and answered from the response proto (``standin_common.py``), and
  ``oracle.py`` runs MLflow's client and databricks-sdk against all of it.
Simulated:
- Databricks auth (PAT, OAuth M2M with host metadata and OIDC discovery), the Unity Catalog
  model registry (``standin_uc.py``), MLflow-managed run/logged-model artifact storage (the
  credential and listing endpoints of ``standin_api.py``). Faithful in shapes (from MLflow's
  protos and databricks-sdk's parsing code); behaviour (states, errors, paging) is a model,
  and each module's docstring says which parts are guesses.

Faults and inspection (no auth): ``POST /__standin/faults``, ``GET /__standin/faults``,
``GET /__standin/requests[?since=SEQ]``, ``POST /__standin/reset``, ``GET /__standin/health``.
See docs/databricks-standin.md for every endpoint's exact shapes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


log = logging.getLogger("standin")
HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the MLflow child before exec: its own process group (so the whole tree can be
    signalled), and SIGTERM if the stand-in dies without cleaning up (e.g. SIGKILL)."""
    os.setsid()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_mlflow(state_dir: Path, port: int) -> subprocess.Popen:
    # The venv's mlflow, next to the python running us.
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    args = [
        str(mlflow_bin), "server",
        "--backend-store-uri", f"sqlite:///{state_dir / 'mlflow.db'}",
        "--default-artifact-root", "dbfs:/databricks/mlflow-tracking",
        "--no-serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    env = {
        k: v
        for k, v in os.environ.items()
        # The child must not act as a Databricks client itself, nor go through proxies.
        if not k.startswith(("DATABRICKS_", "MLFLOW_TRACKING_", "MLFLOW_REGISTRY_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        PYTHONUNBUFFERED="1",
        # MLflow's job runner (huey consumers: 7 more processes, >10 s to stop, a temp dir in
        # /dev/shm each start) serves GenAI jobs nothing here uses.
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    logfile = open(state_dir / "mlflow-server.log", "ab")  # noqa: SIM115 - the child keeps it
    log.info("starting MLflow: %s", " ".join(args))
    return subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT, env=env,
        cwd=state_dir, preexec_fn=_die_with_parent,
    )  # fmt: skip


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is still in process group ``pgid``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_group(child: subprocess.Popen, name: str) -> None:
    """A child started with ``_die_with_parent`` and everything in its process group (the MLflow
    CLI and its uvicorn worker; azurite): SIGTERM them, give them a second, SIGKILL whatever is
    left (the sqlite store commits per request, so nothing is lost), and wait until the group
    is empty."""
    pgid = child.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log.error("%s (pid %s) did not exit after SIGKILL", name, pgid)
    deadline = time.time() + 5
    while _group_alive(pgid) and time.time() < deadline:
        time.sleep(0.05)
    log.info("%s stopped", name)


def wait_for_mlflow(child: subprocess.Popen, url: str, state_dir: Path, timeout: float, stop: threading.Event) -> None:
    import requests

    deadline = time.time() + timeout
    while time.time() < deadline:
        if stop.is_set():
            raise SystemExit("standin: stopped while the MLflow server was starting")
        if child.poll() is not None:
            tail = (state_dir / "mlflow-server.log").read_text(errors="replace")[-3000:]
            raise SystemExit(f"standin: the MLflow server exited with {child.returncode}:\n{tail}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise SystemExit(f"standin: the MLflow server did not answer /health within {timeout:.0f}s")


def serve(app, port: int, name: str):
    """A threaded werkzeug server on loopback, in a daemon thread. Returns the server."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code="-", size="-"):  # per-request lines only with --verbose
            if log.isEnabledFor(logging.DEBUG):
                super().log_request(code, size)

    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0, help="the Databricks API port (0: a free one)")
    parser.add_argument("--token", default=None, help="the PAT (default: a random dapi... token)")
    parser.add_argument("--client-id", default=None, help="the OAuth service principal's client id")
    parser.add_argument("--client-secret", default=None, help="its secret")
    parser.add_argument("--token-ttl", type=float, default=3600, help="OAuth access token lifetime (s)")
    parser.add_argument("--credential-ttl", type=float, default=3600, help="UC temporary credential lifetime (s)")
    parser.add_argument(
        "--page-size",
        type=int,
        default=4,
        help="page size of credentials-for-* and artifact listings (small: clients must page)",
    )
    parser.add_argument("--bucket", default="stacktag-standin")
    parser.add_argument(
        "--run-artifacts",
        choices=("s3", "azure"),
        default="s3",
        help="where run artifacts live: the S3 front (AWS presigned URLs, the default) or azurite "
        "(Azure SAS URLs, as on Azure Databricks; needs tools/databricks-standin/node_modules)",
    )
    parser.add_argument("--startup-timeout", type=float, default=180)
    parser.add_argument("--ignore-stdin", action="store_true", help="do not exit on stdin EOF (manual use)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    # stdout carries exactly one line: keep the real one aside and send fd 1 to stderr, so a
    # stray print (moto, werkzeug, a warning) cannot corrupt it.
    announce = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="standin %(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("werkzeug", "botocore", "boto3", "urllib3", "moto", "azure"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)

    args.state_dir.mkdir(parents=True, exist_ok=True)
    state_dir = args.state_dir.resolve()
    pat = args.token or "dapi" + secrets.token_hex(16)
    client_id = args.client_id or "standin-sp-" + secrets.token_hex(4)
    client_secret = args.client_secret or "dose" + secrets.token_hex(20)

    stop = threading.Event()
    why = {"reason": ""}

    def on_signal(signum, _frame):
        why["reason"] = signal.Signals(signum).name
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # The MLflow server takes the longest to come up: start it first, before any thread
    # exists (preexec_fn), and import the heavy modules while it boots.
    mlflow_port = _free_port()
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    child = start_mlflow(state_dir, mlflow_port)
    azurite = None
    try:
        sys.path.insert(0, str(HERE))
        sys.dont_write_bytecode = True  # no __pycache__ in the source tree
        if args.run_artifacts == "azure":
            # Also forked before any thread of ours exists (preexec_fn); its pump thread comes after.
            from standin_azure import start_azurite

            azurite, azure_endpoint = start_azurite(state_dir, _die_with_parent, args.startup_timeout)
        from standin_api import WORKSPACE_ID, ApiFront, Faults, S3RunStorage
        from standin_common import RequestLog
        from standin_s3 import CredentialStore, InternalS3, S3Front

        refused = {}
        if args.run_artifacts == "azure":
            refused["expire_credentials_after"] = "azurite cannot count a SAS URL's uses (--run-artifacts azure)"
        faults = Faults(args.token_ttl, refused)
        request_log = RequestLog(500)
        store = CredentialStore(faults.get, args.bucket)
        s3_server = serve(S3Front(store, request_log), 0, "s3-front")
        store.endpoint = f"http://127.0.0.1:{s3_server.server_port}"
        internal = InternalS3(store)
        internal.create_bucket()
        if args.run_artifacts == "azure":
            from standin_azure import AzureRunStorage

            run_storage = AzureRunStorage(azure_endpoint, faults.get)
        else:
            run_storage = S3RunStorage(store, internal)
        api = ApiFront(
            pat=pat, client_id=client_id, client_secret=client_secret, faults=faults, store=store,
            s3=internal, run_storage=run_storage, request_log=request_log, child_url=mlflow_url,
            credential_ttl=args.credential_ttl, page_size=args.page_size,
        )  # fmt: skip
        api_server = serve(api, args.port, "api-front")
        api.host = f"http://127.0.0.1:{api_server.server_port}"
        wait_for_mlflow(child, mlflow_url, state_dir, args.startup_timeout, stop)

        info = {
            "host": api.host,
            "s3_endpoint": store.endpoint,
            "token": pat,
            "client_id": client_id,
            "client_secret": client_secret,
            "bucket": args.bucket,
            "workspace_id": WORKSPACE_ID,
            "mlflow_url": mlflow_url,
            "run_artifacts": args.run_artifacts,
            "pid": os.getpid(),
        }
        announce.write(json.dumps(info) + "\n")
        announce.flush()
        log.info(
            "ready: api %s, s3 %s, mlflow %s (log %s)",
            api.host,
            store.endpoint,
            mlflow_url,
            state_dir / "mlflow-server.log",
        )

        if not args.ignore_stdin:
            stdin_fd = sys.stdin.fileno()

            def watch_stdin():
                # Any input is ignored; EOF (the harness closed its end or died) means stop.
                # os.read on the raw fd: a thread blocked in the buffered reader holds its lock
                # and makes interpreter shutdown abort.
                try:
                    while os.read(stdin_fd, 65536):
                        pass
                except OSError:
                    pass
                why["reason"] = why["reason"] or "stdin EOF"
                stop.set()

            threading.Thread(target=watch_stdin, name="stdin", daemon=True).start()

        while not stop.wait(0.2):
            if child.poll() is not None:
                log.error("the MLflow server exited unexpectedly with %s", child.returncode)
                return 1
            if azurite is not None and azurite.poll() is not None:
                log.error("azurite exited unexpectedly with %s", azurite.returncode)
                return 1
        log.info("stopping (%s)", why["reason"])
        return 0
    finally:
        # The fronts need no shutdown: the process ends with os._exit right after this.
        if azurite is not None:
            stop_group(azurite, "azurite")
        stop_group(child, "the MLflow server")


if __name__ == "__main__":
    try:
        code = main()
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
            code = 1
        else:
            code = stop.code or 0
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        code = 1
    # Everything is stopped by now. os._exit skips joining the servers' keep-alive handler
    # threads, which would hold the exit for seconds.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(code)
