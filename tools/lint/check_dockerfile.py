"""Checks a Dockerfile built from the repository root offline (there is no Docker engine here).

    python tools/lint/check_dockerfile.py DOCKERFILE [--built PATH]... [--runs PATH]...

Every `${VAR}` is a declared ARG; every COPY source (after ARG defaults) exists, or is one of
the `--built` paths a build step makes before `docker build` (cargo's outputs); the
`DOCKERFILE.dockerignore` beside it keeps every source; every `--runs` path is some COPY's
destination (where the image's entrypoint or its users look). Prints `file: message` per
finding; exit 1 on any. tools/lint/check_databricks.py checks the Databricks image with it.
"""

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def problems(path, built=(), runs=()):
    """Findings for `path`, and the set of COPY destinations."""
    out = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        return [f"{path}: cannot read: {e}"], set()
    args, copies = {}, []
    for n, line in enumerate(lines, 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", line):
            if var not in args:
                out.append(f"{path}: line {n}: `${var}` is used before an ARG declares it")
        if words[0] == "ARG":
            name, _, default = words[1].partition("=")
            args[name] = default
        elif words[0] in ("COPY", "ADD"):
            paths = [w for w in words[1:] if not w.startswith("--")]
            srcs = [re.sub(r"\$\{?([A-Za-z_]\w*)\}?", lambda m: args.get(m.group(1), ""), s) for s in paths[:-1]]
            copies.append((n, srcs, paths[-1]))
    if not copies:
        out.append(f"{path}: copies nothing into the image")
    ignore = Path(path).with_name(Path(path).name + ".dockerignore")
    kept = [l[1:] for l in ignore.read_text().splitlines() if l.startswith("!")] if ignore.is_file() else None
    dests = set()
    for n, srcs, dest in copies:
        dests.add(dest)
        for src in srcs:
            if not src:
                out.append(f"{path}: line {n}: a COPY source is empty (an ARG without a default?)")
                continue
            if src not in built and not (ROOT / src).exists():
                out.append(f"{path}: line {n}: COPY source `{src}` does not exist (nor is it a --built path)")
            if kept is not None and src not in kept:
                out.append(f"{path}: line {n}: COPY source `{src}` is excluded by {ignore.name}")
    for want in runs:
        if want not in dests:
            out.append(f"{path}: no COPY puts anything at `{want}`")
    return out, dests


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dockerfile")
    p.add_argument("--built", action="append", default=[])
    p.add_argument("--runs", action="append", default=[])
    a = p.parse_args(argv)
    found, _ = problems(a.dockerfile, a.built, a.runs)
    for f in found:
        print(f)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
