#!/usr/bin/env python3
"""MLflow's own Python client (and databricks-sdk) against the Databricks stand-in: the oracle.

Each subcommand prints ONE JSON line on stdout saying what it did, and exits non-zero with a
clear message on stderr on any mismatch. Logs (MLflow's included) go to stderr.

Subcommands::

    oracle.py [--standin JSON|@FILE] [--auth pat|oauth] roundtrip --model main.stacktag.rt
    oracle.py [...] check --model NAME [--alias champion] [--version N] [--tag k=v ...]
                          [--run-artifact PATH] [--require-pyfunc]
    oracle.py [...] oauth-token [--client-secret S --expect-error invalid_client]
    oracle.py [...] faults --model NAME      (each fault once, through MLflow's client)
    oracle.py [...] protocol [--model NAME]  (the documented contract, raw HTTP and boto3)
    oracle.py [...] env                      (prints the client environment as export lines)

The environment the clients use
-------------------------------
With ``--standin`` (the stand-in's JSON line, or ``@file`` holding it) the oracle sets it up
itself; without, it must already be set::

    MLFLOW_TRACKING_URI=databricks          # tracking through the Databricks REST API
    MLFLOW_REGISTRY_URI=databricks-uc       # the Unity Catalog registry (not the workspace one)
    DATABRICKS_HOST=http://127.0.0.1:P      # "host" (plain http works: see below)
    DATABRICKS_TOKEN=<PAT>                  # "token"; or, for OAuth M2M instead:
    DATABRICKS_CLIENT_ID=... DATABRICKS_CLIENT_SECRET=...
    MLFLOW_S3_ENDPOINT_URL=http://127.0.0.1:S   # "s3_endpoint": boto3 for UC model files
    AWS_ENDPOINT_URL_S3=http://127.0.0.1:S      # the same for any other AWS SDK
    AWS_ACCESS_KEY_ID=standin-unused AWS_SECRET_ACCESS_KEY=standin-unused
    AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
    MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true   # no traffic off the machine
    NO_PROXY=127.0.0.1,localhost  (and HTTP(S)_PROXY unset)

The dummy AWS keys are never used for S3 (the S3 front refuses keys it did not issue): they
only stop boto3's credential chain from probing the EC2 metadata address. Do NOT set
``MLFLOW_ENABLE_UC_NATIVE_MODEL_REGISTRY`` (the /api/2.1 registry is not modelled).
``MLFLOW_DISABLE_DATABRICKS_SDK_FOR_RUN_ARTIFACTS`` may be true or unset: the stand-in answers
the SDK Files API with 501, and MLflow falls back to the credential endpoints either way (for
logged-model artifacts there is no such switch: the fallback always happens).

What MLflow and databricks-sdk need to accept ``http://127.0.0.1:P``: nothing special.
databricks-sdk keeps an explicit scheme (``_fix_host_if_needed`` only adds https:// when
there is none) and MLflow sends every Databricks REST call through the SDK's ApiClient. The
SDK does fetch ``GET /.well-known/databricks-config`` on every Config (the stand-in answers it,
or the SDK warns and, for OAuth, cannot find its token endpoint).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("oracle")


class Mismatch(Exception):
    """What the oracle saw differs from what it expected."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Mismatch(message)


# --- environment ---------------------------------------------------------------------------


def load_standin(value: str | None) -> dict | None:
    if not value:
        return None
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    return json.loads(text.strip().splitlines()[0])


