"""The harvest figures (docs/benchmarks.md#harvest): `trainer fetch` from a data dump and from
the Stack Exchange API, end to end through the binary, with a baseline in the same run.

- dump: a `Posts.xml` of POSTS rows (default 200,000: questions and answers half and half, as
  in real dumps) generated from the shape of harvest's recorded real questions (each copy gets
  a new id and a numbered title, so none is a duplicate; both tag encodings), read by
  `trainer fetch dump` under /usr/bin/time (wall seconds, questions per second, peak RSS).
  Baseline: Python's `xml.etree.ElementTree.iterparse` over the same file, counting questions.
- api: a loopback server replaying the API's JSON (gzip, as the API answers) with PAGES pages of
  100 questions per language tag, read by `trainer fetch api` (questions per second, pages).

Prints ONE JSON object. Environment: TRAINER (the binary), FIXTURES (harvest/tests/fixtures),
POSTS, PAGES.
"""

import gzip
import http.server
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

TRAINER = os.environ["TRAINER"]
FIXTURES = Path(os.environ["FIXTURES"])
POSTS = int(os.environ.get("POSTS", "200000"))
PAGES = int(os.environ.get("PAGES", "20"))


def make_dump(path):
    rows = re.findall(r"  <row [^\n]*/>", (FIXTURES / "Posts.xml").read_text())
    questions = [r for r in rows if 'PostTypeId="1"' in r]
    with open(path, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        n = 0
        k = 0
        while n < POSTS:
            row = questions[k % len(questions)]
            k += 1
            new_id = 10_000_000 + k
            q = re.sub(r'Id="\d+"', f'Id="{new_id}"', row, count=1)
            q = re.sub(r'Title="([^"]*)"', lambda m: f'Title="{m.group(1)} #{k}"', q, count=1)
            # Both tag encodings, alternating: `&lt;a&gt;&lt;b&gt;` and `|a|b|`.
            def encode(m, pipes=k % 2 == 1):
                tags = re.findall(r"&lt;(.*?)&gt;", m.group(1)) or [t for t in m.group(1).split("|") if t]
                return 'Tags="' + ("|" + "|".join(tags) + "|" if pipes else "".join(f"&lt;{t}&gt;" for t in tags)) + '"'

            q = re.sub(r'Tags="([^"]*)"', encode, q, count=1)
            out.write(q + "\n")
            out.write(f'  <row Id="{20_000_000 + k}" PostTypeId="2" ParentId="{new_id}" CreationDate="2008-08-02T10:00:00.000" Score="1" Body="&lt;p&gt;An answer.&lt;/p&gt;" />\n')
            n += 2
        out.write("</posts>\n")


def timed(cmd, env=None):
    start = time.perf_counter()
    run = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed: {run.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    return json.loads(run.stdout), wall, rss


def etree_baseline(path):
    start = time.perf_counter()
    questions = 0
    for _, el in ET.iterparse(path, events=("end",)):
        if el.tag == "row":
            if el.get("PostTypeId") == "1":
                questions += 1
            el.clear()
    return questions, time.perf_counter() - start


class Replay(http.server.BaseHTTPRequestHandler):
    items = {}

    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        tag, page = q["tagged"][0], int(q["page"][0])
        base = self.items[tag]
        items = []
        for i in range(100):
            it = dict(base[i % len(base)])
            n = (page - 1) * 100 + i
            it["question_id"] = hash((tag, n)) & 0x7FFFFFFF
            it["title"] = f'{it["title"]} #{n}'
            items.append(it)
        body = gzip.compress(json.dumps({"items": items, "has_more": page < PAGES, "quota_max": 10000, "quota_remaining": 9000}).encode(), 1)
        self.send_response(200)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-encoding", "gzip")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    out = {"posts": POSTS, "pages_per_tag": PAGES}
    with tempfile.TemporaryDirectory(prefix="bench-harvest-") as tmp:
        tmp = Path(tmp)
        dump = tmp / "Posts.xml"
        make_dump(dump)
        out["dump_bytes"] = dump.stat().st_size
        report, wall, rss = timed([TRAINER, "fetch", "--json", "--inbox", str(tmp / "inbox-dump"), "dump", "--posts", str(dump)])
        questions = report["dump"]["questions"]
        out["dump"] = {
            "questions": questions,
            "rows_written": sum(report["labels"].values()),
            "batches": len(report["written"]),
            "wall_s": round(wall, 2),
            "questions_per_s": round(questions / wall),
            "peak_rss_mb": round(rss / 1024, 1),
        }
        base_q, base_s = etree_baseline(dump)
        out["dump_baseline_python_iterparse"] = {"questions": base_q, "wall_s": round(base_s, 2), "questions_per_s": round(base_q / base_s)}

        by_tag = {}
        for p in ("api-page-1.json", "api-page-2.json"):
            for it in json.loads((FIXTURES / p).read_text())["items"]:
                for tag in ("python", "c#", "java", "javascript"):
                    if it["tags"] == [tag] or (tag in it["tags"] and not any(t in it["tags"] for t in {"python", "c#", "java", "javascript"} - {tag})):
                        by_tag.setdefault(tag, []).append(it)
        Replay.items = by_tag
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Replay)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/2.3"
        report, wall, rss = timed([TRAINER, "fetch", "--json", "--inbox", str(tmp / "inbox-api"), "api", "--api-url", url, "--since", "0", "--until", "1700000000"])
        server.shutdown()
        fetched = sum(t["questions"] for t in report["tags"].values())
        out["api"] = {
            "questions": fetched,
            "pages": sum(t["pages"] for t in report["tags"].values()),
            "rows_written": sum(report["labels"].values()),
            "wall_s": round(wall, 2),
            "questions_per_s": round(fetched / wall),
            "peak_rss_mb": round(rss / 1024, 1),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
