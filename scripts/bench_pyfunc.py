"""scripts/bench-pyfunc.sh's measurement: bench_pyfunc.py BUNDLE CORE CLASSIFY_JSON TEST_CSV_GZ."""

import csv
import gzip
import json
import os
import subprocess
import sys
import time

bundle, core, classify_json, test_csv = sys.argv[1:5]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "edge-classifier", "python"))
import stacktag_pyfunc  # noqa: E402 (the loader module, from the source tree)

with gzip.open(test_csv, "rt", encoding="utf-8", newline="") as f:
    texts = [row["text"] for row in csv.DictReader(f)]

start = time.perf_counter()
model = stacktag_pyfunc.StacktagModel(bundle, core)
load_s = time.perf_counter() - start
start = time.perf_counter()
answer = model.predict(texts)
pyfunc_s = time.perf_counter() - start

start = time.perf_counter()
native = json.loads(
    subprocess.run([classify_json, bundle], input=json.dumps(texts).encode(), capture_output=True, check=True).stdout
)
native_process_s = time.perf_counter() - start
native_classify_s = sum(native["classify_ms"]) / 1000

labels = unsure = 0
max_diff = 0.0
for row, expected in zip(answer.itertuples(), native["predictions"]):
    labels += row.label != expected["label"]
    unsure += row.unsure != expected.get("unsure")
    for got, want in zip(row.probabilities, expected["probabilities"]):
        max_diff = max(max_diff, abs(got["probability"] - want["probability"]))

print(
    json.dumps(
        {
            "questions": len(texts),
            "load_s": round(load_s, 3),
            "pyfunc_s": round(pyfunc_s, 3),
            "pyfunc_qps": round(len(texts) / pyfunc_s),
            "native_classify_s": round(native_classify_s, 3),
            "native_qps": round(len(texts) / native_classify_s),
            "native_process_s": round(native_process_s, 3),
            "label_mismatches": labels,
            "unsure_mismatches": unsure,
            "max_abs_diff": max_diff,
        }
    )
)
