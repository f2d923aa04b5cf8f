#!/usr/bin/env bash
# Builds the edge classifier Spin component with a model bundle baked in, then pre-initialises
# it so that no request ever parses the model.
#
#   STACKTAG_BUNDLE_DIR=DIR scripts/build-edge.sh [--spin] [--no-preinit]
#
#   STACKTAG_BUNDLE_DIR  the bundle directory `trainer train --out DIR` wrote (required);
#                        `tiny-fixture` explicitly asks for edge-classifier/tests/fixtures/tiny
#   --spin               read `max_body_bytes` from the Spin variable (what spin.toml's build
#                        runs); without it, from the STACKTAG_MAX_BODY_BYTES env var, which is
#                        what `wasmtime serve` can give (it has no Spin variables)
#   --no-preinit         skip `wasmtime wizer` (the model is then parsed once per instance)
#
# Output: target/wasm32-wasip2/release/edge_classifier_spin.wasm (spin.toml's `source`).
# Needs wasmtime-cli 48 for the pre-init step (scripts/setup.sh caches it; STACKTAG_WASMTIME
# overrides the path).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

features=()
preinit=1
for arg in "$@"; do
  case "$arg" in
    --spin) features=(--features spin-variables) ;;
    --no-preinit) preinit=0 ;;
    *) echo "error: unknown argument \`$arg\` (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ -z "${STACKTAG_BUNDLE_DIR:-}" ]; then
  echo "error: set STACKTAG_BUNDLE_DIR to a bundle directory (\`trainer train --out DIR\`)," \
    "or to \`tiny-fixture\` for the tiny test fixture" >&2
  exit 2
fi

# Size and speed of the component only, so set here rather than in the shared release profile:
# opt-level "z" puts the whole code (tract, tokenizers, SDK) at 8.4 MB of wasm, against 10.6 MB
# at "s" and about 16 at 3, with no measurable cost per request (the model is tiny and SIMD
# kernels do the work); fat LTO and one codegen unit shave more; simd128 turns on tract's wasm
# SIMD kernels.
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${STACKTAG_EDGE_OPT_LEVEL:-z}"
export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_STRIP=true
export CARGO_PROFILE_RELEASE_PANIC=abort
export CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-C target-feature=+simd128"

cargo build --locked --release --target wasm32-wasip2 -p edge-classifier-spin "${features[@]}"

# Cargo copies its plain build from deps/ to this path on every run, so wizer always starts from
# the plain component, and a rerun pre-initialises again (about 15 s).
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/wasm32-wasip2/release/edge_classifier_spin.wasm"
if [ "$preinit" = 0 ]; then
  echo "built (not pre-initialised): $OUT ($(stat -c %s "$OUT") bytes)"
  exit 0
fi
WASMTIME="${STACKTAG_WASMTIME:-${STACKTAG_CACHE:-$HOME/.cache/stacktag}/tools/bin/wasmtime}"
if ! [ -x "$WASMTIME" ]; then
  echo "error: wasmtime not found at \`$WASMTIME\`: run scripts/setup.sh, set STACKTAG_WASMTIME," \
    "or build with --no-preinit" >&2
  exit 1
fi
# --keep-init-func=true: without it wizer's output is not a valid component (TOOLCHAIN.md).
"$WASMTIME" wizer -Scli -Shttp --keep-init-func=true "$OUT" -o "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "built and pre-initialised: $OUT ($(stat -c %s "$OUT") bytes)"

# Wasmtime maps the snapshot copy-on-write into a new instance (what keeps a fresh request at a
# couple of ms) only while its initialised span, lowest to highest non-zero byte, is under
# 16 MiB or at least half data; otherwise it copies it into every instance (11-25 ms a request
# here). The span grows with the bundle, so say where it stands.
python3 - "$OUT" <<'PY' >&2 || echo "warning: could not read the snapshot's data segments" >&2
import sys

def leb(b, i, signed=False):
    value = shift = 0
    while True:
        byte = b[i]; i += 1; value |= (byte & 0x7F) << shift; shift += 7
        if byte < 0x80:
            if signed and byte & 0x40: value -= 1 << shift
            return value, i

def sections(b, i=8):
    while i < len(b):
        sid, n, i = b[i], *leb(b, i + 1)
        yield sid, b[i:i + n]; i += n

component = open(sys.argv[1], "rb").read()
core = next(body for sid, body in sections(component) if sid == 1)  # the main core module
data = next(body for sid, body in sections(core) if sid == 11)
count, j = leb(data, 0)
lo, hi, total = None, 0, 0
for _ in range(count):
    flag, j = leb(data, j)
    if flag == 2: _, j = leb(data, j)  # explicit memory index
    offset = None
    if flag in (0, 2): offset, j = leb(data, j + 1, signed=True); j += 1  # i32.const N end
    size, j = leb(data, j); j += size
    if offset is not None and size:
        total += size; lo = offset if lo is None else min(lo, offset); hi = max(hi, offset + size)
span = hi - lo
mapped = span < 16 << 20 or span < 2 * total
print(f"snapshot: {total} bytes of data over a span of {span} bytes: "
      + ("mapped copy-on-write" if mapped else
         "warning: over 16 MiB and under half data, so wasmtime copies it into every instance"))
PY
