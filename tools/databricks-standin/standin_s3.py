"""The S3 side of the stand-in: moto's real S3 implementation behind a front the stand-in controls.

What is real: object storage is moto's S3 (``moto.moto_server.werkzeug_app.create_backend_app``),
run in-process as a WSGI app, so PUT/GET/HEAD/ListObjectsV2/multipart behave and answer (XML,
ETags, x-amz-* headers) like S3 as moto models it. moto itself checks no signature.

What the front adds, in the order S3 applies them, so a client that gets S3 auth wrong fails
here as it would against AWS:

1. No ``Authorization: AWS4-HMAC-SHA256 ...`` header and no ``X-Amz-Credential`` query
   parameter: 403 ``AccessDenied`` (the bucket is private); Signature V2 (``AWSAccessKeyId``
   query, ``Authorization: AWS ...``): 400 ``InvalidRequest`` (use AWS4-HMAC-SHA256).
2. An access key the stand-in never issued (for instance the dummy ``AWS_ACCESS_KEY_ID`` of the
   environment): 403 ``InvalidAccessKeyId``. Only credentials from the Databricks API work:
   UC temporary credentials (``generate-temporary-credentials``) and presigned URLs
   (``credentials-for-read``/``-write``).
3. A session token that is missing or not the one issued with the key: 403 ``InvalidToken``.
4. A SigV4 signature that does not verify with the issued secret: 403 ``SignatureDoesNotMatch``.
   The check is real SigV4 (canonical request, string to sign, HMAC chain), for header auth
   and for presigned URLs. Before it, for a presigned URL, every header listed in
   ``X-Amz-SignedHeaders`` (besides host) must be present with the value the stand-in signed
   it with, so a client that drops the ``x-amz-server-side-encryption`` header a write
   credential comes with gets a 403 naming the header. For header auth, a hex
   ``x-amz-content-sha256`` must match the body (400 ``XAmzContentSHA256Mismatch``).
5. Expiry: a presigned URL used after its ``X-Amz-Expires`` window: 403 ``AccessDenied``
   ("Request has expired"). A credential past its expiration time, or expired by a fault
   (``always_expired``, or ``expire_credentials_after`` N: it worked for N requests),
   400 ``ExpiredToken`` ("The provided token has expired."), as S3 answers for an expired
   STS session token (presigned URLs here are signed with session credentials too).
6. Scope, as an STS session policy would: UC temporary credentials reach only keys under the
   model version's storage location (plus HeadBucket, GetBucketLocation and listings whose
   ``prefix`` lies inside it); READ credentials cannot PUT/POST/DELETE. 403 ``AccessDenied``.
   This holds for header auth and for URLs a client presigns itself with those credentials
   (MLflow does, for multipart parts).

Error answers are S3's XML (``<Error><Code>..</Code><Message>..</Message>...``) with an extra
``<StandinDetail>`` element saying what exactly was wrong. HEAD errors have no body, as in S3.
"""

from __future__ import annotations

import calendar
import dataclasses
import hashlib
import hmac
import io
import logging
import re
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, unquote

from standin_common import RequestLog, body_text

log = logging.getLogger("standin.s3")

REGION = "us-east-1"
# How long presigned URLs are valid (X-Amz-Expires); Databricks' are minutes, not hours.
PRESIGN_EXPIRES = 900


@dataclasses.dataclass
class S3Credential:
    """One credential the stand-in issued. Presigned URLs get their own session credential each,
    so the S3 front can tell URLs apart by the access key in ``X-Amz-Credential``."""

    access_key: str
    secret: str
    session_token: str
    kind: str  # "temp" (UC temporary credentials) | "presigned" | "internal"
    label: str  # for logs and the request log, e.g. "uc main.s.m v1 READ"
    expires_at: float
    uses_left: int | None = None  # None: unlimited (no expire_credentials_after fault)
    prefix: str = ""  # temp: bucket-relative key prefix it may touch
    writable: bool = False  # temp: READ_WRITE
    method: str = ""  # presigned: the HTTP method it was signed for
    key: str = ""  # presigned: the object key it was signed for
    signed_headers: dict = dataclasses.field(default_factory=dict)  # presigned: name -> value


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


