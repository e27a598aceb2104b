"""The plain pipeline in its own process, for `bench.versus`:
`python -m bench.plain.child <lake root> <day> <out dir>`. The last line of stdout is a
JSON object of its seconds per table and of its work (`work_s`), as the project's child
(`bench.scale.child`) reports them."""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

import orjson

from bench.plain.pipeline import run_plain


def main() -> None:
    lake_root, day, out_dir = sys.argv[1], date.fromisoformat(sys.argv[2]), Path(sys.argv[3])
    started = time.perf_counter()
    seconds = run_plain(lake_root, day, out_dir)
    result = {"seconds": seconds, "work_s": time.perf_counter() - started}
    sys.stdout.write("\n" + orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