def client_env(info: dict, auth: str) -> dict:
    env = {
        "MLFLOW_TRACKING_URI": "databricks",
        "MLFLOW_REGISTRY_URI": "databricks-uc",
        "DATABRICKS_HOST": info["host"],
        "MLFLOW_S3_ENDPOINT_URL": info["s3_endpoint"],
        "AWS_ENDPOINT_URL_S3": info["s3_endpoint"],
        "AWS_ACCESS_KEY_ID": "standin-unused",
        "AWS_SECRET_ACCESS_KEY": "standin-unused",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    if auth == "oauth":
        env.update(DATABRICKS_CLIENT_ID=info["client_id"], DATABRICKS_CLIENT_SECRET=info["client_secret"])
    else:
        env["DATABRICKS_TOKEN"] = info["token"]
    return env


def apply_env(info: dict | None, auth: str) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        os.environ.pop(var, None)
    if info is None:
        for var in ("MLFLOW_TRACKING_URI", "DATABRICKS_HOST", "MLFLOW_S3_ENDPOINT_URL"):
            expect(bool(os.environ.get(var)), f"{var} is not set and no --standin was given")
        return
    for var in ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_CONFIG_PROFILE"):
        os.environ.pop(var, None)
    os.environ.update(client_env(info, auth))


def host() -> str:
    return os.environ["DATABRICKS_HOST"].rstrip("/")


def control(method: str, path: str, body: dict | None = None) -> dict:
    """The stand-in's /__standin/ endpoints (no auth)."""
    import requests

    response = requests.request(method, host() + path, json=body, timeout=30)
    expect(response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}")
    return response.json()


def last_seq() -> int:
    records = control("GET", "/__standin/requests")["requests"]
    return records[-1]["seq"] if records else 0


def requests_since(seq: int) -> list[dict]:
    return control("GET", f"/__standin/requests?since={seq}")["requests"]


_ID = re.compile(r"/(m-[0-9a-f]{32}|[0-9a-f]{32})(?=/|$)")


def endpoint_counts(records: list[dict]) -> dict:
    """How often each endpoint was called (ids in paths replaced by {id}), per front."""
    counts = collections.Counter()
    for r in records:
        if r["server"] == "api":
            counts[f"{r['method']} {_ID.sub('/{id}', r['path'])} -> {r.get('status')}"] += 1
        else:
            counts[f"S3 {r['method']} ({r.get('credential', '-')}) -> {r.get('status')}"] += 1
    return dict(sorted(counts.items()))


# --- the model -----------------------------------------------------------------------------


def tiny_onnx():
    """Softmax(X · W): float X [None, 4] -> [None, 2], made with onnx.helper."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.array([[0.5, -0.5], [1.0, 0.25], [-0.75, 0.5], [0.1, 0.9]], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "stacktag_oracle",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by the installed onnxruntime
    onnx.checker.check_model(model)
    return model, weights


def softmax_reference(x, weights):
    import numpy as np

    logits = x @ weights
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def onnx_io(model) -> tuple[list, list]:
    import onnx

    initializers = {i.name for i in model.graph.initializer}

    def describe(values):
        out = []
        for v in values:
            if v.name in initializers:
                continue
            t = v.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
            out.append({"name": v.name, "type": onnx.TensorProto.DataType.Name(t.elem_type), "shape": dims})
        return out

    return describe(model.graph.input), describe(model.graph.output)


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- subcommands ---------------------------------------------------------------------------


def cmd_roundtrip(args) -> dict:
    import mlflow
    import numpy as np
    import onnxruntime as ort
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    seq = last_seq()
    client = MlflowClient()
    experiment = mlflow.set_experiment(args.experiment)
    model, weights = tiny_onnx()
    x = np.random.default_rng(7).random((3, 4), dtype=np.float32)
    y = softmax_reference(x, weights)
    payload = os.urandom(4096) + b"stacktag oracle artifact\n"
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp, "eval.bin")
        report.write_bytes(payload)
        with mlflow.start_run() as run:
            mlflow.log_params({"learning_rate": "0.1", "epochs": "3"})
            mlflow.log_metric("accuracy", 0.93, step=1)
            mlflow.log_metrics({"f1": 0.91, "loss": 0.2}, step=1)
            mlflow.set_tag("stacktag.oracle", "roundtrip")
            mlflow.log_artifact(str(report), artifact_path="reports")
            # Path 1: log_model registers a logged model (source models:/<model id>).
            info = mlflow.onnx.log_model(
                model, name="model", signature=infer_signature(x, y), registered_model_name=args.model
            )
            # Path 2: a saved model as plain run artifacts, registered from runs:/ below
            # (source: the run's dbfs:/databricks/mlflow-tracking/... URI).
            saved = Path(tmp, "onnx-model")
            mlflow.onnx.save_model(model, str(saved), signature=infer_signature(x, y))
            mlflow.log_artifacts(str(saved), artifact_path="onnx-model")
        version = str(info.registered_model_version)
        expect(bool(info.registered_model_version), "log_model registered no version")
        from_run = mlflow.register_model(f"runs:/{run.info.run_id}/onnx-model", args.model)
        expect(from_run.status == "READY", f"runs:/ registration is {from_run.status}")
        expect(
            from_run.source == f"{run.info.artifact_uri}/onnx-model", f"runs:/ registration source {from_run.source}"
        )
        run_model = mlflow.onnx.load_model(f"models:/{args.model}/{from_run.version}")
        run_session = ort.InferenceSession(run_model.SerializeToString(), providers=["CPUExecutionProvider"])
        expect(
            float(np.max(np.abs(run_session.run(None, {"input": x})[0] - y))) < 1e-5,
            "the runs:/-registered model computes something else",
        )
        client.set_model_version_tag(args.model, version, "stacktag.oracle", "roundtrip")
        client.set_registered_model_tag(args.model, "stacktag.project", "stacktag")
        client.set_registered_model_alias(args.model, "champion", version)
        mv = client.get_model_version_by_alias(args.model, "champion")
        expect(mv.version == version, f"alias champion points to {mv.version}, expected {version}")
        expect(mv.status == "READY", f"version {version} is {mv.status}, expected READY")
        expect(mv.tags.get("stacktag.oracle") == "roundtrip", f"version tags are {mv.tags}")
        rm = client.get_registered_model(args.model)
        expect(rm.aliases.get("champion") == version, f"registered model aliases are {rm.aliases}")

        loaded = mlflow.onnx.load_model(f"models:/{args.model}@champion")
        session = ort.InferenceSession(loaded.SerializeToString(), providers=["CPUExecutionProvider"])
        out = session.run(None, {"input": x})[0]
        diff = float(np.max(np.abs(out - y)))
        expect(diff < 1e-5, f"the loaded model computes something else (max diff {diff})")

        back = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="reports/eval.bin", dst_path=str(Path(tmp, "back"))
        )
        expect(Path(back).read_bytes() == payload, "the downloaded run artifact differs from the uploaded one")
        listed = [f.path for f in client.list_artifacts(run.info.run_id, "reports")]
        expect(listed == ["reports/eval.bin"], f"list_artifacts(reports) = {listed}")
        listed = sorted(f.path for f in client.list_artifacts(run.info.run_id, "onnx-model"))
        expect("onnx-model/MLmodel" in listed and len(listed) >= 5, f"list_artifacts(onnx-model) = {listed}")

    records = requests_since(seq)
    return {
        "experiment_id": experiment.experiment_id,
        "experiment": args.experiment,
        "run_id": run.info.run_id,
        "artifact_uri": run.info.artifact_uri,
        "model_id": info.model_id,
        "model": args.model,
        "version": version,
        "status": mv.status,
        "source": mv.source,
        "run_registered_version": from_run.version,
        "run_registered_source": from_run.source,
        "alias": "champion",
        "onnx_max_abs_diff": diff,
        "run_artifact": {
            "path": "reports/eval.bin",
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        },
        "endpoints": endpoint_counts(records),
    }


def cmd_artifacts(args) -> dict:
    """Every artifact of a run (or under --path), downloaded with MLflow's client: path -> sha256.
    The way a Stacktag upload is read back by MLflow, whichever cloud the signed URLs are for."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(run_id=args.run_id, artifact_path=args.path or None, dst_path=tmp)
        )
        base = Path(tmp)
        files = {
            str(f.relative_to(base)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(local.rglob("*") if local.is_dir() else [local])
            if f.is_file()
        }
    return {"run_id": args.run_id, "files": files}


def cmd_check(args) -> dict:
    import mlflow
    from mlflow import MlflowClient
    import pandas as pd
    from mlflow.models import Model

    client = MlflowClient()
    mv = client.get_model_version_by_alias(args.model, args.alias)
    if args.version is not None:
        expect(
            mv.version == str(args.version),
            f"alias {args.alias} points to version {mv.version}, expected {args.version}",
        )
    expect(mv.status == "READY", f"version {mv.version} is {mv.status}, expected READY")
    for pair in args.tag:
        key, _, value = pair.partition("=")
        expect(mv.tags.get(key) == value, f"tag {key}={mv.tags.get(key)!r}, expected {value!r} (tags {mv.tags})")
    uri = f"models:/{args.model}@{args.alias}"
    mlmodel = Model.load(uri)  # MLmodel alone: flavors and signature
    expect("onnx" in mlmodel.flavors, f"MLmodel has no onnx flavor (flavors: {sorted(mlmodel.flavors)})")
    model = mlflow.onnx.load_model(uri)
    inputs, outputs = onnx_io(model)
    result = {
        "model": args.model,
        "alias": args.alias,
        "version": mv.version,
        "status": mv.status,
        "run_id": mv.run_id,
        "source": mv.source,
        "aliases": mv.aliases,
        "tags": mv.tags,
        "flavors": sorted(mlmodel.flavors),
        "signature": mlmodel.signature.to_dict() if mlmodel.signature else None,
        "onnx_inputs": inputs,
        "onnx_outputs": outputs,
    }
    # pyfunc needs a python_function flavor another client may not write: reported, and
    # fatal only with --require-pyfunc.
    try:
        loaded = mlflow.pyfunc.load_model(uri)
        result["pyfunc"] = {"ok": True}
        # A flavor that takes text (Stacktag's) answers a question; another is only loaded.
        inputs = loaded.metadata.get_input_schema()
        if inputs is not None and inputs.input_names() == ["text"]:
            answer = loaded.predict(pd.DataFrame({"text": ["how do I read a file line by line in python?"]}))
            result["pyfunc"]["labels"] = [str(label) for label in answer["label"]]
    except Exception as err:  # noqa: BLE001
        expect(not args.require_pyfunc, f"mlflow.pyfunc.load_model failed: {err}")
        result["pyfunc"] = {"ok": False, "error": f"{type(err).__name__}: {str(err)[:300]}"}
    result["onnx_runs"] = _try_run(model, inputs)
    if args.run_artifact:
        expect(bool(mv.run_id), f"version {mv.version} has no run_id, so no run artifact to fetch")
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=args.run_artifact, dst_path=tmp)
            files = [path] if Path(path).is_file() else sorted(str(p) for p in Path(path).rglob("*") if p.is_file())
            result["run_artifact"] = {
                "path": args.run_artifact,
                "files": {os.path.relpath(f, tmp): {"size": os.path.getsize(f), "sha256": sha256(f)} for f in files},
            }
    return result