class CredentialStore:
    """Issues S3 credentials and presigned URLs and decides whether a use is still allowed."""

    def __init__(self, faults: Callable[[], dict], bucket: str):
        self._faults = faults
        self._lock = threading.Lock()
        self._creds: dict[str, S3Credential] = {}
        self.bucket = bucket
        self.endpoint = ""  # set once the S3 front listens
        # The stand-in's own client (bucket creation, listings, the MLmodel check): never
        # recorded, never faulted, not scoped.
        self.internal = self._new("internal", "stand-in internal", ttl=10 * 365 * 86400, faultable=False)

    def _new(self, kind: str, label: str, ttl: float, faultable: bool = True, **extra) -> S3Credential:
        # Shapes like STS session credentials: ASIA + 16, 40-char secret, a long token.
        cred = S3Credential(
            access_key="ASIA" + _random(string.ascii_uppercase + string.digits, 16),
            secret=_random(string.ascii_letters + string.digits + "+/", 40),
            session_token="IQoJb3JpZ2luX2Vj" + _random(string.ascii_letters + string.digits, 200),
            kind=kind,
            label=label,
            expires_at=time.time() + ttl,
            **extra,
        )
        if faultable:
            n = self._faults().get("expire_credentials_after")
            cred.uses_left = None if n is None else int(n)
        with self._lock:
            self._creds[cred.access_key] = cred
        return cred

    def issue_temp(self, prefix: str, writable: bool, ttl: float, label: str) -> S3Credential:
        return self._new("temp", label, ttl, prefix=prefix.strip("/"), writable=writable)

    def presign(self, method: str, key: str, headers: dict, label: str) -> str:
        """A presigned URL for ``method`` on ``key`` (through the S3 front), signing ``headers``."""
        from botocore.auth import S3SigV4QueryAuth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        cred = self._new("presigned", label, PRESIGN_EXPIRES, method=method, key=key, signed_headers=dict(headers))
        url = f"{self.endpoint}/{self.bucket}/{quote(key, safe='/~')}"
        request = AWSRequest(method=method, url=url, headers=dict(headers))
        S3SigV4QueryAuth(
            Credentials(cred.access_key, cred.secret, cred.session_token), "s3", REGION, expires=PRESIGN_EXPIRES
        ).add_auth(request)
        return request.url

    def lookup(self, access_key: str) -> S3Credential | None:
        with self._lock:
            return self._creds.get(access_key)

    def expired_reason(self, cred: S3Credential) -> str | None:
        """Why ``cred`` no longer works, or None. Counts nothing."""
        if cred.kind == "internal":
            return None
        if self._faults().get("always_expired"):
            return "fault always_expired: every issued credential is expired"
        if time.time() > cred.expires_at:
            return "the credential passed its expiration time"
        with self._lock:
            if cred.uses_left is not None and cred.uses_left <= 0:
                return "fault expire_credentials_after: the credential was used up"
        return None

    def count_use(self, cred: S3Credential) -> None:
        with self._lock:
            if cred.uses_left is not None:
                cred.uses_left -= 1


# --- SigV4 -------------------------------------------------------------------------------------

_UNRESERVED = "-_.~"


def _uri_encode(value: str) -> str:
    # RFC 3986 unreserved characters stay, everything else is %XX (space is %20, not +).
    return quote(value, safe=_UNRESERVED)


