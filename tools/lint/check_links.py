"""Every link and repository path the tracked files write down exists: a moved or deleted file
fails here, not in a reader's hands.

    python3 tools/lint/check_links.py [--root DIR]
    python3 tools/lint/check_links.py --self-test

Checks, over the files `git ls-files` lists (Python 3 standard library only):

- Markdown links. Each relative `[text](path)` and `[text](path#anchor)` in a tracked `*.md`
  resolves, from the file's own directory, to a tracked file or directory; an `#anchor` into a
  `.md` file matches one of its headings (GitHub's slugs: lower case, punctuation other than
  `-` and spaces dropped, each space a `-`, `-1`, `-2`... for repeats) or an `<a id>` in it.
  URLs, `mailto:` and links inside code are not checked.
- Repository paths in text. In every tracked md, rs, sh, py, mjs, js, toml, yml, yaml and json
  file (and extensionless scripts), each token that starts with a top-level tracked directory
  and a `/` (`scripts/build-edge.sh`, `docs/toolchain.md`) must exist: from the repository
  root, else from the file's directory or its crate root (the nearest directory above it with
  a Cargo.toml). Tokens holding placeholders or globs (`<` `>` `*` `{` `}` `$` `…` `...`, or an
  upper-case part such as `DIR`), URLs and generated paths (`target/`, `.stacktag/`,
  `node_modules/`) are skipped, as are lockfiles, the vendored CRD schema and test fixtures.
- Outside files. No file outside `docs/` names the toolchain notes kept beside the
  repository, and no file points into the shared folder beside it: what the project needs
  from there is in docs/toolchain.md.

Prints each finding as `FILE:LINE: what is wrong` and exits 1; otherwise one summary line.
`--self-test` plants a broken link, a missing path and an outside reference in a temporary
repository and checks that each is reported (and that a clean one passes).
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TEXT_SUFFIXES = {".md", ".rs", ".sh", ".py", ".mjs", ".js", ".toml", ".yml", ".yaml", ".json"}
SKIP_NAMES = {"Cargo.lock", "package-lock.json"}
SKIP_PREFIXES = ("deploy/kubernetes/schema/", "edge-classifier/tests/fixtures/")
GENERATED = {"target", ".stacktag", "node_modules"}  # build output, local state, npm installs
# Tokens that look like repository paths and are not: a GitHub repository whose owner shares a
# folder's name, and a path under the set-up cache (~/.cache/stacktag) joined in code.
NOT_PATHS = {"prometheus/client_rust", "tools/bin/wasmtime"}
PLACEHOLDER_CHARS = ("<", ">", "*", "{", "}", "$", "…", "...", "[")
UPPER_PART = re.compile(r"^[A-Z][A-Z0-9_]+$")
TRAILING = ".,:;)]'\"`"
# Written in two halves so that this file does not trip its own check.
OUTSIDE_NOTES = "TOOLCHAIN" + ".md"
SHARED_DOCS = "shared" + "/docs"
UP_SHARED_DOCS = "../" + SHARED_DOCS

MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:[^>]*\s)?(?:id|name)=\"([^\"]+)\"", re.I)
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def git_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p and (root / p).exists()]


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def is_text_source(rel: str, text: str) -> bool:
    """Whether `rel` is one of the files whose repository paths are checked."""
    name = rel.rsplit("/", 1)[-1]
    if name in SKIP_NAMES or rel.startswith(SKIP_PREFIXES):
        return False
    suffix = Path(name).suffix
    return suffix in TEXT_SUFFIXES or (suffix == "" and text.startswith("#!"))


def outside_code_lines(text: str):
    """(line number, line) of a markdown file, fenced code blocks left out."""
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield n, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a markdown file offers: its headings' slugs and its `<a id>`s."""
    found, seen = set(), {}
    for _, line in outside_code_lines(text):
        m = HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
        found.update(HTML_ANCHOR.findall(line))
    return found