def _try_run(model, inputs) -> dict:
    """Feeds zeros of the declared shapes (dynamic dims = 1). Reported, never fatal: another
    client's model may take inputs zeros do not suit."""
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper

        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        feed = {}
        for spec in inputs:
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec["shape"]]
            dtype = helper.tensor_dtype_to_np_dtype(TensorProto.DataType.Value(spec["type"]))
            feed[spec["name"]] = np.zeros(shape, dtype=dtype) if dtype.kind != "O" else np.full(shape, "", dtype=object)
        outs = session.run(None, feed)
        return {"ok": True, "output_shapes": [list(o.shape) for o in outs]}
    except Exception as err:  # noqa: BLE001
        return {"ok": False, "error": str(err)[:300]}


def sdk_config(client_secret: str | None = None):
    from databricks.sdk.core import Config

    return Config(
        host=host(),
        client_id=os.environ.get("STANDIN_CLIENT_ID") or os.environ.get("DATABRICKS_CLIENT_ID"),
        client_secret=client_secret
        or os.environ.get("STANDIN_CLIENT_SECRET")
        or os.environ.get("DATABRICKS_CLIENT_SECRET"),
        auth_type="oauth-m2m",
        http_timeout_seconds=10,
        retry_timeout_seconds=15,
    )


