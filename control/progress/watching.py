"""A person's place in a recording: the player's reports, bounded and rate-limited.

The player reports (position, duration) every few seconds while a recording plays. A
report is stored at most once per `min_interval` per person (over all recordings: the
player plays one at a time, and a flood of reports costs nothing but the read that
refuses it); one in between is answered with what is stored. Storing is idempotent: the
same report twice changes nothing the second time.

What was watched is counted from the reports, not trusted from the client: a step forward
counts when it is no longer than the wall-clock time since the last stored report allows
(at up to PLAYBACK_RATE_LIMIT speed, plus some slack), so seeking ahead earns nothing and
watching a part twice counts at most up to the whole recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import RecordingProgress, User

# Fastest playback the player offers (hls.js playbackRate), and slack for timer jitter.
PLAYBACK_RATE_LIMIT = 2.0
SLACK_SECONDS = 5.0


@dataclass(frozen=True)
class Progress:
    position_seconds: float
    duration_seconds: float
    watched_seconds: float
    updated_at: datetime | None

    @property
    def watched_share(self) -> float:
        if self.duration_seconds <= 0:
            return 0.0
        return min(1.0, self.watched_seconds / self.duration_seconds)


NONE = Progress(0.0, 0.0, 0.0, None)


def progress_from(row: RecordingProgress | None) -> Progress:
    if row is None:
        return NONE
    return Progress(row.position_seconds, row.duration_seconds, row.watched_seconds,
                    row.updated_at)


async def progress_of(db: AsyncSession, session_id: int, user_id: int) -> Progress:
    return progress_from(await db.scalar(select(RecordingProgress).where(
        RecordingProgress.session_id == session_id, RecordingProgress.user_id == user_id)))


def _watched_step(row: RecordingProgress, position: float, now: datetime) -> float:
    """Seconds of the step from the stored position to `position` that count as watched."""
    step = position - row.position_seconds
    elapsed = max(0.0, (now - row.updated_at).total_seconds())
    if step <= 0 or step > elapsed * PLAYBACK_RATE_LIMIT + SLACK_SECONDS:
        return 0.0
    return step


async def report_position(
    db: AsyncSession, user: User, session_id: int, *, position: float, duration: float,
    now: datetime, min_interval: timedelta,
) -> tuple[Progress, bool]:
    """Store the player's report unless the person's last one is under `min_interval`
    old; returns what is stored and whether this report was."""
    # The person's row serialises their reports, so the limit holds under concurrency
    # (lock order: user rows come last, and nothing else is locked here).
    await db.execute(select(User.id).where(User.id == user.id).with_for_update())
    latest = await db.scalar(
        select(func.max(RecordingProgress.updated_at))
        .where(RecordingProgress.user_id == user.id)
    )
    row = await db.scalar(select(RecordingProgress).where(
        RecordingProgress.session_id == session_id, RecordingProgress.user_id == user.id))
    if latest is not None and now - latest < min_interval:
        return progress_from(row), False
    position = min(position, duration)
    if row is None:
        row = RecordingProgress(session_id=session_id, user_id=user.id,
                                position_seconds=position, duration_seconds=duration,
                                watched_seconds=0.0, updated_at=now)
        db.add(row)
    else:
        row.watched_seconds = min(duration, row.watched_seconds + _watched_step(row, position, now))
        row.position_seconds = position
        row.duration_seconds = duration
        row.updated_at = now
    await db.flush()
    return progress_from(row), True
