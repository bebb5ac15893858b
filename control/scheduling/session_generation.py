"""Sessions from schedules: each occurrence of an active schedule becomes one session.

Sessions are generated a horizon ahead (settings.courses.schedule_horizon_days) when a
schedule is created or changed, and by `generate_sessions`, which the server runs
periodically so the horizon keeps moving forward. Generation is idempotent: a session
is keyed by (schedule_id, occurrence_start), which is UNIQUE in the database, and an
occurrence that already has a session in any state is never generated again (so a
cancelled class stays cancelled).

History is never rewritten. Only *future, still scheduled* sessions are touched:
  - one whose occurrence is gone (the schedule moved, an EXDATE was added, the schedule
    was deactivated or deleted) is deleted; nothing happened in it yet, so nothing is lost;
  - when the schedule itself is edited, the ones still matching an occurrence take the
    schedule's new title, description and times (`refresh=True`); the periodic run leaves
    them as they are, so a single session moved or retitled by hand keeps its changes.
Live, ended and cancelled sessions, and past ones, are always kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from control.db.course_locks import lock_courses
from control.models import Course, CourseSession, Schedule, SessionStatus
from control.scheduling.recurrence import Occurrence, RecurrenceError, expand

log = logging.getLogger(__name__)

# Most occurrences one expansion returns. Schedules are refused when they would have this
# many within the conflict horizon (control.api.schedules), so it never cuts one short.
EXPANSION_LIMIT = 5000


@dataclass
class GenerationReport:
    """What one generation run did, for logs and tests."""

    created: int = 0
    updated: int = 0
    removed: int = 0
    failed_schedule_ids: list[int] = field(default_factory=list)

    def add(self, other: GenerationReport) -> None:
        self.created += other.created
        self.updated += other.updated
        self.removed += other.removed


def parse_exdates(schedule: Schedule) -> list[datetime]:
    return [datetime.fromisoformat(text) for text in schedule.exdates]


def occurrences(
    schedule: Schedule,
    window_start: datetime,
    window_end: datetime,
    *,
    limit: int = EXPANSION_LIMIT,
) -> list[Occurrence]:
    """The schedule's first `limit` occurrences (UTC) overlapping [window_start, window_end)."""
    return expand(
        start_local=schedule.start_local,
        duration=timedelta(minutes=schedule.duration_minutes),
        timezone=schedule.timezone,
        rrule=schedule.rrule,
        exdates=parse_exdates(schedule),
        window_start=window_start,
        window_end=window_end,
        limit=limit,
    )


def _is_future_scheduled(session: CourseSession, now: datetime) -> bool:
    return session.status == SessionStatus.SCHEDULED and session.start_time > now


async def remove_future_sessions(db: AsyncSession, schedule_id: int, *, now: datetime) -> int:
    """Delete the schedule's sessions that are still scheduled and have not started."""
    result = await db.execute(
        delete(CourseSession)
        .where(
            CourseSession.schedule_id == schedule_id,
            CourseSession.status == SessionStatus.SCHEDULED,
            CourseSession.start_time > now,
        )
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def sync_schedule(
    db: AsyncSession,
    schedule: Schedule,
    *,
    now: datetime,
    horizon: timedelta,
    refresh: bool = False,
) -> GenerationReport:
    """Bring one schedule's future sessions in line with its occurrences up to now+horizon.

    Raises RecurrenceError if the schedule cannot be expanded.
    """
    report = GenerationReport()
    if not schedule.is_active:
        report.removed = await remove_future_sessions(db, schedule.id, now=now)
        return report
    horizon_end = now + horizon
    existing = list(
        (
            await db.scalars(
                select(CourseSession).where(
                    CourseSession.schedule_id == schedule.id,
                    or_(CourseSession.occurrence_start > now, CourseSession.start_time > now),
                )
            )
        ).all()
    )
    pending = [s for s in existing if _is_future_scheduled(s, now)]
    # Look far enough to judge every pending session, even one beyond today's horizon
    # (generated when the horizon was longer) or one moved later than its occurrence.
    keys = [s.occurrence_start for s in pending if s.occurrence_start is not None]
    window_start = min([now, *keys])
    window_end = max([horizon_end, *(k + timedelta(microseconds=1) for k in keys)])
    found = {o.start: o for o in occurrences(schedule, window_start, window_end)}

    for session in pending:
        occurrence = found.get(session.occurrence_start) if session.occurrence_start else None
        if occurrence is None:
            await db.delete(session)
            report.removed += 1
        elif refresh and _differs(session, schedule, occurrence):
            session.title = schedule.title
            session.description = schedule.description
            session.start_time = occurrence.start
            session.end_time = occurrence.end
            report.updated += 1

    taken = {s.occurrence_start for s in existing}
    for start, occurrence in sorted(found.items()):
        if start <= now or start >= horizon_end or start in taken:
            continue
        db.add(
            CourseSession(
                course_id=schedule.course_id,
                schedule_id=schedule.id,
                occurrence_start=occurrence.start,
                title=schedule.title,
                description=schedule.description,
                start_time=occurrence.start,
                end_time=occurrence.end,
                status=SessionStatus.SCHEDULED,
            )
        )
        report.created += 1
    await db.flush()
    return report


def _differs(session: CourseSession, schedule: Schedule, occurrence: Occurrence) -> bool:
    return (
        session.title != schedule.title
        or session.description != schedule.description
        or session.start_time != occurrence.start
        or session.end_time != occurrence.end
    )


async def generate_sessions(
    db: AsyncSession, *, now: datetime, horizon: timedelta
) -> GenerationReport:
    """Generate sessions up to now+horizon for every active schedule of an active course.

    Meant to run periodically (each run is idempotent) inside one write transaction.
    Future scheduled sessions of inactive schedules are removed too. A schedule that can
    no longer be expanded (say its time zone left the tz database) is logged and skipped.
    """
    report = GenerationReport()
    wanted = (Schedule.is_active.is_(True), Course.is_active.is_(True))
    course_ids = (
        await db.scalars(
            select(Schedule.course_id)
            .join(Course, Course.id == Schedule.course_id)
            .where(*wanted)
            .distinct()
        )
    ).all()
    await lock_courses(db, course_ids)
    schedules = (
        await db.scalars(
            select(Schedule)
            .where(
                Schedule.id.in_(
                    select(Schedule.id)
                    .join(Course, Course.id == Schedule.course_id)
                    .where(*wanted)
                )
            )
            .order_by(Schedule.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()
    for schedule in schedules:
        try:
            report.add(await sync_schedule(db, schedule, now=now, horizon=horizon))
        except RecurrenceError as exc:
            log.warning("schedule %s cannot be expanded: %s", schedule.id, exc)
            report.failed_schedule_ids.append(schedule.id)
    inactive = select(Schedule.id).where(Schedule.is_active.is_(False))
    result = await db.execute(
        delete(CourseSession)
        .where(
            CourseSession.schedule_id.in_(inactive),
            CourseSession.status == SessionStatus.SCHEDULED,
            CourseSession.start_time > now,
        )
        .execution_options(synchronize_session="fetch")
    )
    report.removed += int(result.rowcount or 0)  # type: ignore[attr-defined]
    await db.flush()
    return report