def cmd_oauth_token(args) -> dict:
    from databricks.sdk.core import ApiClient
    from databricks.sdk.errors import NotFound

    # databricks-sdk alone: the PAT must not be what authenticates.
    os.environ.pop("DATABRICKS_TOKEN", None)
    seq = last_seq()
    try:
        api = ApiClient(sdk_config(args.client_secret))
        try:
            api.do("GET", "/api/2.0/mlflow/experiments/get-by-name", query={"experiment_name": args.experiment})
            call = "200"
        except NotFound:
            call = "404 (authenticated; no such experiment)"
    except Exception as err:  # noqa: BLE001
        if args.expect_error and args.expect_error in str(err):
            records = requests_since(seq)
            return {
                "expected_error": args.expect_error,
                "error": str(err)[:300],
                "token_requests": [r for r in records if r["path"] == "/oidc/v1/token"],
            }
        raise
    expect(not args.expect_error, f"expected an error containing {args.expect_error!r}, the call succeeded")
    records = requests_since(seq)
    tokens = [r for r in records if r["path"] == "/oidc/v1/token"]
    expect(len(tokens) >= 1, "databricks-sdk made no token request")
    expect(all(r["status"] == 200 for r in tokens), f"token requests failed: {tokens}")
    calls = [r for r in records if r["path"].startswith("/api/")]
    expect(
        calls and calls[-1]["headers"].get("authorization", "").startswith("Bearer <oauth-token"),
        f"the API call was not authenticated with an OAuth token: {calls}",
    )
    return {
        "call": call,
        "sequence": [f"{r['method']} {r['path']} -> {r['status']}" for r in records],
        "token_requests": tokens,
        "api_call_authorization": calls[-1]["headers"].get("authorization"),
    }


def _error_code(err: Exception) -> str:
    return getattr(err, "error_code", "") or ""


