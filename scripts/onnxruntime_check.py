"""Cross-checks a Stacktag model.onnx outside tract: onnx.checker (full check) must accept it,
and onnxruntime must reproduce the expected outputs.

usage: onnxruntime_check.py MODEL.onnx CASES.json [TOLERANCE]

CASES.json is a list of {"ids": [int, ...], "probabilities": [float, ...]} written by the
Rust test from the serving core. Exits 1 naming the first case that differs.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main() -> int:
    model_path, cases_path = sys.argv[1], sys.argv[2]
    tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    with open(cases_path) as f:
        cases = json.load(f)
    worst = 0.0
    for i, case in enumerate(cases):
        ids = np.asarray(case["ids"], dtype=np.int64)
        (probs,) = session.run(["probabilities"], {"input_ids": ids})
        expected = np.asarray(case["probabilities"], dtype=np.float32)
        diff = float(np.max(np.abs(probs - expected)))
        worst = max(worst, diff)
        if diff > tolerance or int(np.argmax(probs)) != int(np.argmax(expected)):
            print(f"case {i}: onnxruntime {probs.tolist()} vs core {expected.tolist()} (max diff {diff:.3e})")
            return 1
    print(json.dumps({"cases": len(cases), "max_abs_diff": worst, "onnxruntime": ort.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
