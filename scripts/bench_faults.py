#!/usr/bin/env python3
"""The fault-injection run (scripts/bench-faults.sh starts it; docs/registry-sync.md explains it).

registry-sync `serve` runs against a real MLflow and real `wasmtime serve` instances, under a
steady, bounded load through its gateway, while faults are injected one after another. Prints
ONE JSON object on stdout: per fault, the requests sent and failed while it lasted, whether the
served version ended equal to `champion`, and the seconds from recovery to convergence; in total
`requests`, `failed_requests` and `lost_promotions`. The story goes to stderr.

What plays which part, and why:
- MLflow is `stacktag mlflow` (sqlite, artifacts on disk), in its own process group, so
  "MLflow killed" is a SIGKILL of the whole server.
- The gateway's listening socket is held here and handed to registry-sync by socket
  activation (`LISTEN_FDS`), as a systemd `.socket` unit would: a `kill -9` or a restart of
  registry-sync then leaves connections waiting in the backlog instead of refused.
- The load is LOAD_CLIENTS clients, each sending one `POST /classify` at a time on a new
  connection (many different people, as at an edge), at most LOAD_RPS per client. A request
  fails if no 200 comes back within 60 s. Nothing is retried.
- A hung bake is the one fault the real tools cannot produce on demand: registry-sync runs
  wasmtime through a wrapper that, while a marker file exists, runs `sleep` instead of
  `wasmtime wizer` (the serving instances are the real wasmtime either way).

Requires: BIN (debug or release dir with trainer, registry-sync, stacktag), WASMTIME,
EDGE_WASM, ROOT (the repository). Optional: LOAD_CLIENTS (2), LOAD_RPS (10).
"""

import hashlib
import hmac
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

BIN = os.environ["BIN"]
WASMTIME = os.environ["WASMTIME"]
EDGE_WASM = os.environ["EDGE_WASM"]
ROOT = os.environ["ROOT"]
LOAD_CLIENTS = int(os.environ.get("LOAD_CLIENTS", "2"))
LOAD_RPS = float(os.environ.get("LOAD_RPS", "10"))
TINY = os.path.join(ROOT, "trainer/tests/fixtures/tiny.csv")
MODEL = "bench-faults"
VERSION_HEADER = "x-stacktag-model-version"
CONVERGE_LIMIT_S = 120.0
BAKE_TIMEOUT_S = 15
POLL_S = 2.0
QUESTION = b"how do i sort a dictionary by value? sorted(d.items(), key=lambda kv: kv[1]) gives tuples"

T0 = time.monotonic()