def cmd_faults(args) -> dict:
    import mlflow
    import requests
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    results = {}
    champion = client.get_model_version_by_alias(args.model, "champion")
    expect(champion.status == "READY", "faults needs a READY champion (run roundtrip first)")
    uri = f"models:/{args.model}@champion"

    def reset():
        control(
            "POST",
            "/__standin/faults",
            {
                "alias_forbidden": False,
                "stuck_pending": False,
                "expire_credentials_after": None,
                "always_expired": False,
                "token_ttl": 3600,
            },
        )

    # Auth: no credential, a wrong one, the PAT.
    url = host() + "/api/2.0/mlflow/experiments/get-by-name"
    params = {"experiment_name": args.experiment}
    none = requests.get(url, params=params, timeout=10)
    wrong = requests.get(url, params=params, headers={"Authorization": "Bearer dapi-wrong"}, timeout=10)
    expect(none.status_code == 401 and none.json()["error_code"] == "UNAUTHENTICATED", f"no token: {none.text}")
    expect(wrong.status_code == 401 and wrong.json()["error_code"] == "UNAUTHENTICATED", f"wrong token: {wrong.text}")
    results["unauthenticated"] = {"no_token": none.json(), "wrong_token": wrong.json()}

    try:
        # alias_forbidden: set/delete alias raise PERMISSION_DENIED, the alias stays.
        control("POST", "/__standin/faults", {"alias_forbidden": True})
        for action, call in (
            ("set", lambda: client.set_registered_model_alias(args.model, "champion", champion.version)),
            ("delete", lambda: client.delete_registered_model_alias(args.model, "champion")),
        ):
            try:
                call()
                raise Mismatch(f"alias_forbidden: {action} alias succeeded")
            except MlflowException as err:
                expect(_error_code(err) == "PERMISSION_DENIED", f"alias_forbidden {action}: {err}")
        after = client.get_model_version_by_alias(args.model, "champion")
        expect(after.version == champion.version, "alias_forbidden: the alias moved")
        results["alias_forbidden"] = {"set_and_delete": "PERMISSION_DENIED", "champion_still": after.version}
        reset()

        # stuck_pending: a registration stays PENDING_REGISTRATION and cannot be promoted.
        control("POST", "/__standin/faults", {"stuck_pending": True})
        expect(bool(champion.model_id), "the champion has no model_id to register again")
        pending = mlflow.register_model(f"models:/{champion.model_id}", args.model)
        expect(pending.status == "PENDING_REGISTRATION", f"stuck_pending: status {pending.status}")
        try:
            client.set_registered_model_alias(args.model, "champion", pending.version)
            raise Mismatch("stuck_pending: a PENDING version took the champion alias")
        except MlflowException as err:
            expect(_error_code(err) == "INVALID_PARAMETER_VALUE", f"stuck_pending alias: {err}")
        results["stuck_pending"] = {
            "version": pending.version,
            "status": pending.status,
            "alias_refused": "INVALID_PARAMETER_VALUE",
        }
        reset()

        # always_expired: loading the model and fetching a run artifact fail with ExpiredToken.
        control("POST", "/__standin/faults", {"always_expired": True})
        failures = {}
        for what, call in (
            ("load_model", lambda: mlflow.onnx.load_model(uri)),
            (
                "run_artifact",
                lambda: mlflow.artifacts.download_artifacts(
                    run_id=champion.run_id, artifact_path=args.run_artifact, dst_path=tempfile.mkdtemp()
                ),
            ),
        ):
            seq = last_seq()
            try:
                call()
                raise Mismatch(f"always_expired: {what} succeeded")
            except Mismatch:
                raise
            except Exception as err:  # noqa: BLE001 - boto3's ClientError, MlflowException...
                # A HEAD error has no body (as in S3), so MLflow's message may only say "400":
                # the stand-in's log says what was refused.
                refused = [r for r in requests_since(seq) if r["server"] == "s3" and r.get("status", 200) >= 400]
                expect(
                    bool(refused) and all(r.get("error_code") == "ExpiredToken" for r in refused),
                    f"always_expired {what}: {err} (S3 refusals: {refused})",
                )
                failures[what] = {
                    "error": f"{type(err).__name__}: {str(err)[:160]}",
                    "s3_refusals": [f"{r['method']} {r['status']} {r['error_code']}" for r in refused],
                }
        results["always_expired"] = failures
        reset()

        # expire_credentials_after: a registration still completes, because MLflow's S3 upload
        # (OptimizedS3ArtifactRepository._upload_file) retries each file once with fresh
        # temporary credentials. (Its read path cannot show this fault: it lists before every
        # file download and listings are not retried, so a used-up credential fails a load.)
        seq = last_seq()
        control("POST", "/__standin/faults", {"expire_credentials_after": args.expire_after})
        registered = mlflow.register_model(f"models:/{champion.model_id}", args.model)
        expect(registered.status == "READY", f"expire_credentials_after: registration is {registered.status}")
        records = requests_since(seq)
        expired = [r for r in records if r["server"] == "s3" and r.get("error_code") == "ExpiredToken"]
        creds = [r for r in records if r["path"].endswith("/generate-temporary-credentials")]
        expect(len(expired) >= 1, "expire_credentials_after: no request hit a used-up credential")
        expect(len(creds) >= 2, "expire_credentials_after: MLflow did not fetch new credentials")
        results["expire_credentials_after"] = {
            "n": args.expire_after,
            "registered_version": registered.version,
            "status": registered.status,
            "expired_token_answers": len(expired),
            "temporary_credentials_issued": len(creds),
        }
        reset()

        # token_ttl: databricks-sdk refreshes its OAuth token; an old token is refused.
        control("POST", "/__standin/faults", {"token_ttl": 2})
        from databricks.sdk.core import ApiClient

        seq = last_seq()
        api = ApiClient(sdk_config())
        api.do("GET", "/api/2.0/mlflow/experiments/get-by-name", query=params)
        time.sleep(2.5)
        api.do("GET", "/api/2.0/mlflow/experiments/get-by-name", query=params)
        token_calls = [r for r in requests_since(seq) if r["path"] == "/oidc/v1/token"]
        expect(len(token_calls) >= 2, f"token_ttl: databricks-sdk asked for {len(token_calls)} token(s)")
        old = requests.post(
            host() + "/oidc/v1/token",
            data={"grant_type": "client_credentials", "scope": "all-apis"},
            auth=(os.environ["STANDIN_CLIENT_ID"], os.environ["STANDIN_CLIENT_SECRET"]),
            timeout=10,
        )
        token = old.json()["access_token"]
        time.sleep(2.2)
        stale = requests.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        expect(stale.status_code == 401, f"token_ttl: an expired token was accepted ({stale.status_code})")
        results["token_ttl"] = {"sdk_token_requests": len(token_calls), "expired_token": stale.json()}
    finally:
        reset()
    return results


