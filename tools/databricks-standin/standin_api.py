"""The Databricks API front of the stand-in (one port: ``host`` in the stand-in's JSON line).

What answers what, and what it was modelled on:

- Auth (every ``/api/`` request): ``Authorization: Bearer <PAT or an unexpired OAuth token the
  stand-in issued>``, else 401 ``{"error_code": "UNAUTHENTICATED", "message": ...}``, a body
  databricks-sdk's ``_StandardErrorDeserializer`` parses into ``Unauthenticated``.
- Host metadata and OAuth M2M, as databricks-sdk 0.162 does it (``config.py``
  ``_resolve_host_metadata``, ``oauth.py`` ``get_host_metadata``/``get_endpoints_from_url``/
  ``ClientCredentials``/``retrieve_token``, ``credentials_provider.py``
  ``oauth_service_principal``): ``GET /.well-known/databricks-config`` (every SDK ``Config``
  fetches it), ``GET /oidc/.well-known/oauth-authorization-server``, ``POST /oidc/v1/token``.
- Tracking (``/api/2.0/mlflow/...``, ``/api/2.0/preview/mlflow/...``, ``/api/3.0/mlflow/...``):
  forwarded to the REAL MLflow server child, Authorization dropped, body/query/status kept.
  Exceptions: ``experiments/create``/``update`` need a workspace path name (``/Shared/x``);
  logged models' artifact URIs are rewritten from the OSS layout
  ``.../<exp>/models/<id>/artifacts`` to Databricks' ``.../<exp>/logged_models/<id>/artifacts``
  (mlflow's Databricks artifact repos route on that path segment); the Workspace registry's
  alias endpoints are refused as Databricks' Workspace registry does.
- Run and logged-model artifacts as MLflow-managed storage (modelled on
  ``mlflow/store/artifact/databricks_artifact_repo.py`` and
  ``databricks_artifact_repo_resources.py``): ``credentials-for-write``/``-read``,
  ``artifacts/list``, the logged-model ``credentials-for-upload``/``-download`` and
  ``artifacts/directories``, answered with presigned URLs to the S3 front.
- The Databricks SDK Files API (``/api/2.0/fs/...``): 501 NOT_IMPLEMENTED. MLflow's
  ``DatabricksTrackingArtifactRepository`` tries it first for run and logged-model artifacts
  and falls back to the credentials endpoints on ANY exception. It must not be 404: the SDK
  maps 404 to ``NotFound`` and ``list_artifacts`` would then silently answer "no files".
- Unity Catalog registry (``/api/2.0/mlflow/unity-catalog/...``): ``standin_uc.py``.
"""

from __future__ import annotations

import base64
import json
import logging
import posixpath
import re
import secrets
import threading
import time
from urllib.parse import parse_qsl, urlencode

import requests
from werkzeug.wrappers import Request, Response

from mlflow.protos import databricks_artifacts_pb2 as art
from mlflow.protos import service_pb2 as svc

from standin_common import (
    ApiError,
    RequestLog,
    body_text,
    decode_page_token,
    encode_page_token,
    invalid,
    not_found,
    parse_json_body,
    parse_query,
    proto_json,
    required,
)
from standin_s3 import CredentialStore, InternalS3
from standin_uc import ENDPOINTS as UC_ENDPOINTS
from standin_uc import UcRegistry

log = logging.getLogger("standin.api")

WORKSPACE_ID = "6051921418418893"
PAT_USER = "stacktag-ci@example.com"
TRACKING_ROOT = "dbfs:/databricks/mlflow-tracking/"
# The header every credentials-for-write URL is signed with and the client must send.
WRITE_HEADERS = {"x-amz-server-side-encryption": "AES256"}
# OSS MLflow keeps a logged model's artifacts under <exp>/models/<id>; Databricks under
# <exp>/logged_models/<id>. The child is OSS, so its answers are rewritten.
_LOGGED_MODEL_URI = re.compile(r"(dbfs:/databricks/mlflow-tracking/[^/\"]+)/models/(m-[0-9a-f]+)/artifacts")