def log(msg):
    print(f"{time.monotonic() - T0:8.1f}s bench-faults: {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Bench:
    def __init__(self, work):
        self.work = work
        self.mlflow_port = free_port()
        self.mlflow_url = f"http://127.0.0.1:{self.mlflow_port}"
        self.mlflow = None
        self.sync = None
        self.secret = base64.b64encode(os.urandom(32)).decode()
        self.previous_secret = None
        self.state_dir = os.path.join(work, "sync")
        self.hang_marker = os.path.join(work, "hang-bake")
        self.sync_log = open(os.path.join(work, "sync.log"), "ab")
        # The gateway's socket: held here for the whole run (socket activation).
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1024)
        self.gateway_port = self.listener.getsockname()[1]
        self.gateway = f"http://127.0.0.1:{self.gateway_port}"
        self.phase = "start-up"
        self.lock = threading.Lock()
        self.counts = {}
        self.slowest = {}
        self.errors = []
        self.stop_load = threading.Event()
        self.keys = {}

    # --- processes -----------------------------------------------------------------------
    def start_mlflow(self):
        log(f"MLflow up on {self.mlflow_url}")
        self.mlflow = subprocess.Popen(
            [f"{BIN}/stacktag", "mlflow", "--dir", os.path.join(self.work, "mlflow"), "--port", str(self.mlflow_port)],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.work, "mlflow.log"), "ab"),
            start_new_session=True)
        self.wait(lambda: self.get_ok(f"{self.mlflow_url}/health"), 180, "MLflow to answer /health")

    def mlflow_groups(self):
        """`stacktag mlflow`'s process group and the server's (the launcher starts the server
        in a group of its own, its workers with it)."""
        out = subprocess.run(["pgrep", "-P", str(self.mlflow.pid)], capture_output=True, text=True).stdout.split()
        return {self.mlflow.pid} | {os.getpgid(int(p)) for p in out if p.strip()}

    def signal_mlflow(self, sig, groups=None):
        for g in groups or self.mlflow_groups():
            try:
                os.killpg(g, sig)
            except ProcessLookupError:
                pass

    def kill_mlflow(self, groups=None):
        log("MLflow killed (SIGKILL to the server's process groups)")
        self.signal_mlflow(signal.SIGKILL, groups)
        self.mlflow.wait()
        # Down for real: nothing answers on its port any more.
        self.wait(lambda: not self.get_ok(f"{self.mlflow_url}/health"), 30, "MLflow to be gone")

    def start_sync(self, expect_exit=False, state_dir=None, log_to=None):
        env = dict(os.environ, STACKTAG_WEBHOOK_SECRET=self.secret, LISTEN_FDS="1",
                   LISTEN_FDS_FIRST_FD=str(self.listener.fileno()), RUST_LOG="info")
        if self.previous_secret:
            env["STACKTAG_WEBHOOK_PREVIOUS_SECRET"] = self.previous_secret
        env.pop("LISTEN_PID", None)
        args = [f"{BIN}/registry-sync", "serve", "--tracking-uri", self.mlflow_url, "--registered-model", MODEL,
                "--eval", TINY, "--generic-component", EDGE_WASM, "--wasmtime", os.path.join(self.work, "wasmtime"),
                "--trusted-key", self.keys["good"][1], "--state-dir", state_dir or self.state_dir,
                "--poll-interval", str(POLL_S), "--bake-timeout", str(BAKE_TIMEOUT_S), "--register-webhook",
                "--webhook-url", f"{self.gateway}/webhooks/mlflow"]
        out = log_to or self.sync_log
        p = subprocess.Popen(args, env=env, stdout=out, stderr=out,
                             pass_fds=(self.listener.fileno(),), start_new_session=True)
        if not expect_exit:
            self.sync = p
        return p

    def stop_sync(self, sig):
        log(f"registry-sync gets {signal.Signals(sig).name}")
        self.sync.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.sync.wait(timeout=90)

    def write_wasmtime_wrapper(self):
        path = os.path.join(self.work, "wasmtime")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n# A hung bake on demand: while the marker exists, `wizer` never ends.\n"
                    f'if [ "$1" = wizer ] && [ -e "{self.hang_marker}" ]; then exec sleep 3600; fi\n'
                    f'exec "{WASMTIME}" "$@"\n')
        os.chmod(path, 0o755)

    def make_keys(self):
        for name in ("good", "wrong"):
            key = os.path.join(self.work, f"{name}.key.pem")
            pub = os.path.join(self.work, f"{name}.pub.pem")
            subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key], check=True)
            subprocess.run(["openssl", "ec", "-in", key, "-pubout", "-out", pub], check=True, stderr=subprocess.DEVNULL)
            self.keys[name] = (key, pub)

    # --- MLflow --------------------------------------------------------------------------
    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.mlflow_url}/api/2.0/mlflow/{path}", data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def register(self, signed_with):
        """Trains the tiny fixture and registers it (alias `challenger`); returns the version."""
        out = tempfile.mkdtemp(dir=self.work, prefix="bundle-")
        env = dict(os.environ, MLFLOW_TRACKING_URI=self.mlflow_url)
        for k in ("STACKTAG_SIGNING_KEY", "STACKTAG_SIGNING_KEY_FILE"):
            env.pop(k, None)
        if signed_with:
            env["STACKTAG_SIGNING_KEY_FILE"] = self.keys[signed_with][0]
            env["STACKTAG_SIGNER"] = f"bench-faults {signed_with} key"
        subprocess.run([f"{BIN}/trainer", "train", "--data", self.train_csv, "--eval", self.eval_csv, "--out", out, "--register",
                        "--experiment", "bench-faults", "--registered-model", MODEL],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        v = self.api("GET", f"registered-models/alias?name={MODEL}&alias=challenger")["model_version"]
        log(f"registered version {v['version']} ({'signed with the ' + signed_with + ' key' if signed_with else 'unsigned'})")
        return v["version"]

    def split_fixture(self):
        """The tiny fixture cut in two (every fourth row held out), so training has rows that
        are not evaluation rows."""
        with open(TINY) as f:
            header, *rows = f.read().splitlines()
        self.train_csv = os.path.join(self.work, "train.csv")
        self.eval_csv = os.path.join(self.work, "eval.csv")
        for path, keep in ((self.train_csv, lambda i: i % 4 != 0), (self.eval_csv, lambda i: i % 4 == 0)):
            with open(path, "w") as f:
                f.write("\n".join([header] + [r for i, r in enumerate(rows) if keep(i)]) + "\n")

    def set_champion(self, version):
        self.api("POST", "registered-models/alias", {"name": MODEL, "alias": "champion", "version": version})
        log(f"champion -> {version}")

    def promote(self, version):
        """The real gate: `trainer promote` scores the version against the champion on the same
        data, moves `champion` and records the previous one (what `trainer rollback` reads)."""
        env = dict(os.environ, MLFLOW_TRACKING_URI=self.mlflow_url)
        subprocess.run([f"{BIN}/trainer", "promote", "--registered-model", MODEL, "--experiment", "bench-faults",
                        "--eval", self.eval_csv, "--version", version, "--fail-if-not-promoted"],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log(f"gate: champion -> {version}")

    def rollback(self):
        """`trainer rollback`: `champion` back to the version it replaced."""
        env = dict(os.environ, MLFLOW_TRACKING_URI=self.mlflow_url)
        subprocess.run([f"{BIN}/trainer", "rollback", "--registered-model", MODEL, "--experiment", "bench-faults"],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log(f"trainer rollback: champion -> {self.champion()}")

    def champion(self):
        return self.api("GET", f"registered-models/alias?name={MODEL}&alias=champion")["model_version"]["version"]

    def artifact_dir(self, version):
        """Where the real MLflow keeps a version's files (its artifacts destination)."""
        source = self.api("GET", f"model-versions/get?name={MODEL}&version={version}")["model_version"]["source"]
        # `mlflow-artifacts:/<path>` or `models:/m-…` resolved through the logged model.
        if source.startswith("models:/"):
            lm = self.api("GET", f"logged-models/{source.split('/')[-1]}")["model"]["info"]["artifact_uri"]
            source = lm
        path = source.split("mlflow-artifacts:/", 1)[1].lstrip("/")
        return os.path.join(self.work, "mlflow", "artifacts", path)

    # --- the gateway ---------------------------------------------------------------------
    def get_ok(self, url):
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status == 200
        except Exception:
            return False

    def served(self):
        try:
            with urllib.request.urlopen(f"{self.gateway}/model", timeout=5) as r:
                return r.headers.get(VERSION_HEADER)
        except Exception:
            return None

    def metric(self, line_prefix):
        try:
            with urllib.request.urlopen(f"{self.gateway}/metrics", timeout=5) as r:
                text = r.read().decode()
        except Exception:
            return None
        total = 0.0
        for line in text.splitlines():
            if line.startswith(line_prefix):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def webhook(self, delivery_id, timestamp, body, secret):
        sig = "v1," + base64.b64encode(hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body,
                                                 hashlib.sha256).digest()).decode()
        c = http.client.HTTPConnection("127.0.0.1", self.gateway_port, timeout=10)
        c.request("POST", "/webhooks/mlflow", body=body, headers={
            "content-type": "application/json", "X-MLflow-Delivery-Id": delivery_id,
            "X-MLflow-Timestamp": str(timestamp), "X-MLflow-Signature": sig})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status

    # --- load ----------------------------------------------------------------------------
    def client(self):
        gap = 1.0 / LOAD_RPS
        while not self.stop_load.is_set():
            started = time.monotonic()
            phase = self.phase
            ok, why = False, ""
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.gateway_port, timeout=60)
                c.request("POST", "/classify", body=QUESTION, headers={"content-type": "text/plain"})
                r = c.getresponse()
                r.read()
                c.close()
                ok, why = r.status == 200, f"status {r.status}"
            except Exception as e:  # noqa: BLE001 - every failure counts, whatever it is
                why = f"{type(e).__name__}: {e}"
            took = time.monotonic() - started
            with self.lock:
                sent, failed = self.counts.get(phase, (0, 0))
                self.counts[phase] = (sent + 1, failed + (0 if ok else 1))
                self.slowest[phase] = max(self.slowest.get(phase, 0.0), took)
                if not ok:
                    self.errors.append({"fault": phase, "error": why})
            self.stop_load.wait(max(0.0, gap - (time.monotonic() - started)))

    # --- helpers -------------------------------------------------------------------------
    def wait(self, cond, seconds, what, every=0.05):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(every)
        raise SystemExit(f"bench-faults: timed out after {seconds} s waiting for {what} (logs: {self.work})")

    def converge(self):
        """Seconds until the gateway serves `champion` (None past the limit)."""
        start = time.monotonic()
        while time.monotonic() - start < CONVERGE_LIMIT_S:
            try:
                champion = self.champion()
            except Exception:
                champion = None
            if champion is not None and self.served() == champion:
                return round(time.monotonic() - start, 2), champion
            time.sleep(0.1)
        return None, None

    def staging_dirs(self, version):
        models = os.path.join(self.state_dir, "models")
        try:
            entries = os.listdir(models)
        except FileNotFoundError:
            return []
        return [os.path.join(models, e) for e in entries if e.startswith(f".tmp-{version}-")]

    def staging_exists(self, version):
        return bool(self.staging_dirs(version))

    def staging_files(self, version):
        """Bundle files written so far into the version's staging dir."""
        return sum(len(files) for d in self.staging_dirs(version) for _, _, files in os.walk(d))

    def last_refusal(self, version):
        """The sync log's last reason for refusing `version` (its first 200 characters)."""
        with open(os.path.join(self.work, "sync.log"), errors="replace") as f:
            lines = [l for l in f if f"version {version} is refused" in l]
        if not lines:
            return None
        text = lines[-1]
        text = text[text.index(f"version {version} is refused"):].split(" seconds=")[0]
        return text[:200].strip()

    def bake_running(self):
        """A `wizer` (or the hung `sleep` standing in for it) is a child of registry-sync now."""
        out = subprocess.run(["pgrep", "-s", str(self.sync.pid), "-a"], capture_output=True, text=True).stdout
        return any(" wizer " in line or "sleep 3600" in line for line in out.splitlines())


def main():
    work = tempfile.mkdtemp(prefix="bench-faults.")
    b = Bench(work)
    faults = []
    lost = 0
    try:
        b.make_keys()
        b.split_fixture()
        b.write_wasmtime_wrapper()
        b.start_mlflow()
        v1 = b.register("good")
        b.promote(v1)
        b.start_sync()
        b.wait(lambda: b.served() == v1, 240, f"version {v1} to serve")
        clients = [threading.Thread(target=b.client, daemon=True) for _ in range(LOAD_CLIENTS)]
        for t in clients:
            t.start()

        def fault(name, run, promoted=None):
            """Runs one fault: `run()` injects it and returns once the fault is over (recovery),
            with a dict of what it saw; then the gateway must converge to `champion`."""
            nonlocal lost
            b.phase = name
            log(f"--- {name}")
            seen = run() or {}
            seconds, champion = b.converge()
            served = b.served()
            converged = seconds is not None
            if promoted is not None and served != promoted:
                lost += 1
            # Let the phase's requests finish under its name, then count them.
            time.sleep(0.5)
            with b.lock:
                sent, failed = b.counts.get(name, (0, 0))
                slowest = round(b.slowest.get(name, 0.0), 3)
            entry = {"fault": name, "requests": sent, "failed_requests": failed, "slowest_request_s": slowest,
                     "served_equals_champion": converged and served == champion, "served": served,
                     "champion": champion, "seconds_to_converge": seconds, **seen}
            faults.append(entry)
            log(json.dumps(entry))
            b.phase = f"after {name}"

        # 1. MLflow killed mid-download: frozen (SIGSTOP) the moment the sync's staging dir for
        #    the version appears, which it creates right before the first download request, then
        #    killed while that request is open; restarted = recovery.
        v2 = b.register("good")

        def mlflow_killed_mid_download():
            failed = 'stacktag_sync_total{outcome="download_failed"}'
            before = b.metric(failed) or 0
            b.promote(v2)
            # Polled tightly: the whole download takes a few tens of milliseconds here.
            b.wait(lambda: b.staging_exists(v2), 60, f"version {v2}'s download to start", every=0.0002)
            groups = b.mlflow_groups()
            b.signal_mlflow(signal.SIGSTOP, groups)
            time.sleep(0.5)  # the download's request is open against a frozen server
            on_disk = b.staging_files(v2)
            b.kill_mlflow(groups)
            b.wait(lambda: (b.metric(failed) or 0) > before or b.served() == v2, 120, "the sync to fail")
            download_failed = (b.metric(failed) or 0) > before
            time.sleep(3)  # a few polls with MLflow gone
            b.start_mlflow()
            return {"bundle_files_on_disk_at_kill": on_disk, "download_failed_seen": download_failed}
        fault("mlflow_killed_mid_download", mlflow_killed_mid_download, promoted=v2)

        # 2. registry-sync kill -9 mid-bake (a bake that would never end, so the kill lands in
        #    it for sure), then restarted while MLflow is down; MLflow back = recovery.
        v3 = b.register("good")

        def kill9_mid_bake_restart_mlflow_down():
            open(b.hang_marker, "w").close()
            b.promote(v3)
            b.wait(b.bake_running, 60, f"version {v3}'s bake to start")
            b.stop_sync(signal.SIGKILL)
            os.remove(b.hang_marker)
            b.kill_mlflow()
            b.start_sync()
            b.wait(lambda: b.served() is not None, 120, "the restarted registry-sync to serve `current`")
            served_during_outage = b.served()
            time.sleep(3)
            b.start_mlflow()
            return {"served_while_mlflow_down": served_during_outage}
        fault("kill9_mid_bake_then_restart_with_mlflow_down", kill9_mid_bake_restart_mlflow_down, promoted=v3)

        # 3. A hung bake: killed at --bake-timeout, the version is remembered as bad; the hang is
        #    fixed and the operator sends SIGHUP (try it again) = recovery.
        v4 = b.register("good")

        def hung_bake():
            open(b.hang_marker, "w").close()
            before = b.metric('stacktag_sync_total{outcome="bake_failed"}') or 0
            b.promote(v4)
            b.wait(b.bake_running, 60, f"version {v4}'s bake to start")
            b.wait(lambda: (b.metric('stacktag_sync_total{outcome="bake_failed"}') or 0) > before,
                   BAKE_TIMEOUT_S + 60, "the hung bake to time out")
            os.remove(b.hang_marker)
            b.stop_sync(signal.SIGHUP)
            return {"bake_timed_out": True}
        fault("hung_bake", hung_bake, promoted=v4)

        # 4-6. Versions the edge must refuse: the old one keeps serving; recovery is the operator
        #      rolling `champion` back (trainer rollback), or a good version promoted.
        def refused(name, version, outcome, fix):
            def run():
                line = f'stacktag_sync_total{{outcome="{outcome}"}}'
                before = b.metric(line) or 0
                serving = b.served()
                b.set_champion(version)
                b.wait(lambda: (b.metric(line) or 0) > before, 120, f"version {version} to be refused ({outcome})")
                time.sleep(POLL_S * 2)  # a few more polls: still refused, still the old model
                still = b.served()
                reason = b.last_refusal(version)
                fix()
                return {"refused_as": outcome, "reason": reason, "old_version_kept": still == serving}
            fault(name, run)

        v5 = b.register("good")
        onnx = os.path.join(b.artifact_dir(v5), "model.onnx")
        with open(onnx, "r+b") as f:  # one byte flipped at rest, in MLflow's own store
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 0xFF]))
        # The flipped byte is caught by the signature (it covers every file's digest) before
        # the manifest's own sha256 check would catch it. These versions reach `champion` by
        # hand (a mistake, or whoever can write the alias), not through the gate.
        refused("corrupt_artifact", v5, "signature_refused", lambda: b.set_champion(v4))
        v6 = b.register(None)
        refused("unsigned_model", v6, "signature_refused", lambda: b.set_champion(v4))
        v7 = b.register("wrong")
        v8 = b.register("good")
        # Recovery by a good promotion through the gate, which must then serve.
        refused("wrongly_signed_model", v7, "signature_refused", lambda: b.promote(v8))
        if b.served() != v8:
            lost += 1

        # 7-9. Webhooks an attacker sends: refused or harmless; nothing moves.
        def payload(version):
            return json.dumps({"entity": "model_version_alias", "action": "created",
                               "timestamp": int(time.time() * 1000),
                               "data": {"name": MODEL, "alias": "champion", "version": version}}).encode()

        def forged():
            status = b.webhook(str(uuid.uuid4()), int(time.time()), payload(v1), "x" * 44)
            return {"status": status, "refused": status == 401}
        fault("forged_webhook", forged)

        def replayed():
            did, ts, body = str(uuid.uuid4()), int(time.time()), payload(v1)
            first = b.webhook(did, ts, body, b.secret)
            again = b.webhook(did, ts, body, b.secret)
            return {"first_status": first, "replay_status": again, "replay_not_acted_on": again == 200 and first == 202}
        fault("replayed_webhook", replayed)

        def stale():
            status = b.webhook(str(uuid.uuid4()), int(time.time()) - 3600, payload(v1), b.secret)
            return {"status": status, "refused": status == 401}
        fault("stale_webhook", stale)

        # 10. A rotated secret, as docs/registry-sync.md says to rotate it: registry-sync restarted
        #     (SIGTERM, drained) with the new secret and the old one as the previous; the next
        #     promotion must arrive by webhook (MLflow signs with its cached copy for up to 60 s,
        #     so with either secret), never refused.
        v9 = b.register("good")

        def rotated_secret():
            b.stop_sync(signal.SIGTERM)
            b.previous_secret, b.secret = b.secret, base64.b64encode(os.urandom(32)).decode()
            b.start_sync()
            b.wait(lambda: b.metric("stacktag_webhook_registered") == 1, 60, "the webhook to be registered again")
            # A restarted process counts from zero.
            accepted = lambda: b.metric('stacktag_webhook_deliveries_total{result="accepted')  # both labels
            bad = lambda: b.metric('stacktag_webhook_deliveries_total{result="bad_signature"}') or 0
            ok_before = accepted() or 0
            b.promote(v9)
            b.wait(lambda: (accepted() or 0) > ok_before or bad() > 0, 30, "MLflow's delivery")
            return {"delivery_accepted": (accepted() or 0) > ok_before,
                    "with_previous_secret": b.metric('stacktag_webhook_deliveries_total{result="accepted_previous_secret"}') or 0,
                    "bad_signatures": bad()}
        fault("rotated_secret", rotated_secret, promoted=v9)

        # 11. A second `serve` on the same state dir: refused, naming the holder; nothing moves.
        def second_serve():
            path = os.path.join(b.work, "second-serve.log")
            with open(path, "wb") as out:
                code = b.start_sync(expect_exit=True, log_to=out).wait(timeout=60)
            with open(path, errors="replace") as f:
                said = [l.strip() for l in f if l.startswith("error:")]
            return {"second_exit_code": code, "refused": code != 0, "said": said[-1][:200] if said else None}
        fault("second_serve_same_state_dir", second_serve)

        # 12-13. A promotion, then a rollback, under the load.
        v10 = b.register("good")
        fault("promotion_under_load", lambda: b.promote(v10), promoted=v10)
        fault("rollback_under_load", b.rollback, promoted=v9)
    finally:
        b.stop_load.set()
        time.sleep(1)
        for p in (b.sync, b.mlflow):
            if p and p.poll() is None:
                if p is b.sync:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=90)
                    except subprocess.TimeoutExpired:
                        os.killpg(p.pid, signal.SIGKILL)
                else:
                    b.signal_mlflow(signal.SIGKILL)
    with b.lock:
        total = sum(s for s, _ in b.counts.values())
        failed = sum(f for _, f in b.counts.values())
    report = {
        "requests": total,
        "failed_requests": failed,
        "lost_promotions": lost,
        "all_converged_within_60_s": all(f["seconds_to_converge"] is not None and f["seconds_to_converge"] <= 60
                                         for f in faults),
        "load": {"clients": LOAD_CLIENTS, "max_rps_per_client": LOAD_RPS},
        "faults": faults,
        "failures": b.errors[:20],
    }
    # The logs stay only when something needs reading.
    if failed == 0 and lost == 0 and report["all_converged_within_60_s"]:
        shutil.rmtree(work, ignore_errors=True)
    else:
        report["work_dir"] = work
    print(json.dumps(report))


if __name__ == "__main__":
    main()
