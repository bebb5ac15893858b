"""What transcoding reports: events a worker, the segment receiver and the uploader emit.

`transcode` knows nothing of metrics or the control plane; the media server subscribes
with an `EventSink` and turns events into Prometheus counters, log lines and
"recording ready" notices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from transcode.ladder import Rendition

__all__ = [
    "BufferOverflow",
    "Event",
    "EventSink",
    "RunStarted",
    "SegmentStored",
    "SpoolRefused",
    "UploadFailed",
    "WorkerFailed",
    "WorkerRestarted",
    "WorkerStopped",
]


@dataclass(frozen=True)
class RunStarted:
    """An ffmpeg run began for `stream`; `run` counts from 1 (a restart is a new run)."""

    stream: str
    run: int
    renditions: tuple[Rendition, ...]
    # The source remux beside a ladder (its own codecs): the recording's variant when
    # `recording_quality` is "source". None in passthrough, where it is the ladder.
    recording: Rendition | None = None


@dataclass(frozen=True)
class WorkerRestarted:
    """ffmpeg died while media was still coming; a new run follows."""

    stream: str
    run: int
    reason: str


@dataclass(frozen=True)
class WorkerFailed:
    """ffmpeg kept dying (a restart loop) or could not start: the worker gave up."""

    stream: str
    reason: str


@dataclass(frozen=True)
class WorkerStopped:
    """The input ended and ffmpeg finished writing: every segment has been sent."""

    stream: str


@dataclass(frozen=True)
class BufferOverflow:
    """The worker's input buffer was full: `dropped_bytes` of media were dropped."""

    stream: str
    dropped_bytes: int


@dataclass(frozen=True)
class SegmentStored:
    """An object reached storage; `seconds` is the upload's latency."""

    key: str
    size: int
    seconds: float


@dataclass(frozen=True)
class UploadFailed:
    """Storing an object failed; it stays queued and is retried."""

    key: str
    error: str


@dataclass(frozen=True)
class SpoolRefused:
    """An upload was refused, never queued: the spool is full (`reason` "full") or cannot
    be written and memory already holds all it may ("unwritable"). Its media is lost."""

    key: str
    size: int
    reason: str


Event: TypeAlias = (
    RunStarted | WorkerRestarted | WorkerFailed | WorkerStopped | BufferOverflow
    | SegmentStored | UploadFailed | SpoolRefused
)
EventSink: TypeAlias = Callable[[Event], None]
