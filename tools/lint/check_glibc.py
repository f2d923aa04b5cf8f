"""The newest glibc symbol version a Linux binary needs, against the image it must run in.

    python tools/lint/check_glibc.py BINARY [--max 2.35]     # exit 1 if BINARY needs newer
    python tools/lint/check_glibc.py --self-test

A binary linked against a newer glibc than the image's fails at start ("GLIBC_2.39 not found").
What it needs is the list of version names in its `.gnu.version_r` section (`readelf -V`, as
the dynamic loader reads it). The Databricks image (databricks/Dockerfile,
`databricksruntime/standard:15.4-LTS`) is Ubuntu 22.04: glibc 2.35. retrain.yml builds the
trainer on `ubuntu-22.04` and runs this with `--max 2.35` before pushing the image; the tests
run the self-test and print what the local build needs (a newer host needs newer symbols).
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def needed(binary):
    """Every GLIBC_x.y[.z] version `binary` requires, as tuples (empty for a static binary)."""
    out = subprocess.run(["readelf", "-V", "--wide", str(binary)], capture_output=True, text=True, check=True).stdout
    # Only the "Version needs" section: the versions the binary asks of its libraries.
    needs = out.split("Version needs section", 1)[1] if "Version needs section" in out else ""
    return sorted({tuple(int(p) for p in m.group(1).split(".")) for m in re.finditer(r"Name: GLIBC_([0-9.]+)", needs)})


def version(v):
    return ".".join(map(str, v))


def check(binary, limit):
    versions = needed(binary)
    newest = versions[-1] if versions else None
    print(f"{binary}: needs glibc {version(newest) if newest else 'nothing (static)'}")
    if limit and newest and newest > limit:
        too_new = [version(v) for v in versions if v > limit]
        print(f"{binary}: needs GLIBC {', '.join(too_new)}, newer than {version(limit)}: it will not start there")
        return 1
    return 0


def self_test():
    """A tiny C program needs some GLIBC version: the check must see it and refuse a limit below."""
    with tempfile.TemporaryDirectory() as d:
        src, exe = Path(d, "t.c"), Path(d, "t")
        src.write_text('#include <stdio.h>\nint main(void){puts("x");return 0;}\n')
        subprocess.run(["cc", "-o", str(exe), str(src)], check=True)
        versions = needed(exe)
        assert versions, "a dynamically linked program needs at least one GLIBC version"
        assert check(exe, versions[-1]) == 0, "its own newest version passes"
        assert check(exe, (2, 0)) == 1, "an older limit fails"
    print("self-test passed")
    return 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("binary", nargs="?")
    p.add_argument("--max", help="the newest glibc the target has, e.g. 2.35")
    p.add_argument("--self-test", action="store_true")
    args = p.parse_args(argv)
    if args.self_test:
        return self_test()
    if not args.binary:
        p.error("a binary, or --self-test")
    limit = tuple(int(x) for x in args.max.split(".")) if args.max else None
    return check(args.binary, limit)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