def _canonical_query(raw_query: str, drop: str | None) -> str:
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        if not part:
            continue
        name, _, value = part.partition("=")
        name, value = unquote(name), unquote(value)
        if drop is not None and name == drop:
            continue
        pairs.append((_uri_encode(name), _uri_encode(value)))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def _trim(value: str) -> str:
    return re.sub(r"\s+", " ", value.strip())


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sigv4_signature(
    secret: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict,
    signed_header_names: list[str],
    payload_hash: str,
    amz_date: str,
    scope: str,
    drop_query: str | None,
) -> tuple[str, str]:
    """(signature, canonical request) as S3 computes them. ``headers`` has lower-case names."""
    canonical_headers = "".join(f"{name}:{_trim(headers.get(name, ''))}\n" for name in signed_header_names)
    canonical = "\n".join(
        [
            method,
            raw_path or "/",  # S3 signs the path as sent (no normalisation, no double encoding)
            _canonical_query(raw_query, drop_query),
            canonical_headers,
            ";".join(signed_header_names),
            payload_hash,
        ]
    )
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    key = _signing_key(secret, date, region, service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest(), canonical


# --- the front -------------------------------------------------------------------------------


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, detail: str = ""):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}


def _request_headers(environ) -> dict:
    """The request's headers with lower-case names, as the client sent them."""
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["content-length"] = environ["CONTENT_LENGTH"]
    return headers


