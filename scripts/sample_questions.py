"""Prints N real questions per label from a label,text CSV (gzipped or not) as JSON lines
({"label": ..., "text": ...}), the first N of each label in file order: what scripts/loop.sh
classifies through the gateway at the end. Its texts span lines, so no line tool will do.

    python scripts/sample_questions.py FILE.csv.gz [N]
"""

import csv
import gzip
import json
import sys


def main() -> int:
    path, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    opener = gzip.open if path.endswith(".gz") else open
    seen: dict[str, int] = {}
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            label = row["label"]
            if seen.get(label, 0) < n:
                seen[label] = seen.get(label, 0) + 1
                print(json.dumps({"label": label, "text": row["text"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
