"""Where a py-spy profile's time went: top functions by total and by own time.

Reads py-spy's raw (collapsed stacks) output, as `api.py --py-spy DIR` writes it:

    .venv/bin/python scripts/bench/stack_summary.py DIR/sqlite-list-0.txt [--top 25]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# "function (path/to/file.py:123)": the line number splits one function into many frames.
_LINE = re.compile(r":\d+\)$")
# Samples of threads that wait rather than work, which py-spy cannot tell apart: an
# aiosqlite connection's thread blocked on its queue (aiosqlite 0.22, core.py line 59).
IDLE_LEAVES = r"_connection_worker_thread \(.*aiosqlite/core\.py:59\)$"


def _frame(raw: str, keep_lines: bool) -> str:
    frame = raw if keep_lines else _LINE.sub(")", raw)
    return frame.replace(str(Path.cwd()) + "/", "")


def summarize(
    path: Path, top: int, keep_lines: bool = False, match: str = "", idle: str = IDLE_LEAVES
) -> str:
    idle_leaf = re.compile(idle) if idle else None
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if idle_leaf is not None and idle_leaf.search(stack.rsplit(";", 1)[-1]):
            continue
        frames = [_frame(f, keep_lines) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return f"{path}: no samples"
    out = [f"{path}: {samples} samples"]
    for title, counter in (("total (with callees)", total), ("own", own)):
        out.append(f"\n  {title}:")
        shown = 0
        for frame, count in counter.most_common():
            if match and match not in frame:
                continue
            out.append(f"  {100 * count / samples:5.1f}%  {frame}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profiles", type=Path, nargs="+")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--lines", action="store_true", help="keep line numbers apart")
    p.add_argument("--match", default="", help="only frames containing this text")
    p.add_argument("--idle", default=IDLE_LEAVES,
                   help="drop samples whose innermost frame matches this regex ('' keeps all)")
    args = p.parse_args(argv)
    for path in args.profiles:
        print(summarize(path, args.top, args.lines, args.match, args.idle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
