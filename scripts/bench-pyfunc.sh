#!/usr/bin/env bash
# The MLflow `python_function` flavor's figures (docs/mlflow-pyfunc.md): its loader module and
# the core's wasm module in the venv's Python (PyPI wasmtime), against the native core on the
# same 8,000 test questions in the same run. One JSON object on stdout.
#
#   scripts/bench-pyfunc.sh [--bundle DIR]
#
#   load_s                        StacktagModel: compile the module, load the bundle
#   pyfunc_s, pyfunc_qps          one `predict` of the 8,000 texts (a list; batches of 1,024;
#                                 JSON both ways, the DataFrame built)
#   native_classify_s, native_qps the native core (release), the sum of its 8,000 classifies
#   native_process_s              the native example's whole run (load, JSON in and out)
#   label_mismatches, unsure_mismatches, max_abs_diff   the flavor's answers against the native
#
# --bundle: a bundle directory (default: the 16k bundle scripts/test-edge.sh trains).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bundle_arg "$@"
[ -f "$BUNDLE/manifest.json" ] || die "no bundle at \`$BUNDLE\` (run scripts/test-edge.sh --prepare, or pass --bundle)"

pyfunc_build >&2
cargo build --locked --release --quiet -p edge-classifier --example classify_json >&2
"$CACHE/venv/bin/python" scripts/bench_pyfunc.py "$BUNDLE" "$STACKTAG_PYFUNC_CORE" \
  "$TARGET_DIR/release/examples/classify_json" "$SHARED_DATA/stackoverflow16k/test.csv.gz"
