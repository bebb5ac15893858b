"""What a live session's recording holds so far, kept on disk so a restart can go on with it.

`SessionOutput` numbers segments itself and keeps the recording's segment list in memory;
the recording playlist in storage is rewritten only now and then. A process that dies
(a crash, SIGKILL, `docker compose stop` running out of time) would lose that list, and a
new run would number from 0 again over the stored segments. So each published segment is
appended here (one JSON line: rendition, number, duration, discontinuity, the init
segment it starts with, whether it was lost; the ladder's renditions once each), fsynced,
in the session's work folder beside its source fMP4 files. A node that took the session
up from storage (another node carried it first) notes how many source segments only
storage holds (`stored_source`): the MP4 is made from those and its own source files.

A line cut short by a crash is ignored when the journal is read back.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transcode.hls_playlist import Segment
from transcode.ladder import Rendition
from transcode.rendition_track import init_name, segment_name

__all__ = ["JOURNAL_NAME", "JournalState", "RecordingJournal"]

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"


@dataclass
class JournalState:
    """What a journal says: the ladder, and each rendition's segments by number."""

    ladder: list[Rendition] = field(default_factory=list)
    segments: dict[str, list[Segment]] = field(default_factory=dict)
    # Source segments 0..stored_source-1 are in storage only, not in this folder's files.
    stored_source: int = 0


class RecordingJournal:
    """Appends to, and reads back, `<work_dir>/journal.jsonl`. Blocking: call it in a thread."""

    def __init__(self, work_dir: Path) -> None:
        self.path = Path(work_dir) / JOURNAL_NAME

    @staticmethod
    def rendition_line(rendition: Rendition) -> dict[str, Any]:
        return {"rendition": asdict(rendition)}

    @staticmethod
    def segment_line(rendition: str, number: int, segment: Segment) -> dict[str, Any]:
        return {"segment": [rendition, number, segment.duration, segment.discontinuity,
                            segment.init_uri, segment.gap]}

    def append(self, lines: list[dict[str, Any]]) -> None:
        """Add `lines` and make them durable before returning."""
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(line) + "\n" for line in lines)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite(self, state: JournalState) -> None:
        """Replace the journal with `state` (after a resume corrected it), atomically."""
        lines = [self.rendition_line(r) for r in state.ladder]
        if state.stored_source:
            lines.append({"stored_source": state.stored_source})
        for name, segments in state.segments.items():
            lines += [self.segment_line(name, n, s) for n, s in enumerate(segments)]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        with temp.open("w", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(line) + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)

    def load(self) -> JournalState:
        """The journal's content; empty when there is none. A segment is taken only in
        order (number n after n-1): anything else is a torn or foreign line."""
        state = JournalState()
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return state
        names: set[str] = set()
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                if "rendition" in entry:
                    rendition = Rendition(**entry["rendition"])
                    if rendition.name not in names:
                        names.add(rendition.name)
                        state.ladder.append(rendition)
                elif "stored_source" in entry:
                    state.stored_source = int(entry["stored_source"])
                elif "segment" in entry:
                    name, number, duration, discontinuity, init, gap = entry["segment"]
                    segments = state.segments.setdefault(str(name), [])
                    if int(number) != len(segments):
                        raise ValueError(f"segment {number} after {len(segments)}")
                    segments.append(Segment(
                        segment_name(int(number)), float(duration), bool(discontinuity),
                        init_name(int(number)) if init else None, gap=bool(gap)))
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("%s: unreadable line skipped (%s)", self.path, exc)
        return state