class S3RunStorage:
    """Run artifacts on the S3 front, as an AWS workspace keeps them: presigned URLs, the PUTs
    signed with ``WRITE_HEADERS``. (``standin_azure.AzureRunStorage`` is the Azure one.)"""

    CREDENTIAL_TYPE = "AWS_PRESIGNED_URL"

    def __init__(self, store: CredentialStore, s3: InternalS3):
        self._store = store
        self._s3 = s3

    def write_headers(self) -> dict:
        return WRITE_HEADERS

    def signed_url(self, method: str, key: str, headers: dict, label: str) -> str:
        return self._store.presign(method, key, headers, label)

    def list_dir(self, prefix: str):
        return self._s3.list_dir(prefix)

    def head(self, key: str):
        return self._s3.head(key)


class Faults:
    """The fault switches of ``POST /__standin/faults`` (read by every part of the stand-in)."""

    TYPES = {
        "alias_forbidden": bool,
        "stuck_pending": bool,
        "expire_credentials_after": (int, type(None)),
        "always_expired": bool,
        "token_ttl": (int, float),
    }

    def __init__(self, token_ttl: float, refused: dict[str, str] | None = None):
        # Faults this configuration cannot produce, and why (set them and the test is a lie).
        self._refused = dict(refused or {})
        self._lock = threading.Lock()
        self._values = {
            "alias_forbidden": False,
            "stuck_pending": False,
            "expire_credentials_after": None,
            "always_expired": False,
            "token_ttl": token_ttl,
        }

    def get(self) -> dict:
        with self._lock:
            return dict(self._values)

    def merge(self, update: dict) -> dict:
        for key, value in update.items():
            kind = self.TYPES.get(key)
            if kind is None:
                raise invalid(f"Unknown fault '{key}'. Known: {sorted(self.TYPES)}")
            if key in self._refused and value is not None and value is not False:
                raise invalid(f"Fault '{key}' cannot be produced here: {self._refused[key]}")
            # bool is an int in Python: refuse true/false for the numeric faults.
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise invalid(f"Fault '{key}' has the wrong type: {value!r}")
            if key == "expire_credentials_after" and value is not None and value < 0:
                raise invalid("expire_credentials_after must be >= 0 or null")
            if key == "token_ttl" and value <= 0:
                raise invalid("token_ttl must be > 0")
        with self._lock:
            self._values.update(update)
            return dict(self._values)


def _json(status: int, obj, headers: dict | None = None) -> Response:
    return Response(json.dumps(obj), status=status, mimetype="application/json", headers=headers)


def _clean_path(path: str, allow_root: bool) -> str:
    """An artifact path relative to a run's (or logged model's) artifact root."""
    if path.startswith("/"):
        raise invalid(f"Invalid artifact path '{path}': must be relative to the artifact root")
    normal = posixpath.normpath(path) if path else ""
    normal = "" if normal == "." else normal
    if normal == ".." or normal.startswith("../"):
        raise invalid(f"Invalid artifact path '{path}': must not leave the artifact root")
    if not normal and not allow_root:
        raise invalid("Invalid artifact path '': a file path is needed")
    return normal


