"""Which recordings to delete: the retention policy as a pure function over a listing.

Two rules, in this order, each oldest first (by when the class ended, else began):
1. a recording older than its course's `retention_days` goes, whatever the fill level
   (that is what retention means; NULL keeps it);
2. then, while storage still holds more than the limit, the oldest remaining recordings go.
Never a live class (its session is live: the class is still being recorded), never a
resource (resources are no recording), never anything that is not a session's recording.
What cannot bring storage under the limit (live media, resources) is left: the warning
stays until an admin acts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = ["WARNING_SHARE", "Deletion", "RecordingFacts", "plan_deletions"]

# Past this share of the limit, a warning is logged and shown in GET /storage.
WARNING_SHARE = 0.8

Reason = Literal["retention", "storage_full"]


@dataclass(frozen=True)
class RecordingFacts:
    """One session's recording as the policy sees it: from storage (bytes) and the
    database (course, state, times)."""

    session_id: int
    course_id: int
    bytes: int
    live: bool
    ended_at: datetime | None
    started_at: datetime
    retention_days: int | None

    @property
    def age_from(self) -> datetime:
        return self.ended_at or self.started_at


@dataclass(frozen=True)
class Deletion:
    session_id: int
    course_id: int
    bytes: int
    reason: Reason
    recorded_at: datetime


def plan_deletions(recordings: Iterable[RecordingFacts], *, used_bytes: int,
                   limit_bytes: int, now: datetime) -> list[Deletion]:
    """The deletions, in the order to make them. `used_bytes` is everything storage holds
    (live media and resources too): the limit is on storage, not on recordings alone."""
    candidates = sorted((r for r in recordings if not r.live and r.bytes > 0),
                        key=lambda r: (r.age_from, r.session_id))
    plan: list[Deletion] = []
    kept: list[RecordingFacts] = []
    for rec in candidates:
        if rec.retention_days is not None and rec.age_from + timedelta(
                days=rec.retention_days) <= now:
            plan.append(Deletion(rec.session_id, rec.course_id, rec.bytes, "retention",
                                 rec.age_from))
            used_bytes -= rec.bytes
        else:
            kept.append(rec)
    for rec in kept:  # still oldest first
        if used_bytes <= limit_bytes:
            break
        plan.append(Deletion(rec.session_id, rec.course_id, rec.bytes, "storage_full",
                             rec.age_from))
        used_bytes -= rec.bytes
    return plan
