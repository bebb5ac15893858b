"""CPU time of a process tree that counts the children which already exited.

`child_processes.tree_cpu_seconds` sums the descendants alive at the moment of sampling; a
media server's ffmpeg workers may exit between two samples, and their time would vanish.
A process's children that exited and were waited for are in its cutime/cstime, so summing
utime+stime+cutime+cstime over the living tree counts every CPU second exactly once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: split after its closing one.
    return text[text.rindex(")") + 2:].split()


def tree_cpu_total(roots: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by `roots`, their living descendants and
    every descendant already reaped by its parent (Linux /proc)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    try:
        entries = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return 0.0
    for pid in entries:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        parents[pid] = int(fields[1])
        cpu[pid] = sum(int(f) for f in fields[11:15]) / _TICK
    wanted = {pid for pid in roots if pid in cpu}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    return sum(cpu[pid] for pid in wanted)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of this one process, without any child's."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICK if fields else 0.0


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds of all cores, elapsed CPU seconds of all cores) so far, from
    /proc/stat: two samples give how busy the whole machine was in between."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    total = sum(fields)
    idle = fields[3] + fields[4]
    return (total - idle) / _TICK, total / _TICK
