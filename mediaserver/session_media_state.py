"""How far each session whose media this node holds has got, kept on disk across restarts.

A small JSON file per session, `<data_dir>/work/session-<id>.json`: its course and its
stage, "live" (media coming, or waiting for the encoder to come back) or "finalising"
(the recording is being made). It is written when the stage changes and removed once the
recording is done and the control plane told. A process that dies (crash, SIGKILL, a stop
that ran out of time) leaves it behind, and the next start takes the session up again:
a live one waits for its encoder for the reconnect grace period, a finalising one is
finalised. The writes are small and fsynced: this runs in a thread.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["SessionMediaState", "Stage", "read_states", "remove_state", "write_state"]

log = logging.getLogger(__name__)

Stage = Literal["live", "finalising"]
_STAGES: frozenset[str] = frozenset({"live", "finalising"})
_NAME = re.compile(r"session-(\d+)\.json")


@dataclass(frozen=True)
class SessionMediaState:
    session_id: int
    course_id: int
    stage: Stage


def _path(work_dir: Path, session_id: int) -> Path:
    return work_dir / f"session-{session_id}.json"


def write_state(work_dir: Path, state: SessionMediaState) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    path = _path(work_dir, state.session_id)
    temp = path.with_suffix(".tmp")
    with temp.open("w", encoding="utf-8") as handle:
        json.dump({"course_id": state.course_id, "stage": state.stage}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fd = os.open(work_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_state(work_dir: Path, session_id: int) -> None:
    _path(work_dir, session_id).unlink(missing_ok=True)


def read_states(work_dir: Path) -> list[SessionMediaState]:
    """Every state left in `work_dir`, by session id; unreadable ones are logged, skipped."""
    if not work_dir.is_dir():
        return []
    states = []
    for path in sorted(work_dir.iterdir()):
        match = _NAME.fullmatch(path.name)
        if match is None:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            stage = str(data["stage"])
            if stage not in _STAGES:
                raise ValueError(f"unknown stage {stage!r}")
            states.append(SessionMediaState(int(match.group(1)), int(data["course_id"]),
                                            "live" if stage == "live" else "finalising"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("%s: unreadable session state, left alone: %s", path, exc)
    return sorted(states, key=lambda s: s.session_id)
