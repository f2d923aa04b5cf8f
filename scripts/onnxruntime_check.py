"""Cross-checks a Stacktag model.onnx outside tract: onnx.checker (full check) must accept it,
and onnxruntime must reproduce the serving core's outputs.

usage: onnxruntime_check.py MODEL.onnx CASES.json [TOLERANCE]

CASES.json is a list of cases written by the Rust test from the serving core (tract):
  {"inputs": {"input_ids": [int, ...]}, "probabilities": [float, ...],
   "token_contributions": [float, ...], "pair_contributions": [float, ...]}
or, for a graph of distinct features, "inputs": {"feature_rows": [...]} (format 4) or
{"feature_rows": [...], "feature_counts": [...]} (format 3), with "of_position": [int, ...]
(each position's feature, as the core counted them) and "counts": [float, ...] (each feature's
count).
The contributions (optional) are the core's `Scores`: each token's, then each adjacent pair's,
contribution to each label's logit, row-major, i.e. the graph's `contributions` rows (their
first `labels` columns) times `scales`; a counted feature's share is split evenly over its
positions. For every case onnxruntime must give:
  - the same probabilities and the same top label (within TOLERANCE, default 1e-5);
  - `contributions` and `scales` whose products match the core's contributions, when the case
    has them (within TOLERANCE, relative to the largest contribution of the case);
  - and, for every case, contributions that explain the probabilities: the logits they sum to
    differ from log(probabilities) by one per-label offset (the model's bias) shared by all
    cases, which is what makes the explanation exact.
Exits 1 naming the first case that differs, 0 with a JSON summary otherwise.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

OUTPUTS = ["probabilities", "contributions", "scales"]
DTYPES = {"input_ids": np.int64, "feature_rows": np.int64, "feature_counts": np.float32}
# Probabilities below this carry too few significant bits for their log to check a logit.
MIN_PROBABILITY = 1e-12
# log(p) of an f32 probability, against f32 sums of f16 table rows: 1e-3 in logits.
LOGIT_TOLERANCE = 1e-3


def scaled_contributions(contributions, scales, features, labels):
    """The per-feature contributions: the rows' label columns times their scale."""
    if contributions.shape[0] != features or contributions.shape[1] < labels:
        raise ValueError(f"contributions has shape {contributions.shape}, expected "
                         f"[{features}, >= {labels}]")
    if scales.size not in (1, features):
        raise ValueError(f"scales has {scales.size} values, expected 1 or {features}")
    return contributions[:, :labels] * scales.reshape(-1, 1)


def main() -> int:
    model_path, cases_path = sys.argv[1], sys.argv[2]
    tolerance = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    with open(cases_path) as f:
        cases = json.load(f)
    worst = worst_contribution = 0.0
    compared_contributions = 0
    offsets = []  # per case: log(p) - summed contributions, relative to label 0
    for i, case in enumerate(cases):
        feeds = {name: np.asarray(values, dtype=DTYPES[name]) for name, values in case["inputs"].items()}
        probs, contributions, scales = session.run(OUTPUTS, feeds)
        expected = np.asarray(case["probabilities"], dtype=np.float32)
        if probs.shape != expected.shape:
            print(f"case {i}: onnxruntime gives {probs.shape[0]} probabilities, the core {expected.shape[0]}")
            return 1
        diff = float(np.max(np.abs(probs - expected)))
        worst = max(worst, diff)
        if diff > tolerance or int(np.argmax(probs)) != int(np.argmax(expected)):
            print(f"case {i}: onnxruntime {probs.tolist()} vs core {expected.tolist()} (max diff {diff:.3e})")
            return 1

        labels = expected.size
        counted = "of_position" in case
        features = feeds["feature_rows"].size if counted else 2 * feeds["input_ids"].size - 1
        try:
            scaled = scaled_contributions(contributions, scales, features, labels)
        except ValueError as e:
            print(f"case {i}: {e}")
            return 1
        per_position = scaled
        if counted:
            of = np.asarray(case["of_position"], dtype=np.int64)
            counts = np.asarray(case["counts"], dtype=np.float32)
            per_position = scaled[of] / counts[of].reshape(-1, 1)
        if "token_contributions" in case or "pair_contributions" in case:
            core = np.concatenate([
                np.asarray(case.get("token_contributions", []), dtype=np.float32),
                np.asarray(case.get("pair_contributions", []), dtype=np.float32),
            ])
            if core.size != per_position.size:
                print(f"case {i}: onnxruntime gives {per_position.size} contributions, the core {core.size}")
                return 1
            scale = max(1.0, float(np.max(np.abs(core))))
            diff = float(np.max(np.abs(per_position.reshape(-1) - core))) / scale
            worst_contribution = max(worst_contribution, diff)
            if diff > tolerance:
                print(f"case {i}: contributions differ from the core's by {diff:.3e} (relative)")
                return 1
            compared_contributions += 1

        kept = probs > MIN_PROBABILITY
        if kept[0]:
            logits = scaled.astype(np.float64).sum(axis=0)
            offset = np.log(probs.astype(np.float64)) - logits
            offsets.append(np.where(kept, offset - offset[0], np.nan))

    # The same bias explains every case: contributions x scales are the whole logit.
    spread = 0.0
    if offsets:
        table = np.vstack(offsets)
        spread = float(np.nanmax(np.nanmax(table, axis=0) - np.nanmin(table, axis=0)))
        if spread > LOGIT_TOLERANCE:
            case = int(np.nanargmax(np.nanmax(np.abs(table - np.nanmedian(table, axis=0)), axis=1)))
            print(f"case {case}: contributions x scales do not explain the probabilities "
                  f"(logit offsets spread {spread:.3e} across cases)")
            return 1
    print(json.dumps({
        "cases": len(cases),
        "max_abs_diff": worst,
        "contributions_compared": compared_contributions,
        "max_contribution_diff": worst_contribution,
        "logit_offset_spread": spread,
        "onnxruntime": ort.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