def cmd_protocol(args) -> dict:
    """The documented contract (docs/databricks-standin.md) at the HTTP level, for what MLflow's client never
    does: its error answers, the S3 front's refusals, paging. Raw requests and boto3."""
    import boto3
    import requests
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import ClientError

    base = host() + "/api/2.0/mlflow/unity-catalog"
    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {os.environ['DATABRICKS_TOKEN']}"
    checks = {}

    def call(method, path, body=None, params=None, status=200, code=None, contains=None):
        response = session.request(
            method, path if path.startswith("http") else base + path, json=body, params=params, timeout=30
        )
        text = response.text
        expect(response.status_code == status, f"{method} {path}: {response.status_code} {text} (wanted {status})")
        data = response.json() if text else {}
        if code:
            expect(
                data.get("error_code") == code, f"{method} {path}: error_code {data.get('error_code')}, wanted {code}"
            )
        if contains:
            expect(
                contains in data.get("message", ""),
                f"{method} {path}: message {data.get('message')!r} lacks {contains!r}",
            )
        return data

    name = args.model
    call(
        "POST",
        "/registered-models/create",
        {"name": name.rsplit(".", 1)[1]},
        status=400,
        code="INVALID_PARAMETER_VALUE",
        contains="three levels",
    )
    call(
        "POST",
        "/registered-models/create",
        {"name": name, "colour": "red"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
        contains="colour",
    )
    model = call("POST", "/registered-models/create", {"name": name})["registered_model"]
    expect(model["name"] == name.lower(), f"created {model}")
    call("POST", "/registered-models/create", {"name": name}, status=400, code="RESOURCE_ALREADY_EXISTS")
    checks["names"] = "two-level and unknown fields refused, duplicates RESOURCE_ALREADY_EXISTS"

    created = call("POST", "/model-versions/create", {"name": name, "source": "models:/m-0123"})["model_version"]
    expect(created["version"] == "1" and created["status"] == "PENDING_REGISTRATION", f"created {created}")
    expect(
        re.fullmatch(r"s3://[^/]+/models/[0-9a-f]{32}/versions/[0-9a-f]{32}", created["storage_location"]) is not None,
        f"storage_location {created['storage_location']}",
    )
    call(
        "GET", "/model-versions/get", params={"name": name, "version": "x"}, status=400, code="INVALID_PARAMETER_VALUE"
    )
    call(
        "POST",
        "/model-versions/finalize",
        {"name": name, "version": 1},
        status=400,
        code="INVALID_PARAMETER_VALUE",
        contains="version",
    )
    call(
        "POST",
        "/model-versions/finalize",
        {"name": name, "version": "1"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
        contains="MLmodel",
    )
    rw = call(
        "POST",
        "/model-versions/generate-temporary-credentials",
        {"name": name, "version": "1", "operation": "MODEL_VERSION_OPERATION_READ_WRITE"},
    )["credentials"]
    expect(rw["storage_mode"] == "CUSTOMER_HOSTED" and isinstance(rw["expiration_time"], int), f"credentials {rw}")
    aws = rw["aws_temp_credentials"]
    bucket, prefix = created["storage_location"][len("s3://") :].split("/", 1)

    def s3(creds):
        return boto3.client(
            "s3",
            endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id=creds["access_key_id"],
            aws_secret_access_key=creds["secret_access_key"],
            aws_session_token=creds.get("session_token"),
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def s3_error(call_it) -> str:
        try:
            call_it()
        except ClientError as err:
            return err.response["Error"]["Code"]
        raise Mismatch("an S3 request the front should refuse succeeded")

    writer = s3(aws)
    expect(
        s3_error(lambda: writer.put_object(Bucket=bucket, Key="models/elsewhere/MLmodel", Body=b"x")) == "AccessDenied",
        "a write outside the storage location was allowed",
    )
    writer.put_object(Bucket=bucket, Key=f"{prefix}/MLmodel", Body=b"flavors: {}\n")
    dummy = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "x" * 40}
    expect(
        s3_error(lambda: s3(dummy).get_object(Bucket=bucket, Key=f"{prefix}/MLmodel")) == "InvalidAccessKeyId",
        "a key the stand-in never issued was accepted",
    )
    forged = dict(aws, secret_access_key="y" * 40)
    expect(
        s3_error(lambda: s3(forged).get_object(Bucket=bucket, Key=f"{prefix}/MLmodel")) == "SignatureDoesNotMatch",
        "a request signed with the wrong secret was accepted",
    )
    ready = call("POST", "/model-versions/finalize", {"name": name, "version": "1"})["model_version"]
    expect(ready["status"] == "READY", f"finalized {ready}")
    call(
        "POST",
        "/model-versions/generate-temporary-credentials",
        {"name": name, "version": "1", "operation": "MODEL_VERSION_OPERATION_READ_WRITE"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
        contains="PENDING_REGISTRATION",
    )
    ro = call(
        "POST",
        "/model-versions/generate-temporary-credentials",
        {"name": name, "version": "1", "operation": "MODEL_VERSION_OPERATION_READ"},
    )["credentials"]
    reader = s3(ro["aws_temp_credentials"])
    expect(reader.get_object(Bucket=bucket, Key=f"{prefix}/MLmodel")["Body"].read() == b"flavors: {}\n", "read back")
    expect(
        s3_error(lambda: reader.put_object(Bucket=bucket, Key=f"{prefix}/x", Body=b"x")) == "AccessDenied",
        "READ credentials could write",
    )
    checks["uc_files"] = "finalize needs MLmodel; scope, READ vs READ_WRITE, unknown keys and bad signatures refused"

    call("POST", "/model-versions/create", {"name": name, "source": "models:/m-0123"})
    page1 = call("GET", "/model-versions/search", params={"filter": f"name='{name}'", "max_results": "1"})
    expect([v["version"] for v in page1["model_versions"]] == ["2"] and page1.get("next_page_token"), f"page 1 {page1}")
    page2 = call(
        "GET",
        "/model-versions/search",
        params={"filter": f"name='{name}'", "max_results": "1", "page_token": page1["next_page_token"]},
    )
    expect(
        [v["version"] for v in page2["model_versions"]] == ["1"] and not page2.get("next_page_token"), f"page 2 {page2}"
    )
    call(
        "POST",
        "/registered-models/alias",
        {"name": name, "alias": "champion", "version": "2"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
        contains="PENDING_REGISTRATION",
    )
    call("POST", "/registered-models/alias", {"name": name, "alias": "champion", "version": "1"})
    got = call("GET", "/registered-models/get", params={"name": name})["registered_model"]
    expect(got["aliases"] == [{"alias": "champion", "version": "1"}], f"aliases {got}")
    by_alias = call("GET", "/registered-models/alias", params={"name": name, "alias": "champion"})["model_version"]
    expect(by_alias["aliases"] == [{"alias": "champion", "version": "1"}], f"by alias {by_alias}")
    checks["registry"] = "search pages newest first; aliases only on READY versions"

    # Run artifacts through raw presigned URLs: the signed header must come along.
    import mlflow

    exp = mlflow.set_experiment(args.experiment)
    run = mlflow.MlflowClient().create_run(exp.experiment_id)
    run_id = run.info.run_id
    creds = call(
        "POST",
        host() + "/api/2.0/mlflow/artifacts/credentials-for-write",
        {"run_id": run_id, "path": ["a.txt", "d/b.txt"]},
    )["credential_infos"]
    expect(
        [c["path"] for c in creds] == ["a.txt", "d/b.txt"] and all(c["type"] == "AWS_PRESIGNED_URL" for c in creds),
        f"credential_infos {creds}",
    )
    put = requests.put(creds[0]["signed_uri"], data=b"no header", timeout=10)
    expect(
        put.status_code == 403 and "SignatureDoesNotMatch" in put.text,
        f"PUT without the signed header: {put.status_code}",
    )
    for c in creds:
        sent = requests.put(
            c["signed_uri"],
            data=c["path"].encode(),
            headers={h["name"]: h["value"] for h in c.get("headers", [])},
            timeout=10,
        )
        expect(sent.status_code == 200, f"PUT with the signed headers: {sent.status_code} {sent.text}")
    listing = call("GET", host() + "/api/2.0/mlflow/artifacts/list", params={"run_id": run_id})
    expect(
        listing["root_uri"] == run.info.artifact_uri
        and listing["files"] == [{"path": "a.txt", "is_dir": False, "file_size": 5}, {"path": "d", "is_dir": True}],
        f"root listing {listing}",
    )
    as_file = call("GET", host() + "/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "d/b.txt"})
    expect(as_file["files"] == [{"path": "d/b.txt", "is_dir": False, "file_size": 7}], f"file listing {as_file}")
    read = call(
        "POST", host() + "/api/2.0/mlflow/artifacts/credentials-for-read", {"run_id": run_id, "path": ["d/b.txt"]}
    )["credential_infos"][0]
    expect(requests.get(read["signed_uri"], timeout=10).content == b"d/b.txt", "GET through the read URL")
    expect(requests.put(read["signed_uri"], data=b"x", timeout=10).status_code == 403, "a read URL could PUT")
    checks["run_artifacts"] = "signed headers enforced, listing and 'path is a file' as documented"

    call(
        "POST",
        host() + "/api/2.0/mlflow/experiments/create",
        {"name": "no-slash"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
        contains="absolute path",
    )
    call(
        "POST",
        host() + "/api/2.0/mlflow/registered-models/alias",
        {"name": "m", "alias": "a", "version": "1"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
        contains="Workspace Model Registry",
    )
    call("GET", host() + "/api/2.0/fs/directories/Volumes/x", status=501, code="NOT_IMPLEMENTED")
    call("GET", host() + "/api/2.0/clusters/list", status=404, code="ENDPOINT_NOT_FOUND")
    token = requests.post(
        host() + "/oidc/v1/token",
        timeout=10,
        data={
            "grant_type": "client_credentials",
            "scope": "all-apis",
            "client_id": os.environ["STANDIN_CLIENT_ID"],
            "client_secret": os.environ["STANDIN_CLIENT_SECRET"],
        },
    )
    expect(token.status_code == 200 and token.json()["token_type"] == "Bearer", f"client_secret_post: {token.text}")
    bad_grant = requests.post(
        host() + "/oidc/v1/token",
        timeout=10,
        data={"grant_type": "password"},
        auth=(os.environ["STANDIN_CLIENT_ID"], os.environ["STANDIN_CLIENT_SECRET"]),
    )
    expect(bad_grant.status_code == 400 and bad_grant.json()["error"] == "unsupported_grant_type", bad_grant.text)
    checks["misc"] = "experiment names, workspace aliases, Files API, unknown endpoints, OAuth form auth"
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description="MLflow's client against the Databricks stand-in")
    parser.add_argument("--standin", help="the stand-in's JSON line, or @FILE holding it")
    parser.add_argument("--auth", choices=("pat", "oauth"), default="pat", help="how MLflow authenticates")
    parser.add_argument("--experiment", default="/Shared/stacktag-oracle")
    parser.add_argument("--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("roundtrip")
    p.add_argument("--model", required=True)
    p = sub.add_parser("check")
    p.add_argument("--model", required=True)
    p.add_argument("--alias", default="champion")
    p.add_argument("--version", type=int)
    p.add_argument("--tag", action="append", default=[], metavar="K=V")
    p.add_argument("--run-artifact")
    p.add_argument("--require-pyfunc", action="store_true", help="fail when mlflow.pyfunc cannot load it")
    p = sub.add_parser("artifacts")
    p.add_argument("--run-id", required=True)
    p.add_argument("--path", default="", help="a directory or file under the run's artifact root")
    p = sub.add_parser("oauth-token")
    p.add_argument("--client-secret", help="use this secret instead (with --expect-error)")
    p.add_argument("--expect-error", help="succeed only if authentication fails with this text")
    p = sub.add_parser("faults")
    p.add_argument("--model", required=True)
    p.add_argument("--run-artifact", default="reports/eval.bin")
    p.add_argument("--expire-after", type=int, default=1)
    p = sub.add_parser("protocol")
    p.add_argument("--model", default="main.stacktag.protocol")
    sub.add_parser("env")
    args = parser.parse_args()

    # stdout carries exactly one JSON line: MLflow prints run links there ("View run ..."),
    # so fd 1 goes to stderr and the line is written to a copy of the original stdout.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="oracle %(levelname)s %(name)s: %(message)s",
    )
    info = load_standin(args.standin)
    if args.command == "env":
        expect(info is not None, "env needs --standin")
        for key, value in client_env(info, args.auth).items():
            out.write(f"export {key}={value}\n")
        out.flush()
        return 0
    try:
        apply_env(info, args.auth)
        # For the SDK-only parts (oauth-token, token_ttl): the service principal, whatever --auth is.
        if info:
            os.environ["STANDIN_CLIENT_ID"] = info["client_id"]
            os.environ["STANDIN_CLIENT_SECRET"] = info["client_secret"]
        # Fail fast instead of MLflow's default minutes of retries when something is wrong.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_DATABRICKS_ENDPOINT_HTTP_RETRY_TIMEOUT", "30")
        command = {
            "roundtrip": cmd_roundtrip,
            "check": cmd_check,
            "artifacts": cmd_artifacts,
            "oauth-token": cmd_oauth_token,
            "faults": cmd_faults,
            "protocol": cmd_protocol,
        }[args.command]
        result = command(args)
    except Mismatch as err:
        print(f"oracle {args.command}: MISMATCH: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - any failure of the client is a failed check
        log.debug("failure", exc_info=True)
        print(f"oracle {args.command}: FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    out.write(json.dumps({"command": args.command, **result}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
