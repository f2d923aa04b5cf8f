"""Stacktag's model as an MLflow ``python_function``: text in, the edge's answer out.

MLflow imports this module as the flavor's ``loader_module`` (it sits in the model's ``code/``
directory) and calls ``_load_pyfunc(path)`` with the model's directory: the bundle
(``manifest.json``, ``model.onnx``, ``tokenizer.json``) and ``code/stacktag_core.wasm``, the
same Rust inference core the edge and the browser run, compiled to a plain WebAssembly module
(crate ``edge-classifier-python``). PyPI ``wasmtime`` runs it, so no Python code here
normalises, tokenizes or scores: every answer is the core's, as JSON of the edge's own wire
type (docs/mlflow-pyfunc.md).

``predict`` takes a DataFrame with a ``text`` column (or a single column), a Series, a list of
strings or one string, and returns one row per text with the fields of the edge's
``Prediction``: ``label``, ``probabilities`` (every label's, in the model's order), ``unsure``
(``None``, ``"little_evidence"`` or ``"low_confidence"``), ``truncated``, ``explanation`` and
``model``.
"""

import json
import os

import pandas as pd
import wasmtime

# The core's file, in the model's `code/` directory beside this module.
CORE = "stacktag_core.wasm"
# The bundle's files the core reads.
BUNDLE_FILES = ("manifest.json", "model.onnx", "tokenizer.json")
# Texts per request to the core (the module's own limit).
BATCH = 1024
# The columns of `predict`'s answer: the edge's `Prediction`, label first (what
# `mlflow.pyfunc.spark_udf(..., result_type="string")` returns).
COLUMNS = ["label", "probabilities", "unsure", "truncated", "explanation", "model"]


class StacktagError(Exception):
    """An answer of the core's that is an error: its API ``code`` and ``message``."""

    def __init__(self, code, message):
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


class StacktagModel:
    """One loaded bundle in its own wasmtime instance of the core."""

    def __init__(self, bundle_dir, core_path):
        engine = wasmtime.Engine()
        self._store = wasmtime.Store(engine)
        module = wasmtime.Module.from_file(engine, core_path)
        exports = wasmtime.Instance(self._store, module, []).exports(self._store)
        self._memory = exports["memory"]
        self._fn = {name: exports[f"stacktag_{name}"] for name in ("alloc", "free", "load", "call", "answer", "answer_len")}
        files = []
        for name in BUNDLE_FILES:
            path = os.path.join(bundle_dir, name)
            try:
                with open(path, "rb") as f:
                    files.append(f.read())
            except OSError as e:
                raise StacktagError("invalid_bundle", f"bundle file `{name}` cannot be read: {e}") from e
        status = self._invoke("load", files)
        self.manifest = self._answer(status)

    def predict(self, model_input, params=None):
        """The core's answer for each text of ``model_input``, one row each, in order."""
        texts = _texts(model_input)
        rows = []
        for start in range(0, len(texts), BATCH):
            body = json.dumps({"texts": texts[start : start + BATCH]}).encode()
            status = self._invoke("call", [b"POST", b"/classify", b"application/json", body])
            try:
                rows.extend(self._answer(status)["predictions"])
            except StacktagError as e:
                # The core names `texts[i]` of this batch; the caller's row is start + i.
                raise StacktagError(e.code, _shift_index(e.message, start)) from None
        # Column by column: built from records, pandas would turn a sure answer's `unsure`
        # (None) into NaN.
        return pd.DataFrame({column: pd.Series([row.get(column) for row in rows], dtype=object) for column in COLUMNS})

    def _invoke(self, name, buffers):
        """Calls ``stacktag_<name>`` with each of ``buffers`` as (pointer, length)."""
        args, owned = [], []
        try:
            for data in buffers:
                ptr = self._fn["alloc"](self._store, len(data)) if data else 0
                if data:
                    self._memory.write(self._store, data, ptr)
                    owned.append((ptr, len(data)))
                args += [ptr, len(data)]
            return self._fn[name](self._store, *args)
        finally:
            for ptr, length in owned:
                self._fn["free"](self._store, ptr, length)

    def _answer(self, status):
        """The last answer's JSON, or its error raised."""
        ptr = self._fn["answer"](self._store)
        length = self._fn["answer_len"](self._store)
        answer = json.loads(self._memory.read(self._store, ptr, ptr + length))
        if status != 200:
            error = answer.get("error", {})
            raise StacktagError(error.get("code", "internal"), error.get("message", f"status {status}"))
        return answer


def _texts(model_input):
    """The texts of ``model_input``, as a list of ``str``; anything else is named and refused."""
    if isinstance(model_input, pd.DataFrame):
        if "text" in model_input.columns:
            values = model_input["text"]
        elif len(model_input.columns) == 1:
            values = model_input.iloc[:, 0]
        else:
            raise StacktagError(
                "invalid_request",
                f"the DataFrame has columns {list(model_input.columns)}; give a `text` column",
            )
        values = values.tolist()
    elif isinstance(model_input, str):
        values = [model_input]
    elif isinstance(model_input, dict) and "text" in model_input:
        text = model_input["text"]
        values = [text] if isinstance(text, str) else list(text)
    elif isinstance(model_input, pd.Series) or hasattr(model_input, "tolist"):
        values = model_input.tolist()
    elif isinstance(model_input, (list, tuple)):
        values = list(model_input)
    else:
        raise StacktagError("invalid_request", f"cannot read texts from a `{type(model_input).__name__}`")
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise StacktagError("invalid_request", f"`text[{i}]` is a `{type(value).__name__}`, not a string")
    return values


def _shift_index(message, start):
    """``message`` with its ``texts[i]`` counted from the caller's first row."""
    prefix = "`texts["
    if start == 0 or not message.startswith(prefix):
        return message
    end = message.find("]`", len(prefix))
    index = message[len(prefix) : end]
    if end < 0 or not index.isdigit():
        return message
    return f"{prefix}{int(index) + start}{message[end:]}"


def _load_pyfunc(path, model_config=None):
    """MLflow's entry point: the model in ``path`` (the directory holding ``MLmodel``); it takes
    no ``model_config``."""
    return StacktagModel(path, os.path.join(path, "code", CORE))