class Checker:
    def __init__(self, root: Path):
        self.root = root
        self.files = git_files(root)
        self.tracked = set(self.files)
        self.dirs = {str(Path(p).parent.as_posix()) for p in self.files}
        for p in list(self.dirs):
            while "/" in p:
                p = p.rsplit("/", 1)[0]
                self.dirs.add(p)
        tops = sorted({p.split("/", 1)[0] for p in self.files if "/" in p}, key=len, reverse=True)
        self.path_token = re.compile(
            r"(?<![\w.\-/$~:@])(?:\./)?((?:" + "|".join(map(re.escape, tops)) + r")/[^\s`'\"(),;|=\\]*)"
        )
        self.texts: dict[str, str | None] = {}
        self._anchors: dict[str, set[str]] = {}
        self.findings: list[str] = []
        self.links = self.paths = 0

    def text(self, rel: str) -> str | None:
        if rel not in self.texts:
            self.texts[rel] = read_text(self.root / rel)
        return self.texts[rel]

    def exists(self, rel: str) -> bool:
        rel = rel.rstrip("/")
        return rel in self.tracked or rel in self.dirs or rel == ""

    def resolve(self, base: str, target: str) -> str | None:
        """`target` relative to the directory `base` (repository-relative), normalised; None
        if it leaves the repository."""
        parts = [] if base in ("", ".") else base.split("/")
        for part in target.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    return None
                parts.pop()
            else:
                parts.append(part)
        return "/".join(parts)

    def anchors_of(self, rel: str) -> set[str]:
        if rel not in self._anchors:
            self._anchors[rel] = anchors(self.text(rel) or "")
        return self._anchors[rel]

    def find(self, rel: str, n: int, what: str) -> None:
        self.findings.append(f"{rel}:{n}: {what}")

    def check_markdown_links(self, rel: str, text: str) -> None:
        here = str(Path(rel).parent.as_posix())
        for n, line in outside_code_lines(text):
            for m in MD_LINK.finditer(INLINE_CODE.sub("", line)):
                target = m.group(1)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                    continue  # http:, https:, mailto:
                self.links += 1
                path, _, anchor = target.partition("#")
                dest = rel if path == "" else self.resolve(here, path)
                if dest is None or not self.exists(dest):
                    self.find(rel, n, f"link `{target}`: `{path}` does not exist")
                    continue
                if anchor and dest.endswith(".md") and anchor not in self.anchors_of(dest):
                    self.find(rel, n, f"link `{target}`: `{dest}` has no heading or anchor `#{anchor}`")

    def crate_root(self, rel: str) -> str | None:
        parts = rel.split("/")[:-1]
        while parts:
            if "/".join(parts + ["Cargo.toml"]) in self.tracked:
                return "/".join(parts)
            parts.pop()
        return None

    def check_paths(self, rel: str, text: str) -> None:
        here = str(Path(rel).parent.as_posix())
        crate = self.crate_root(rel)
        for n, line in enumerate(text.splitlines(), 1):
            for m in self.path_token.finditer(line):
                token = m.group(1)
                if any(c in token for c in PLACEHOLDER_CHARS):
                    continue
                if rel.endswith(".md") and line[max(0, m.start() - 2) : m.start()] == "](":
                    continue  # a markdown link's target: checked as a link
                word_start = max(line.rfind(" ", 0, m.start()), line.rfind("\t", 0, m.start())) + 1
                if "://" in line[word_start : m.start()]:
                    continue  # part of a URL
                # `path#anchor`, `path:LINE` and `dir:name` all name `path`.
                token = re.split(r"[#:]", token, maxsplit=1)[0].rstrip(TRAILING)
                parts = token.split("/")
                if token in NOT_PATHS or any(UPPER_PART.match(p) or p in GENERATED for p in parts):
                    continue
                self.paths += 1
                candidates = [token, self.resolve(here, token)]
                if crate is not None:
                    candidates.append(self.resolve(crate, token))
                if not any(c is not None and self.exists(c) for c in candidates):
                    self.find(rel, n, f"`{token}` does not exist in the repository")

    def check_outside_references(self, rel: str, text: str) -> None:
        for n, line in enumerate(text.splitlines(), 1):
            if UP_SHARED_DOCS in line:
                self.find(rel, n, f"points outside the repository (`{UP_SHARED_DOCS}`): use docs/ instead")
            elif not rel.startswith("docs/") and (OUTSIDE_NOTES in line or SHARED_DOCS in line):
                word = OUTSIDE_NOTES if OUTSIDE_NOTES in line else SHARED_DOCS
                self.find(rel, n, f"names `{word}`, which is not in the repository: point at docs/toolchain.md")

    def run(self) -> int:
        checked = 0
        for rel in self.files:
            text = self.text(rel)
            if text is None:
                continue
            checked += 1
            self.check_outside_references(rel, text)
            if rel.endswith(".md"):
                self.check_markdown_links(rel, text)
            if is_text_source(rel, text):
                self.check_paths(rel, text)
        for f in self.findings:
            print(f)
        if not self.findings:
            print(f"{checked} files, {self.links} markdown links and {self.paths} repository paths checked: all resolve")
        return 1 if self.findings else 0


def self_test() -> int:
    """Plants one of each kind of fault in a throwaway repository and expects each reported.
    Its folders are named unlike this repository's, so that this file passes its own check."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {
            "manual/guide.md": "# Guide\n\n## Two words\n\nSee [the intro](intro.md#two-words).\n",
            "manual/intro.md": "# Intro\n\n## Two words\n\n<a id=\"row\"></a>\n",
            "bin/run.sh": "#!/bin/sh\n# see manual/guide.md and bin/run.sh:1\n",
            "README.md": "[guide](manual/guide.md#guide), [row](manual/intro.md#row), `bin/<NAME>.sh`\n",
        }

        def write(extra: dict[str, str]) -> None:
            for rel, body in {**files, **extra}.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(body)
            subprocess.run(["git", "-C", tmp, "init", "-q"], check=True)
            subprocess.run(["git", "-C", tmp, "add", "-A"], check=True)

        write({})
        print("self-test: a clean tree:")
        if Checker(root).run() != 0:
            print("self-test FAILED: a clean tree was reported")
            return 1
        planted = {
            "manual/bad.md": "[gone](missing.md) and [anchor](intro.md#no-such-heading)\n",
            "bin/bad.sh": "#!/bin/sh\n# reads bin/not-here.sh\n",
            "core/notes.rs": f"// see {OUTSIDE_NOTES}\n",
        }
        write(planted)
        print("self-test: the same tree with four planted faults:")
        broken = Checker(root)
        code = broken.run()
        want = [
            "manual/bad.md:1: link `missing.md`",
            "manual/bad.md:1: link `intro.md#no-such-heading`",
            "bin/bad.sh:2: `bin/not-here.sh` does not exist",
            f"core/notes.rs:1: names `{OUTSIDE_NOTES}`",
        ]
        missed = [w for w in want if not any(f.startswith(w) for f in broken.findings)]
        if code != 1 or missed or len(broken.findings) != len(want):
            print(f"self-test FAILED: missed {missed}, got {broken.findings}")
            return 1
        print("self-test passed: the clean tree passes, and each planted fault is reported")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="the repository (default: the one holding the working directory)")
    parser.add_argument("--self-test", action="store_true", help="check the checker on planted faults")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    root = args.root
    if root is None:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True)
        root = Path(top.stdout.strip())
    return Checker(root.resolve()).run()


if __name__ == "__main__":
    sys.exit(main())
