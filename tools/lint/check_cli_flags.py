"""Every `trainer` / `registry-sync` call in the delivery files and scripts uses a subcommand
and flags the binaries really have: a renamed or missing flag fails here, offline, rather than
in a production workflow run.

    python tools/lint/check_cli_flags.py BIN_DIR FILE...

Calls are found as `trainer SUB` / `registry-sync SUB` (also through `$TRAINER` / `$SYNC`,
the scripts' variables), with backslash continuations joined; the flags are the `--words`
that follow on the same command, up to a pipe, `;`, `&&` or a redirection. Databricks'
job.json passes its task parameters to `trainer retrain` (databricks/run_trainer.py); a
Kubernetes container whose image is a Stacktag binary's passes it `args` (first the
subcommand, then `--flag=value` or `--flag value`).
Each is checked against `BIN SUB --help`. Prints one line per finding, exits 1 on any.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

BINARIES = {"trainer": "trainer", "$TRAINER": "trainer", "registry-sync": "registry-sync", "$SYNC": "registry-sync"}
CALL = re.compile(r'(?:^|[\s/"`(])(trainer|registry-sync|\$TRAINER|\$SYNC)"?\s+([a-z][a-z-]*)\b(.*)')
STOP = re.compile(r"\||;|&&|>|`")
FLAG = re.compile(r"(?:^|\s)(--[a-z][a-z0-9-]*)")

_help: dict[tuple[str, str], str | None] = {}


def help_text(bin_dir: Path, binary: str, sub: str) -> str | None:
    """`BIN SUB --help`, or None if SUB is not one of its subcommands. A subcommand with its own
    subcommands (`trainer fetch api|dump`) has their flags too: a call names them after its own."""
    key = (binary, sub)
    if key not in _help:
        out = subprocess.run([bin_dir / binary, sub, "--help"], capture_output=True, text=True)
        text = out.stdout if out.returncode == 0 else None
        if text and "Commands:" in text:
            section = text.split("Commands:", 1)[1].split("\n\n", 1)[0]
            for nested in (line.split()[0] for line in section.splitlines() if line.strip()):
                if nested != "help":
                    more = subprocess.run([bin_dir / binary, sub, nested, "--help"], capture_output=True, text=True)
                    text += more.stdout if more.returncode == 0 else ""
        _help[key] = text
    return _help[key]


def subcommands(bin_dir: Path, binary: str) -> set[str]:
    out = subprocess.run([bin_dir / binary, "--help"], capture_output=True, text=True, check=True).stdout
    section = out.split("Commands:", 1)[1].split("\n\n", 1)[0]
    return {line.split()[0] for line in section.splitlines() if line.strip()}


def logical_lines(text: str):
    """(first line number, line) with backslash continuations joined, comments dropped."""
    buf, start = "", 0
    for n, line in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        yield start, buf + line
        buf = ""
    if buf:
        yield start, buf


def calls(path: Path):
    """(line, binary, subcommand, flags) for every call in `path`."""
    text = path.read_text()
    if path.name == "job.json":
        for task in json.loads(text).get("tasks", []):
            params = task.get("spark_python_task", {}).get("parameters", [])
            yield 0, "trainer", "retrain", [p for p in params if p.startswith("--")]
        return
    if path.suffix in (".yaml", ".yml") and "kind: Deployment" in text:
        import yaml  # only the Kubernetes manifests need it

        for doc in yaml.safe_load_all(text):
            spec = ((doc or {}).get("spec") or {}).get("template", {}).get("spec") or {}
            for c in spec.get("containers") or []:
                binary = next((b for b in set(BINARIES.values()) if f"stacktag-{b}" in str(c.get("image"))), None)
                args = [str(a) for a in c.get("args") or []]
                if binary and args:
                    yield 0, binary, args[0], [a.split("=", 1)[0] for a in args[1:] if a.startswith("--")]
        return
    for n, line in logical_lines(text):
        for m in CALL.finditer(line):
            rest = STOP.split(m.group(3), 1)[0]
            yield n, BINARIES[m.group(1)], m.group(2), FLAG.findall(rest)


def main() -> int:
    bin_dir, files = Path(sys.argv[1]), [Path(f) for f in sys.argv[2:]]
    known = {b: subcommands(bin_dir, b) for b in set(BINARIES.values())}
    findings, checked = [], 0
    for path in files:
        for n, binary, sub, flags in calls(path):
            if sub not in known[binary]:
                continue  # prose ("registry-sync serves ..."), not a call
            text = help_text(bin_dir, binary, sub)
            for flag in flags:
                checked += 1
                if text is None or not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text):
                    findings.append(f"{path}:{n}: `{binary} {sub}` has no flag `{flag}`")
    for f in findings:
        print(f)
    if not findings:
        print(f"{checked} flags in {len(files)} files, all known to the binaries")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