class S3Front:
    """WSGI app: the checks above, then moto."""

    def __init__(self, store: CredentialStore, requests_log: RequestLog):
        from moto.moto_server.werkzeug_app import create_backend_app

        self.store = store
        self.log = requests_log
        self.moto = create_backend_app("s3")

    # The WSGI entry point.
    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        raw_path, _, raw_query = raw_uri.partition("?")
        body = self._read_body(environ)
        headers = _request_headers(environ)
        record = {
            "server": "s3",
            "method": method,
            "path": raw_path,
            "query": raw_query,
            "headers": {k: v for k, v in headers.items() if k != "authorization"},
            "body": body_text(body, 2048),
            "body_size": len(body),
        }
        if "authorization" in headers:
            # The signature is no secret, but keep the log readable: scheme + credential.
            record["headers"]["authorization"] = headers["authorization"].split(",")[0]
        error = None
        try:
            cred = self._authorize(method, raw_path, raw_query, headers, body)
        except S3Error as refused:
            error = refused
        except Exception as crash:  # noqa: BLE001 - a stand-in bug: answer like S3, log it
            log.exception("S3 front error on %s %s", method, raw_path)
            error = S3Error(500, "InternalError", "We encountered an internal error. Please try again.", repr(crash))
        if error is not None:
            err = error
            record.update(status=err.status, error_code=err.code, detail=err.detail)
            self.log.add(record)
            log.info("S3 %s %s -> %s %s (%s)", method, raw_path, err.status, err.code, err.detail)
            return self._error(environ, start_response, err)
        if cred.kind != "internal":
            self.store.count_use(cred)
        status_holder = {}

        def capture(status, response_headers, exc_info=None):
            status_holder["status"] = int(status.split()[0])
            return start_response(status, response_headers, exc_info)

        inner = dict(environ)
        inner["wsgi.input"] = io.BytesIO(body)
        inner["CONTENT_LENGTH"] = str(len(body))
        inner.pop("HTTP_TRANSFER_ENCODING", None)  # the body is already de-chunked
        result = self.moto(inner, capture)
        if cred.kind != "internal":
            record.update(credential=cred.kind, credential_label=cred.label, status=status_holder.get("status"))
            self.log.add(record)
        return result

    @staticmethod
    def _read_body(environ) -> bytes:
        stream = environ["wsgi.input"]
        if environ.get("wsgi.input_terminated"):
            return stream.read()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return stream.read(length) if length > 0 else b""

    def _error(self, environ, start_response, err: S3Error):
        request_id = uuid.uuid4().hex[:16].upper()
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{err.code}</Code><Message>{_xml(err.message)}</Message>"
            f"<StandinDetail>{_xml(err.detail)}</StandinDetail>"
            f"<RequestId>{request_id}</RequestId><HostId>standin</HostId></Error>"
        ).encode()
        if environ["REQUEST_METHOD"] == "HEAD":
            xml = b""
        start_response(
            f"{err.status} {_REASONS.get(err.status, 'Error')}",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(xml))), ("x-amz-request-id", request_id)],
        )
        return [xml]

    # --- the checks ---------------------------------------------------------------------------

    def _authorize(self, method, raw_path, raw_query, headers, body) -> S3Credential:
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        auth = headers.get("authorization", "")
        if "X-Amz-Credential" in query:
            return self._check_presigned(method, raw_path, raw_query, query, headers)
        if auth.startswith("AWS4-HMAC-SHA256 "):
            return self._check_header_auth(method, raw_path, raw_query, headers, body, auth)
        if "AWSAccessKeyId" in query or auth.startswith("AWS "):
            # Signature V2 (boto3's generate_presigned_url without signature_version="s3v4").
            raise S3Error(
                400,
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. " "Please use AWS4-HMAC-SHA256.",
                "Signature Version 2 is not accepted; sign with SigV4",
            )
        if auth:
            raise S3Error(400, "InvalidArgument", "Unsupported Authorization Type", f"scheme {auth.split()[0]!r}")
        raise S3Error(403, "AccessDenied", "Access Denied", "the request carries no credentials (bucket is private)")

    def _known(self, access_key: str, token: str | None) -> S3Credential:
        cred = self.store.lookup(access_key)
        if cred is None:
            raise S3Error(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                f"access key {access_key!r} was not issued by the stand-in; use the credentials "
                "the Databricks API hands out",
            )
        if cred.kind != "internal" and token != cred.session_token:
            raise S3Error(
                403,
                "InvalidToken",
                "The provided token is malformed or otherwise invalid.",
                "x-amz-security-token is missing" if not token else "x-amz-security-token does not belong to this key",
            )
        return cred

    def _check_presigned(self, method, raw_path, raw_query, query, headers) -> S3Credential:
        try:
            access_key, date, region, service, terminal = query["X-Amz-Credential"].split("/")
            amz_date = query["X-Amz-Date"]
            expires = int(query["X-Amz-Expires"])
            signed = query["X-Amz-SignedHeaders"].split(";")
            signature = query["X-Amz-Signature"]
        except (KeyError, ValueError) as err:
            raise S3Error(
                400,
                "AuthorizationQueryParametersError",
                "Query-string authentication requires "
                "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders "
                "and X-Amz-Expires parameters.",
                str(err),
            ) from err
        cred = self._known(access_key, query.get("X-Amz-Security-Token"))
        # The headers the URL was issued with must come along, with the signed values.
        for name in signed:
            if name == "host":
                continue
            wanted = next((v for k, v in cred.signed_headers.items() if k.lower() == name), None)
            got = headers.get(name)
            if got is None:
                raise S3Error(
                    403,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match " "the signature you provided.",
                    f"signed header {name!r} was not sent",
                )
            if wanted is not None and _trim(got) != _trim(wanted):
                raise S3Error(
                    403,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match " "the signature you provided.",
                    f"signed header {name!r} sent as {got!r}, signed as {wanted!r}",
                )
        self._verify(
            cred,
            method,
            raw_path,
            raw_query,
            headers,
            signed,
            "UNSIGNED-PAYLOAD",
            amz_date,
            f"{date}/{region}/{service}/{terminal}",
            signature,
            drop_query="X-Amz-Signature",
        )
        issued = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        if time.time() > issued + expires:
            raise S3Error(403, "AccessDenied", "Request has expired", f"X-Amz-Expires={expires} passed")
        self._not_expired(cred)
        if cred.kind == "temp":
            # A URL the client presigned itself with UC temporary credentials (MLflow does
            # this for multipart parts): same scope as header auth.
            self._check_scope(cred, method, raw_path, raw_query)
        return cred

    def _check_header_auth(self, method, raw_path, raw_query, headers, body, auth) -> S3Credential:
        fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 ") :].split(",") if "=" in part)
        try:
            access_key, date, region, service, terminal = fields["Credential"].split("/")
            signed = fields["SignedHeaders"].split(";")
            signature = fields["Signature"]
        except (KeyError, ValueError) as err:
            raise S3Error(
                400, "AuthorizationHeaderMalformed", "The authorization header is malformed.", str(err)
            ) from err
        cred = self._known(access_key, headers.get("x-amz-security-token"))
        payload_hash = headers.get("x-amz-content-sha256")
        if not payload_hash:
            raise S3Error(
                400,
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
                "SigV4 requests to S3 must send x-amz-content-sha256",
            )
        if re.fullmatch(r"[0-9a-f]{64}", payload_hash) and hashlib.sha256(body).hexdigest() != payload_hash:
            raise S3Error(
                400,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not " "match what was computed.",
                "body hash differs",
            )
        amz_date = headers.get("x-amz-date", "")
        self._verify(
            cred,
            method,
            raw_path,
            raw_query,
            headers,
            signed,
            payload_hash,
            amz_date,
            f"{date}/{region}/{service}/{terminal}",
            signature,
            drop_query=None,
        )
        self._not_expired(cred)
        if cred.kind == "temp":
            self._check_scope(cred, method, raw_path, raw_query)
        return cred

    def _verify(
        self, cred, method, raw_path, raw_query, headers, signed, payload_hash, amz_date, scope, signature, drop_query
    ) -> None:
        if cred.kind == "internal":
            return
        expected, canonical = sigv4_signature(
            cred.secret, method, raw_path, raw_query, headers, signed, payload_hash, amz_date, scope, drop_query
        )
        if not hmac.compare_digest(expected, signature):
            raise S3Error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the "
                "signature you provided. Check your key and signing method.",
                "canonical request: " + canonical.replace("\n", "\\n"),
            )

    def _not_expired(self, cred: S3Credential) -> None:
        reason = self.store.expired_reason(cred)
        if reason:
            raise S3Error(400, "ExpiredToken", "The provided token has expired.", f"{cred.label}: {reason}")

    def _check_scope(self, cred: S3Credential, method, raw_path, raw_query) -> None:
        path = unquote(raw_path).lstrip("/")
        bucket, _, key = path.partition("/")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        deny = lambda why: S3Error(403, "AccessDenied", "Access Denied", f"{cred.label} (scope {cred.prefix}/): {why}")  # noqa: E731
        if bucket != self.store.bucket:
            raise deny(f"bucket {bucket!r} is outside the credential's scope")
        inside = lambda k: k == cred.prefix or k.startswith(cred.prefix + "/")  # noqa: E731
        if not key:
            if method == "HEAD" or (method == "GET" and "location" in query):
                return  # HeadBucket / GetBucketLocation: mlflow asks for the region this way
            if method == "GET" and inside(query.get("prefix", "").rstrip("/")):
                return  # a listing inside the storage location
            raise deny(f"{method} on the bucket with query {raw_query!r} is not allowed")
        if not inside(key):
            raise deny(f"key {key!r} is outside the storage location")
        if method not in ("GET", "HEAD") and not cred.writable:
            raise deny(f"{method} needs READ_WRITE credentials; these are READ")


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class InternalS3:
    """The stand-in's own boto3 client, through the front with the internal key."""

    def __init__(self, store: CredentialStore):
        import boto3
        from botocore.config import Config

        cred = store.internal
        self.bucket = store.bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=store.endpoint,
            region_name=REGION,
            aws_access_key_id=cred.access_key,
            aws_secret_access_key=cred.secret,
            aws_session_token=cred.session_token,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def create_bucket(self) -> None:
        self.client.create_bucket(Bucket=self.bucket)

    def head(self, key: str) -> int | None:
        """The object's size, or None when there is none."""
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as err:
            if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise

    def list_dir(self, prefix: str) -> tuple[list[tuple[str, int]], list[str]]:
        """Files (key, size) and sub-directory prefixes directly under ``prefix`` (ends with /)."""
        files, dirs = [], []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            files += [(o["Key"], int(o["Size"])) for o in page.get("Contents", [])]
            dirs += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return files, dirs
