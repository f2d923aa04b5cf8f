#!/usr/bin/env python3
"""Where a wasm module's code bytes go, by crate: the size of every function body, named by the
module's `name` section (the build's output before wasm-bindgen strips it), summed per crate.

    tools/wasm_sizes.py target/wasm32-unknown-unknown/wasm/edge_classifier_web.wasm [TOP]

A function is put under the first crate its symbol names that is not `core`, `alloc` or `std`
(a generic is counted under the crate that owns the code, `tract_core` for
`<tract_core::ops::X as Op>::eval`). Prints the code, data and file sizes, then the TOP crates.
Standard library only.
"""

import collections
import re
import sys

SKIP = {"core", "alloc", "std", "impl", "dyn", "as", "mut", "const", "fn", "u8", "usize", "str"}


def leb(b, i):
    result = shift = 0
    while True:
        x = b[i]
        i += 1
        result |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return result, i


def skip_limits(b, j):
    flags = b[j]
    j += 1
    _, j = leb(b, j)
    if flags & 1:
        _, j = leb(b, j)
    return j


def read(path):
    data = open(path, "rb").read()
    if data[:4] != b"\0asm":
        sys.exit(f"`{path}` is not a wasm module")
    i, imported, names, bodies, data_bytes = 8, 0, {}, [], 0
    while i < len(data):
        section = data[i]
        size, i = leb(data, i + 1)
        end = i + size
        if section == 2:  # imports: function imports shift the function indices
            n, j = leb(data, i)
            for _ in range(n):
                for _ in range(2):
                    length, j = leb(data, j)
                    j += length
                kind = data[j]
                j += 1
                if kind == 0:
                    _, j = leb(data, j)
                    imported += 1
                elif kind == 1:
                    j = skip_limits(data, j + 1)
                elif kind == 2:
                    j = skip_limits(data, j)
                elif kind == 3:
                    j += 2
        elif section == 10:  # code
            n, j = leb(data, i)
            for _ in range(n):
                length, body = leb(data, j)
                bodies.append(length + body - j)
                j = body + length
        elif section == 11:
            data_bytes += size
        elif section == 0:  # custom: the `name` section's function names
            length, j = leb(data, i)
            if data[j:j + length] == b"name":
                j += length
                while j < end:
                    sub = data[j]
                    sub_size, j = leb(data, j + 1)
                    if sub == 1:
                        n, k = leb(data, j)
                        for _ in range(n):
                            index, k = leb(data, k)
                            length, k = leb(data, k)
                            names[index] = data[k:k + length].decode("utf-8", "replace")
                            k += length
                    j += sub_size
        i = end
    return data, imported, names, bodies, data_bytes


def crate_of(symbol):
    segments = []
    if symbol.startswith("_ZN"):  # legacy mangling: length-prefixed path segments
        j = 3
        while j < len(symbol) and symbol[j].isdigit():
            k = j
            while k < len(symbol) and symbol[k].isdigit():
                k += 1
            n = int(symbol[j:k])
            segments.append(symbol[k:k + n])
            j = k + n
    candidates = []
    for segment in segments:
        candidates += re.findall(r"([a-z_][a-z0-9_]*)(?:\.\.|\$u20\$|$)", segment)
    candidates += re.findall(r"([a-z_][a-z0-9_]*)(?:\.\.|::)", symbol)
    return next((c for c in candidates if c not in SKIP), "?")


def main(path, top=25):
    data, imported, names, bodies, data_bytes = read(path)
    if not names:
        sys.exit(f"`{path}` has no function names (a name section): use the build's output, not wasm-bindgen's")
    by_crate = collections.Counter()
    for k, size in enumerate(bodies):
        by_crate[crate_of(names.get(k + imported, ""))] += size
    code = sum(bodies)
    print(f"code {code} bytes, data {data_bytes}, file {len(data)}")
    for crate, size in by_crate.most_common(top):
        print(f"{crate:24s} {size:9d} {size / code:6.1%}")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: wasm_sizes.py MODULE.wasm [TOP]")
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 25)
