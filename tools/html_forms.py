#!/usr/bin/env python3
"""The three forms people paste a Stack Overflow question in, from its stored HTML.

Reads a CSV (gzip or not) with `label`, `title` and `body` (Stack Overflow HTML), and writes
one JSON object per question to stdout: `label`, and `html`, `markdown` and `plain`, each the
title, a line break, then the body as Stack Overflow stores it, as its author would have typed
it in Markdown, and as text read off the rendered page.

Python's own HTML parser reads the body, so these forms do not come from the normaliser they
are used to test (edge-classifier's `normalize`). Standard library only: no venv needed.
"""

import csv
import gzip
import json
import re
import sys
from html.parser import HTMLParser

BLOCKS = {"p", "pre", "div", "blockquote", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
          "table", "tr", "dl", "dt", "dd"}


class Forms(HTMLParser):
    """Renders a body both ways at once."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.md = []
        self.plain = []
        self.in_pre = False
        self.in_code = False
        self.code = []
        self.href = []
        self.lists = []

    def block(self):
        for out in (self.md, self.plain):
            if out and not "".join(out[-2:]).endswith("\n\n"):
                out.append("\n\n" if "".join(out[-1:]).strip() else "\n")

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "pre":
            self.block()
            self.in_pre = True
            self.md.append("```\n")
        elif tag == "code":
            self.in_code = True
            self.code = []
        elif tag in ("ul", "ol"):
            self.block()
            self.lists.append(tag)
        elif tag == "li":
            self.md.append("\n" + ("1. " if self.lists and self.lists[-1] == "ol" else "- "))
            self.plain.append("\n")
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.block()
            self.md.append("#" * int(tag[1]) + " ")
        elif tag == "blockquote":
            self.block()
            self.md.append("> ")
        elif tag == "hr":
            self.block()
            self.md.append("---\n\n")
        elif tag == "br":
            self.md.append("  \n")
            self.plain.append("\n")
        elif tag in ("strong", "b"):
            self.md.append("**")
        elif tag in ("em", "i"):
            self.md.append("*")
        elif tag == "a":
            self.href.append(attrs.get("href") or "")
            self.md.append("[")
        elif tag == "img":
            self.md.append(f"![{attrs.get('alt') or ''}]({attrs.get('src') or ''})")
        elif tag in BLOCKS:
            self.block()

    def handle_endtag(self, tag):
        if tag == "code":
            self.in_code = False
            code = "".join(self.code)
            if self.in_pre:
                self.md.append(code if code.endswith("\n") else code + "\n")
            else:
                # A fence longer than any run of backticks inside, as CommonMark needs.
                longest = 0
                current = 0
                for c in code:
                    current = current + 1 if c == "`" else 0
                    longest = max(longest, current)
                fence = "`" * (longest + 1)
                pad = " " if code.startswith("`") or code.endswith("`") else ""
                self.md.append(f"{fence}{pad}{code}{pad}{fence}")
            self.plain.append(code)
        elif tag == "pre":
            self.in_pre = False
            self.md.append("```")
            self.block()
        elif tag in ("strong", "b"):
            self.md.append("**")
        elif tag in ("em", "i"):
            self.md.append("*")
        elif tag == "a":
            self.md.append(f"]({self.href.pop() if self.href else ''})")
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self.block()
        elif tag in BLOCKS:
            self.block()

    def handle_data(self, data):
        if self.in_code:
            self.code.append(data)
            return
        if not self.in_pre:
            # Outside code, a browser shows any run of whitespace as one space.
            data = re.sub(r"\s+", " ", data)
            if data == " " and (not self.plain or self.plain[-1].endswith("\n")):
                return
        self.md.append(data)
        self.plain.append(data)


def forms(title, body):
    parser = Forms()
    parser.feed(body)
    parser.close()
    markdown = "".join(parser.md).strip("\n")
    plain = "".join(parser.plain).strip("\n")
    return {"html": f"{title}\n{body}", "markdown": f"{title}\n{markdown}", "plain": f"{title}\n{plain}"}


def main(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            print(json.dumps({"label": row["label"], **forms(row["title"], row["body"])}, ensure_ascii=False))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: html_forms.py QUESTIONS.csv[.gz]")
    main(sys.argv[1])
