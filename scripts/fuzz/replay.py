"""Replays a target's corpus in-process: every input must pass, twice, without growing memory.

    .venv/bin/python scripts/fuzz/replay.py TARGET [folder or file ...]

The second pass runs the same inputs again under tracemalloc; memory still held after it
beyond what the first pass left (caches warm, imports done) is growth, and fails.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

from fuzz_targets import CORPUS, TARGETS, load  # noqa: E402

# Allowed per replay: logging and interned strings may settle a little, a leak is larger.
GROWTH_LIMIT = 256 * 1024


def inputs(paths: Iterable[Path]) -> list[bytes]:
    files: list[Path] = []
    for path in paths:
        files += sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return [f.read_bytes() for f in files]


def replay(check: Callable[[bytes], None], data: list[bytes], rounds: int = 1) -> None:
    for _ in range(rounds):
        for item in data:
            check(item)


def growth(check: Callable[[bytes], None], data: list[bytes]) -> int:
    """Bytes still allocated after a second full pass, compared with after the first."""
    replay(check, data)
    gc.collect()
    tracemalloc.start()
    try:
        replay(check, data)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        replay(check, data)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return after - before


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        raise SystemExit(__doc__)
    name = sys.argv[1]
    paths = [Path(p) for p in sys.argv[2:]] or [CORPUS / name]
    data = inputs(paths)
    grew = growth(load(name), data)
    print(f"{name}: {len(data)} inputs replayed, memory growth {grew} bytes")
    if grew > GROWTH_LIMIT:
        raise SystemExit(f"{name}: memory grew by {grew} bytes over a replay")


if __name__ == "__main__":
    main()
