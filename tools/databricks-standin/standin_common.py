"""Shared pieces of the Databricks stand-in: errors, JSON answers, proto parsing, the request log.

Every JSON body and query the stand-in answers itself is parsed into the request proto MLflow's
own client uses for that endpoint, and every answer is built from the response proto. That is
what keeps the stand-in from drifting: a field MLflow does not know is refused, an answer
carries exactly the field names and JSON shapes of MLflow's protos.

Note on strictness: ``mlflow.utils.proto_json_utils.parse_dict`` *ignores* unknown fields
(it calls ``ParseDict(..., ignore_unknown_fields=True)``), so it is not used for requests.
``google.protobuf.json_format.ParseDict`` with ``ignore_unknown_fields=False`` is, and answers
are serialised with MLflow's ``message_to_json`` (which writes int64 fields as JSON numbers,
as Databricks does, and omits unset fields).
"""

from __future__ import annotations

import base64
import collections
import json
import threading
import time
from typing import Any
from collections.abc import Iterable

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

from mlflow.utils.proto_json_utils import message_to_json


class ApiError(Exception):
    """An error answered as Databricks does: ``{"error_code": ..., "message": ...}``."""

    def __init__(self, status: int, error_code: str, message: str):
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict:
        return {"error_code": self.error_code, "message": self.message}


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)


def required(field: str) -> ApiError:
    # MLflow's server words a missing field this way; Databricks' servers do too.
    return invalid(
        f"Missing value for required parameter '{field}'. "
        "See the API docs for more information about request parameters."
    )


def proto_json(message) -> str:
    """Compact JSON of a response proto, as MLflow's own server would write it."""
    return message_to_json(message, pretty=False)


def _describe_parse_error(message_cls, err: Exception) -> str:
    return f"Invalid request for {message_cls.DESCRIPTOR.name}: {err}"


def parse_json_body(raw: bytes, message_cls):
    """A JSON body into a fresh ``message_cls``; unknown fields and wrong types are refused."""
    message = message_cls()
    if not raw or not raw.strip():
        return message
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise invalid(f"Malformed JSON body for {message_cls.DESCRIPTOR.name}: {err}") from err
    if not isinstance(data, dict):
        raise invalid(f"The body for {message_cls.DESCRIPTOR.name} must be a JSON object")
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except json_format.ParseError as err:
        raise invalid(_describe_parse_error(message_cls, err)) from err
    return message


def parse_query(pairs: Iterable[tuple[str, str]], message_cls, extra: dict | None = None):
    """Query parameters into ``message_cls``, the way MLflow's ``call_endpoint`` sends a GET.

    MLflow puts the request proto's (flat) fields into the query string; a repeated field may
    appear several times. Values arrive as strings: protobuf's JSON parser accepts strings for
    integer, boolean ("true"/"false") and enum fields, so the dict is handed to it unchanged.
    ``extra`` holds path parameters (e.g. ``model_id``) merged in before parsing.
    """
    fields = message_cls.DESCRIPTOR.fields_by_name
    data: dict[str, Any] = {}
    for key, value in pairs:
        field = fields.get(key)
        if field is None:
            raise invalid(
                f"Invalid request for {message_cls.DESCRIPTOR.name}: unknown query parameter "
                f"'{key}'. Known: {sorted(fields)}"
            )
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            raise invalid(f"Query parameter '{key}' is a message and cannot be sent in a query")
        if field.is_repeated:
            data.setdefault(key, []).append(value)
        else:
            data[key] = value
    if extra:
        data.update(extra)
    message = message_cls()
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except json_format.ParseError as err:
        raise invalid(_describe_parse_error(message_cls, err)) from err
    return message


def encode_page_token(offset: int) -> str:
    """Opaque page tokens, like Databricks' (clients must not parse them)."""
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded))["o"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(offset)
        return offset
    except Exception as err:  # noqa: BLE001 - any garbage is the same client error
        raise invalid(f"Invalid page_token '{token}'") from err


class RequestLog:
    """The last requests both fronts saw, for ``GET /__standin/requests``.

    Tests compare what MLflow's client sent with what the Rust client sent, so each record
    holds the method, path, raw query, headers (secrets redacted) and body as text.
    """

    def __init__(self, maxlen: int = 500):
        self._lock = threading.Lock()
        self._records: collections.deque = collections.deque(maxlen=maxlen)
        self._seq = 0

    def add(self, record: dict) -> dict:
        with self._lock:
            self._seq += 1
            record = {"seq": self._seq, "time": round(time.time(), 3), **record}
            self._records.append(record)
            return record

    def snapshot(self, since: int = 0) -> list[dict]:
        with self._lock:
            return [r for r in self._records if r["seq"] > since]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


def body_text(raw: bytes, limit: int) -> str:
    """A body as text for the log: UTF-8 with replacement, cut at ``limit`` bytes."""
    text = raw[:limit].decode("utf-8", errors="replace")
    if len(raw) > limit:
        text += f"...[{len(raw) - limit} more bytes]"
    return text