class ApiFront:
    """WSGI app for the Databricks API port."""

    def __init__(
        self,
        *,
        pat: str,
        client_id: str,
        client_secret: str,
        faults: Faults,
        store: CredentialStore,
        s3: InternalS3,
        run_storage,
        request_log: RequestLog,
        child_url: str,
        credential_ttl: float,
        page_size: int,
    ):
        self.host = ""  # http://127.0.0.1:P, set once listening
        self.pat = pat
        self.client_id = client_id
        self.client_secret = client_secret
        self.faults = faults
        self.store = store
        self.s3 = s3
        # Where run and logged-model artifacts live: S3RunStorage or standin_azure's.
        self.run_storage = run_storage
        self.log = request_log
        self.child_url = child_url
        self.page_size = page_size
        self._tokens: dict[str, dict] = {}  # OAuth access token -> {client_id, expires_at, n}
        self._tokens_lock = threading.Lock()
        self._local = threading.local()  # a requests.Session per server thread
        self._runs: dict[str, dict] = {}  # run id -> {experiment_id, artifact_uri}: never change
        self.uc = UcRegistry(store, s3, faults.get, credential_ttl, self.run_info)
        self.routes = [
            ("POST", re.compile(r"/api/2\.0/mlflow/artifacts/credentials-for-write"), self.run_credentials_write),
            ("POST", re.compile(r"/api/2\.0/mlflow/artifacts/credentials-for-read"), self.run_credentials_read),
            ("GET", re.compile(r"/api/2\.0/mlflow/artifacts/list"), self.run_list_artifacts),
            (
                "POST",
                re.compile(r"/api/2\.0/mlflow/logged-models/(?P<model_id>[^/]+)/artifacts/credentials-for-upload"),
                self.logged_model_credentials_upload,
            ),
            (
                "POST",
                re.compile(r"/api/2\.0/mlflow/logged-models/(?P<model_id>[^/]+)/artifacts/credentials-for-download"),
                self.logged_model_credentials_download,
            ),
            (
                "GET",
                re.compile(r"/api/2\.0/mlflow/logged-models/(?P<model_id>[^/]+)/artifacts/directories"),
                self.logged_model_list_artifacts,
            ),
            ("POST", re.compile(r"/api/2\.0/(preview/)?mlflow/experiments/(create|update)"), self.experiment_write),
        ]

    # --- WSGI ---------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path.startswith("/__standin/"):
            return self.control(request)(environ, start_response)
        body = request.get_data(cache=True)
        record = {
            "server": "api",
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode("latin-1"),
            "headers": self._redacted_headers(request),
            "body": self._redacted_body(request, body),
        }
        try:
            response = self.dispatch(request, body)
        except ApiError as err:
            response = _json(err.status, err.body())
        except Exception as err:  # noqa: BLE001 - a stand-in bug must be visible, not a hang
            log.exception("internal error on %s %s", request.method, request.path)
            response = _json(500, {"error_code": "INTERNAL_ERROR", "message": f"stand-in error: {err!r}"})
        if request.path.startswith("/api/"):
            response.headers["x-databricks-org-id"] = WORKSPACE_ID
        record["status"] = response.status_code
        if response.status_code >= 400 and response.mimetype == "application/json":
            try:
                answer = json.loads(response.get_data())
                record["error_code"] = answer.get("error_code") or answer.get("error")  # OAuth: "error"
            except ValueError:
                pass
        self.log.add(record)
        return response(environ, start_response)

    def dispatch(self, request: Request, body: bytes) -> Response:
        path, method = request.path, request.method
        if path == "/.well-known/databricks-config" and method == "GET":
            return self.host_metadata()
        if path == "/oidc/.well-known/oauth-authorization-server" and method == "GET":
            return self.oidc_discovery()
        if path == "/oidc/v1/token":
            return self.oauth_token(request)
        if not path.startswith("/api/"):
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
        principal = self.authenticate(request)

        if (path, method) in UC_ENDPOINTS:
            cls = UC_ENDPOINTS[(path, method)]
            message = self._parse(request, body, cls)
            return _json(200, json.loads(proto_json(self.uc.handle(message, principal))))
        if path.startswith("/api/2.0/mlflow/unity-catalog/"):
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
        for route_method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match and method == route_method:
                return handler(request, body, **match.groupdict())
        if path.startswith("/api/2.0/fs/"):
            # See the module docstring: must not be 404.
            raise ApiError(
                501,
                "NOT_IMPLEMENTED",
                "The Files API is not available in the Databricks stand-in; MLflow falls back to "
                "the artifact credential endpoints.",
            )
        if re.fullmatch(
            r"/api/2\.0/mlflow/artifacts/(create-multipart-upload|complete-multipart-upload|"
            r"get-presigned-upload-part-url)",
            path,
        ) or re.fullmatch(r"/api/2\.0/mlflow/traces/[^/]+/credentials-for-data-(upload|download)", path):
            raise ApiError(
                501,
                "NOT_IMPLEMENTED",
                f"'{path}' is not modelled by the Databricks stand-in (multipart uploads are only used "
                "for files above MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE; traces are not modelled).",
            )
        if re.fullmatch(r"/api/2\.0/(preview/)?mlflow/registered-models/alias", path):
            verb = {"POST": "set_registered_model_alias", "DELETE": "delete_registered_model_alias"}.get(
                method, "get_model_version_by_alias"
            )
            raise invalid(
                f"Method '{verb}' is unsupported for models in the Workspace Model Registry. Upgrade to "
                "Models in Unity Catalog to access the latest features (registry URI 'databricks-uc', "
                "endpoints under /api/2.0/mlflow/unity-catalog/)."
            )
        if re.match(r"/api/(2\.0|2\.0/preview|3\.0)/mlflow/", path):
            return self.forward(request, body)
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")

    @staticmethod
    def _parse(request: Request, body: bytes, cls, extra: dict | None = None):
        # MLflow's call_endpoint sends a GET's fields as query parameters, everything else as
        # a JSON body (DELETE too). Accept a query for a body-less DELETE as well.
        if request.method == "GET" or (request.method == "DELETE" and not body.strip()):
            return parse_query(parse_qsl(request.query_string.decode(), keep_blank_values=True), cls, extra)
        message = parse_json_body(body, cls)
        if extra:
            for key, value in extra.items():
                setattr(message, key, value)
        return message

    # --- control ------------------------------------------------------------------------------

    def control(self, request: Request) -> Response:
        path, method = request.path, request.method
        try:
            if path == "/__standin/faults" and method == "GET":
                return _json(200, self.faults.get())
            if path == "/__standin/faults" and method == "POST":
                update = request.get_json(force=True, silent=True)
                if not isinstance(update, dict):
                    raise invalid("POST /__standin/faults takes a JSON object")
                values = self.faults.merge(update)
                log.info("faults now %s", values)
                return _json(200, values)
            if path == "/__standin/requests" and method == "GET":
                since = int(request.args.get("since", "0") or 0)
                return _json(200, {"requests": self.log.snapshot(since)})
            if path == "/__standin/reset" and method == "POST":
                self.log.clear()
                return _json(200, {})
            if path == "/__standin/health" and method == "GET":
                return _json(200, {"ok": True})
        except ApiError as err:
            return _json(err.status, err.body())
        return _json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No control endpoint '{method} {path}'"})

    # --- auth and OAuth -----------------------------------------------------------------------

    def authenticate(self, request: Request) -> str:
        """The principal behind the request (the UC ``user_id``), or 401."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type for this API."
            )
        token = token.strip()
        if secrets.compare_digest(token, self.pat):
            return PAT_USER
        with self._tokens_lock:
            issued = self._tokens.get(token)
        if issued is None:
            raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")
        if time.time() >= issued["expires_at"]:
            raise ApiError(401, "UNAUTHENTICATED", "Token expired. Get a new OAuth token.")
        return issued["client_id"]

    def host_metadata(self) -> Response:
        # What databricks-sdk reads into HostMetadata: the OIDC root (it appends
        # /.well-known/oauth-authorization-server), the workspace id, the cloud.
        return _json(200, {"oidc_endpoint": f"{self.host}/oidc", "workspace_id": WORKSPACE_ID, "cloud": "AWS"})

    def oidc_discovery(self) -> Response:
        base = f"{self.host}/oidc"
        return _json(
            200,
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/v1/authorize",
                "token_endpoint": f"{base}/v1/token",
                "jwks_uri": f"{base}/jwks.json",
                "scopes_supported": ["all-apis", "offline_access", "openid", "profile", "email"],
                "response_types_supported": ["code", "id_token"],
                "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            },
        )

    def oauth_token(self, request: Request) -> Response:
        """RFC 6749 client credentials: client auth by HTTP Basic (what databricks-sdk sends,
        ``use_header=True``) or by ``client_id``/``client_secret`` form fields."""

        def oauth_error(status: int, error: str, description: str) -> Response:
            return _json(status, {"error": error, "error_description": description})

        if request.method != "POST":
            return oauth_error(405, "invalid_request", "The token endpoint takes POST")
        if request.mimetype != "application/x-www-form-urlencoded":
            return oauth_error(400, "invalid_request", "The token request must be application/x-www-form-urlencoded")
        form = request.form
        client_id = client_secret = None
        if request.authorization and request.authorization.type == "basic":
            client_id, client_secret = request.authorization.username, request.authorization.password
        elif "client_id" in form:
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if not client_id:
            return oauth_error(401, "invalid_client", "Client authentication failed: no client credentials")
        if (
            client_id != self.client_id
            or not client_secret
            or not secrets.compare_digest(client_secret, self.client_secret)
        ):
            return oauth_error(401, "invalid_client", "Client authentication failed")
        if form.get("grant_type") != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", f"grant_type {form.get('grant_type')!r} is not supported")
        scope = form.get("scope", "all-apis")
        if "all-apis" not in scope.split():
            return oauth_error(400, "invalid_scope", f"scope {scope!r} does not include all-apis")
        ttl = self.faults.get()["token_ttl"]
        token = "eyJraWQiOiJzdGFuZGluIn0." + secrets.token_urlsafe(48)
        with self._tokens_lock:
            self._tokens[token] = {"client_id": client_id, "expires_at": time.time() + ttl, "n": len(self._tokens) + 1}
        return _json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(ttl) if ttl == int(ttl) else ttl,
                "scope": scope,
            },
        )

    def _redacted_headers(self, request: Request) -> dict:
        headers = {k.lower(): v for k, v in request.headers.items()}
        auth = headers.get("authorization")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer":
                if value == self.pat:
                    what = "<pat>"
                else:
                    with self._tokens_lock:
                        issued = self._tokens.get(value)
                    what = f"<oauth-token #{issued['n']}>" if issued else "<unknown-token>"
                headers["authorization"] = f"Bearer {what}"
            elif scheme.lower() == "basic":
                try:
                    user, _, password = base64.b64decode(value).decode().partition(":")
                    ok = "ok" if password == self.client_secret else "wrong"
                    headers["authorization"] = f"Basic <client_id={user} secret={ok}>"
                except ValueError:
                    headers["authorization"] = "Basic <undecodable>"
            else:
                headers["authorization"] = f"{scheme} <redacted>"
        return headers

    def _redacted_body(self, request: Request, body: bytes) -> str:
        if request.path == "/oidc/v1/token" and request.mimetype == "application/x-www-form-urlencoded":
            pairs = parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
            pairs = [
                (k, ("<ok>" if v == self.client_secret else "<wrong>") if k == "client_secret" else v) for k, v in pairs
            ]
            return urlencode(pairs)
        return body_text(body, 65536)

    # --- tracking: the real MLflow server -----------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # loopback: no proxies, no netrc
            self._local.session = session
        return session

    def forward(self, request: Request, body: bytes) -> Response:
        raw_uri = request.environ.get("RAW_URI") or request.full_path
        skip = {
            "authorization",
            "host",
            "content-length",
            "connection",
            "transfer-encoding",
            "accept-encoding",
            "keep-alive",
            "te",
            "upgrade",
            "proxy-authorization",
        }
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        answer = self._session().request(
            request.method, self.child_url + raw_uri, data=body, headers=headers, timeout=120, allow_redirects=False
        )
        content = answer.content
        content_type = answer.headers.get("Content-Type", "application/json")
        if "json" in content_type:
            content = _LOGGED_MODEL_URI.sub(r"\1/logged_models/\2/artifacts", content.decode()).encode()
        return Response(content, status=answer.status_code, content_type=content_type)

    def _child_get(self, path: str, params: dict) -> dict | None:
        answer = self._session().get(self.child_url + path, params=params, timeout=60)
        if answer.status_code == 404 or (answer.status_code == 400 and "RESOURCE_DOES_NOT_EXIST" in answer.text):
            return None
        if answer.status_code != 200:
            raise ApiError(answer.status_code, "INTERNAL_ERROR", f"tracking server answered {answer.status_code}")
        return json.loads(_LOGGED_MODEL_URI.sub(r"\1/logged_models/\2/artifacts", answer.text))

    def experiment_write(self, request: Request, body: bytes, **_) -> Response:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = None
        if isinstance(data, dict):
            name = data.get("name") if request.path.endswith("/create") else data.get("new_name")
            if isinstance(name, str) and not name.startswith("/"):
                raise invalid(
                    f"Got an invalid experiment name '{name}'. An experiment name must be an absolute path "
                    "within the Databricks workspace, e.g. '/Users/<some-username>/my-experiment' or "
                    "'/Shared/my-experiment'."
                )
            if data.get("artifact_location"):
                raise invalid(
                    "The Databricks stand-in models MLflow-managed artifact storage only: create experiments "
                    "without artifact_location."
                )
        return self.forward(request, body)

    def run_info(self, run_id: str) -> dict | None:
        """{experiment_id, artifact_uri} of a run, from the real tracking server (cached)."""
        if run_id in self._runs:
            return self._runs[run_id]
        answer = self._child_get("/api/2.0/mlflow/runs/get", {"run_id": run_id})
        if answer is None:
            return None
        info = answer["run"]["info"]
        self._runs[run_id] = {"experiment_id": info["experiment_id"], "artifact_uri": info["artifact_uri"]}
        return self._runs[run_id]

    # --- run artifacts ------------------------------------------------------------------------

    def _run_base(self, run_id: str) -> tuple[str, str]:
        """(artifact_uri, bucket key prefix) of a run's artifact root."""
        if not run_id:
            raise required("run_id")
        info = self.run_info(run_id)
        if info is None:
            raise not_found(f"Run '{run_id}' not found.")
        uri = info["artifact_uri"]
        if not uri.startswith(TRACKING_ROOT):
            raise invalid(f"Run '{run_id}' does not keep its artifacts in MLflow-managed storage ({uri}).")
        return uri, "tracking/" + uri[len(TRACKING_ROOT) :].strip("/")

    def _credential_info(self, method: str, key: str, label: str, path: str, run_id: str | None = None):
        storage = self.run_storage
        headers = storage.write_headers() if method == "PUT" else {}
        info = art.ArtifactCredentialInfo(
            path=path,
            signed_uri=storage.signed_url(method, key, headers, label),
            type=getattr(art, storage.CREDENTIAL_TYPE),
        )
        if run_id:
            info.run_id = run_id
        for name, value in headers.items():
            info.headers.add(name=name, value=value)
        return info

    def _paged(self, items: list, page_token: str) -> tuple[list, str | None]:
        start = decode_page_token(page_token)
        end = start + self.page_size
        return items[start:end], (encode_page_token(end) if end < len(items) else None)

    def _run_credentials(self, body: bytes, request_cls, method: str) -> Response:
        message = parse_json_body(body, request_cls)
        _, base = self._run_base(message.run_id)
        paths = [_clean_path(p, allow_root=False) for p in message.path]
        page, token = self._paged(paths, message.page_token)
        response = request_cls.Response()
        for path in page:
            response.credential_infos.append(
                self._credential_info(
                    method, f"{base}/{path}", f"run {message.run_id} {method} {path}", path, message.run_id
                )
            )
        if token:
            response.next_page_token = token
        return _json(200, json.loads(proto_json(response)))

    def run_credentials_write(self, request, body):
        return self._run_credentials(body, art.GetCredentialsForWrite, "PUT")

    def run_credentials_read(self, request, body):
        return self._run_credentials(body, art.GetCredentialsForRead, "GET")

    def _list(self, base: str, path: str) -> list:
        """FileInfo protos directly under ``path`` (relative to the root at key ``base``)."""
        prefix = f"{base}/{path}/" if path else f"{base}/"
        files, dirs = self.run_storage.list_dir(prefix)
        infos = [svc.FileInfo(path=posixpath.join(path, d[len(prefix) :].rstrip("/")), is_dir=True) for d in dirs]
        infos += [
            svc.FileInfo(path=posixpath.join(path, k[len(prefix) :]), is_dir=False, file_size=size)
            for k, size in files
            if k != prefix
        ]
        if not infos and path:
            # "path is a file": one entry, that file (what _Run._list_artifacts expects).
            size = self.run_storage.head(f"{base}/{path}")
            if size is not None:
                infos = [svc.FileInfo(path=path, is_dir=False, file_size=size)]
        return sorted(infos, key=lambda f: f.path)

    def run_list_artifacts(self, request, body):
        message = self._parse(request, body, svc.ListArtifacts)
        run_id = message.run_id or message.run_uuid
        root, base = self._run_base(run_id)
        path = _clean_path(message.path, allow_root=True)
        page, token = self._paged(self._list(base, path), message.page_token)
        response = svc.ListArtifacts.Response(root_uri=root, files=page)
        if token:
            response.next_page_token = token
        return _json(200, json.loads(proto_json(response)))

    # --- logged-model artifacts ---------------------------------------------------------------

    def _logged_model_base(self, model_id: str) -> tuple[str, str]:
        answer = self._child_get(f"/api/2.0/mlflow/logged-models/{model_id}", {})
        if answer is None:
            raise not_found(f"Logged model '{model_id}' not found.")
        uri = answer["model"]["info"]["artifact_uri"]
        if not uri.startswith(TRACKING_ROOT):
            raise invalid(f"Logged model '{model_id}' does not keep its artifacts in MLflow-managed storage ({uri}).")
        return uri, "tracking/" + uri[len(TRACKING_ROOT) :].strip("/")

    def _logged_model_credentials(self, body: bytes, model_id: str, request_cls, method: str) -> Response:
        message = parse_json_body(body, request_cls)
        _, base = self._logged_model_base(model_id)
        paths = [_clean_path(p, allow_root=False) for p in message.paths]
        page, token = self._paged(paths, message.page_token)
        response = request_cls.Response()
        for path in page:
            response.credentials.add(
                model_id=model_id,
                credential_info=self._credential_info(
                    method, f"{base}/{path}", f"logged model {model_id} {method} " f"{path}", path
                ),
            )
        if token:
            response.next_page_token = token
        return _json(200, json.loads(proto_json(response)))

    def logged_model_credentials_upload(self, request, body, model_id):
        return self._logged_model_credentials(body, model_id, art.GetCredentialsForLoggedModelUpload, "PUT")

    def logged_model_credentials_download(self, request, body, model_id):
        return self._logged_model_credentials(body, model_id, art.GetCredentialsForLoggedModelDownload, "GET")

    def logged_model_list_artifacts(self, request, body, model_id):
        message = self._parse(request, body, svc.ListLoggedModelArtifacts, extra={"model_id": model_id})
        root, base = self._logged_model_base(model_id)
        path = _clean_path(message.artifact_directory_path, allow_root=True)
        page, token = self._paged(self._list(base, path), message.page_token)
        response = svc.ListLoggedModelArtifacts.Response(root_uri=root, files=page)
        if token:
            response.next_page_token = token
        return _json(200, json.loads(proto_json(response)))
