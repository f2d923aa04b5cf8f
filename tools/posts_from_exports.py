#!/usr/bin/env python3
"""Stack Overflow questions exported elsewhere, as the data dump's Posts.xml.

Real questions come in other shapes than a dump: Stack Exchange Data Explorer CSV exports
(columns Id, Title, Body, Tags, CreationDate in any order and case; an `id` that is a
question URL; `<a><b>` tags) and the API's JSON (a list of question objects, or a page with
`items`). This writes them as `<row PostTypeId="1" .../>` rows of a Posts.xml, so
`trainer fetch dump` labels, deduplicates and batches them by the one set of rules
(docs/harvest.md). With --split-at DATE the questions created before DATE go to OUT_EARLY and
the rest to OUT_LATE: the later slice a model trained on the earlier one is scored on.

    posts_from_exports.py --out Posts.xml FILE...
    posts_from_exports.py --split-at 2023-06-01 --out early.xml --out-late late.xml FILE...
"""

import argparse
import csv
import datetime as dt
import html
import json
import re
import sys
from xml.sax.saxutils import quoteattr

csv.field_size_limit(1 << 30)


def from_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header = [h.strip().lower() for h in next(rows)]

        def col(name):
            # The first column of that name: Data Explorer exports may repeat a name (a
            # question's CreationDate, then its accepted answer's).
            if name not in header:
                sys.exit(f"{path}: no `{name}` column (columns: {', '.join(header)})")
            return header.index(name)

        i_id, i_title, i_body, i_tags, i_date = map(col, ["id", "title", "body", "tags", "creationdate"])
        for r in rows:
            m = re.search(r"(\d+)\D*$", r[i_id])
            if not m:
                continue
            created = dt.datetime.fromisoformat(r[i_date].strip().replace(" ", "T")).replace(tzinfo=dt.timezone.utc)
            yield int(m.group(1)), r[i_title], r[i_body], r[i_tags], created


def from_json(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    items = data["items"] if isinstance(data, dict) else data
    for q in items:
        if "body" not in q:
            continue
        created = dt.datetime.fromtimestamp(q["creation_date"], dt.timezone.utc)
        # The API HTML-escapes titles; a dump stores them plain.
        title = html.unescape(q["title"])
        yield q["question_id"], title, q["body"], "".join(f"<{t}>" for t in q["tags"]), created


def row(qid, title, body, tags, created):
    stamp = created.strftime("%Y-%m-%dT%H:%M:%S.000")
    return (
        f"  <row Id=\"{qid}\" PostTypeId=\"1\" CreationDate=\"{stamp}\" Title={quoteattr(title)} "
        f"Body={quoteattr(body)} Tags={quoteattr(tags)} />\n"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="Posts.xml to write (the earlier slice with --split-at)")
    ap.add_argument("--out-late", help="Posts.xml of the questions created at or after --split-at")
    ap.add_argument("--split-at", type=dt.date.fromisoformat, help="a date, YYYY-MM-DD (UTC)")
    ap.add_argument("files", nargs="+", help="Data Explorer CSV or API JSON exports")
    a = ap.parse_args()
    if bool(a.split_at) != bool(a.out_late):
        sys.exit("--split-at and --out-late go together")
    questions = {}
    for path in a.files:
        reader = from_json if path.endswith(".json") else from_csv
        for q in reader(path):
            questions.setdefault(q[0], q)
    cut = a.split_at and dt.datetime.combine(a.split_at, dt.time(), dt.timezone.utc)
    outs = {False: open(a.out, "w", encoding="utf-8")}
    if cut:
        outs[True] = open(a.out_late, "w", encoding="utf-8")
    counts = {False: 0, True: 0}
    for f in outs.values():
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
    for q in sorted(questions.values(), key=lambda q: q[4]):
        late = bool(cut) and q[4] >= cut
        outs[late].write(row(*q))
        counts[late] += 1
    for f in outs.values():
        f.write("</posts>\n")
        f.close()
    print(json.dumps({"questions": len(questions), "early": counts[False], "late": counts[True]}))


if __name__ == "__main__":
    main()
