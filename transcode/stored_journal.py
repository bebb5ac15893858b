"""The end of a rendition's recording journal, kept in storage, for another node to go on.

The work folder's journal (transcode.recording_journal) lives on one node's disk: when
that node dies, the encoder reconnects to another node, which has none of it. What
storage holds must then be enough to go on: the recording playlist names every segment
with its duration, discontinuity and init, but it is stored only every
`RECORDING_PLAYLIST_EVERY` segments. So beside it each rendition keeps a small object,

    recordings/{sid}/{R}/journal.json

rewritten through the upload queue after each of its segments: the rendition itself
(its place in the ladder and what a worker said of it) and the segments since the
recording playlist last stored (`from` on). Playlist and tail together name every
segment queued before them; the queue stores in order, so whatever storage holds is a
consistent pair. It stays small (at most a playlist period's segments), so rewriting it
costs one small PUT per segment, not a growing one. Removed once the VOD playlist is
stored.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from transcode.hls_playlist import Segment
from transcode.ladder import Rendition
from transcode.rendition_track import segment_name

__all__ = ["JSON_TYPE", "TAIL_NAME", "JournalTail", "parse_tail", "render_tail"]

log = logging.getLogger(__name__)

TAIL_NAME = "journal.json"
JSON_TYPE = "application/json"


@dataclass
class JournalTail:
    """One rendition's tail: segment `start + i` is `segments[i]`."""

    rendition: Rendition | None = None
    position: int = 0  # the rendition's place in the ladder (its master playlist order)
    start: int = 0
    segments: list[Segment] = field(default_factory=list)


def render_tail(tail: JournalTail) -> bytes:
    body: dict[str, Any] = {
        "rendition": asdict(tail.rendition) if tail.rendition is not None else None,
        "position": tail.position,
        "from": tail.start,
        "segments": [[s.duration, s.discontinuity, s.init_uri, s.gap] for s in tail.segments],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def parse_tail(data: bytes) -> JournalTail | None:
    """The tail stored in `data`; None when it cannot be read (then storage's listing and
    playlist are all there is, as before tails existed)."""
    try:
        body = json.loads(data)
        rendition = body.get("rendition")
        start = int(body["from"])
        if start < 0:
            raise ValueError("negative start")
        segments = []
        for n, (duration, discontinuity, init, gap) in enumerate(body["segments"],
                                                                  start=start):
            segments.append(Segment(segment_name(n), float(duration), bool(discontinuity),
                                    str(init) if init else None, gap=bool(gap)))
        return JournalTail(Rendition(**rendition) if rendition else None,
                           int(body.get("position", 0)), start, segments)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("a stored journal tail is unreadable (%s); ignored", exc)
        return None
