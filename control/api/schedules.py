"""Schedules: a course's class times as local wall-clock times, recurring or not.

Anyone who can see a course may read its active schedules; its teacher and admins write
them. Every write regenerates the schedule's future sessions (control.scheduling.session_generation)
and is refused with 409 "schedule_conflict" if it would double-book the teacher
(control.scheduling.double_booking); a refused write saves nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field
from sqlalchemy import or_, select

from control.api.schedule_or_session import load_in_course
from control.courses.permissions import (
    managed_course,
    teaches_filter,
    visibility_filter,
    visible_course,
)
from control.errors import unprocessable
from control.http.bodies import INT_MAX, Body, Id, LocalDateTime, Query
from control.http.cursor import decode_cursor, next_link
from control.http.responses import json, no_content
from control.http.routing import Ctx, Routes
from control.models import Course, Role, Schedule
from control.models.base import utcnow
from control.notifications.announce import schedule_removed
from control.scheduling.recurrence import RecurrenceError, check_rrule, check_timezone
from control.scheduling.schedule_checks import check_and_generate
from control.scheduling.session_generation import (
    occurrences,
    remove_future_sessions,
    sync_schedule,
)

routes = Routes("schedules")

# How many upcoming occurrences a schedule's JSON shows, and how far ahead it looks.
NEXT_OCCURRENCES = 5
NEXT_OCCURRENCES_WINDOW = timedelta(days=400)


class ScheduleFields(Body):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=50_000)
    start_time: LocalDateTime
    end_time: LocalDateTime | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=INT_MAX)
    timezone: str = Field(min_length=1, max_length=64)
    rrule: str | None = Field(default=None, max_length=500)
    exdates: list[LocalDateTime] = Field(default_factory=list, max_length=1000)
    is_active: bool = True


class ScheduleCreate(ScheduleFields):
    course_id: Id


class SchedulePatch(Body):
    course_id: Id | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=50_000)
    start_time: LocalDateTime | None = None
    end_time: LocalDateTime | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=INT_MAX)
    timezone: str | None = Field(default=None, min_length=1, max_length=64)
    rrule: str | None = Field(default=None, max_length=500)
    exdates: list[LocalDateTime] | None = Field(default=None, max_length=1000)
    is_active: bool | None = None


class ScheduleListQuery(Query):
    course_id: Id | None = None
    is_active: bool | None = None
    cursor: str | None = None
    limit: int = Field(default=50, ge=1, le=200)


def _local(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None).isoformat()


def schedule_json(schedule: Schedule, *, now: datetime) -> dict[str, Any]:
    start = schedule.start_local
    upcoming: list[dict[str, Any]] = []
    found = []
    if schedule.is_active:
        try:
            found = occurrences(
                schedule, now, now + NEXT_OCCURRENCES_WINDOW, limit=NEXT_OCCURRENCES
            )
        except RecurrenceError:
            pass  # a stored schedule that no longer expands still renders
    for occurrence in found:
        upcoming.append(
            {
                "start": occurrence.start,
                "end": occurrence.end,
                "start_local": _local(occurrence.start, schedule.timezone),
                "end_local": _local(occurrence.end, schedule.timezone),
            }
        )
    return {
        "id": schedule.id,
        "course_id": schedule.course_id,
        "title": schedule.title,
        "description": schedule.description,
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(minutes=schedule.duration_minutes)).isoformat(),
        "duration_minutes": schedule.duration_minutes,
        "timezone": schedule.timezone,
        "rrule": schedule.rrule,
        "is_recurring": schedule.rrule is not None,
        "exdates": list(schedule.exdates),
        "is_active": schedule.is_active,
        "created_at": schedule.created_at,
        "next_occurrences": upcoming,
    }


async def _schedule(
    ctx: Ctx, *, write: bool = False, other_course_id: int | None = None
) -> tuple[Schedule, Course]:
    return await load_in_course(
        ctx, Schedule, ctx.param("schedule_id"), "schedule", write=write,
        also_lock=other_course_id,
    )


def _duration(values: dict[str, Any], current: Schedule | None) -> int:
    """Minutes, from end_time or duration_minutes (or the schedule's current duration)."""
    start: datetime = values["start_time"]
    end: datetime | None = values.get("end_time")
    minutes: int | None = values.get("duration_minutes")
    if end is not None:
        if end <= start:
            raise unprocessable("end_time must be after start_time")
        seconds = (end - start).total_seconds()
        if seconds % 60:
            raise unprocessable("a class lasts a whole number of minutes")
        from_end = int(seconds // 60)
        if minutes is not None and minutes != from_end:
            raise unprocessable("end_time and duration_minutes disagree; send one of them")
        return from_end
    if minutes is not None:
        return minutes
    if current is not None:
        return current.duration_minutes
    raise unprocessable("send end_time or duration_minutes", "invalid")


def _apply(ctx: Ctx, schedule: Schedule, values: dict[str, Any], *, current: bool) -> None:
    """Validate the merged fields and write them onto `schedule` (not yet saved)."""
    minutes = _duration(values, schedule if current else None)
    limit = ctx.state.settings.courses.session_duration_limit
    if minutes > limit:
        raise unprocessable(
            f"a class may last at most {limit} minutes (session_duration_limit)",
            "session_too_long",
        )
    rrule = values.get("rrule")
    rrule = (rrule.strip() or None) if isinstance(rrule, str) else None
    try:
        check_timezone(values["timezone"])
        if rrule is not None:
            check_rrule(rrule)
    except RecurrenceError as exc:
        raise unprocessable(str(exc), "invalid_recurrence") from None
    schedule.course_id = values["course_id"]
    schedule.title = values["title"]
    schedule.description = values.get("description") or ""
    schedule.start_local = values["start_time"]
    schedule.duration_minutes = minutes
    schedule.timezone = values["timezone"]
    schedule.rrule = rrule
    schedule.exdates = sorted({d.isoformat() for d in values.get("exdates") or []})
    schedule.is_active = bool(values.get("is_active", True))


def _timing(schedule: Schedule) -> tuple[Any, ...]:
    return (
        schedule.course_id,
        schedule.start_local,
        schedule.duration_minutes,
        schedule.timezone,
        schedule.rrule,
        tuple(schedule.exdates),
        schedule.is_active,
    )


@routes.route("GET", "/schedules/", name="schedules.list", query=ScheduleListQuery,
              summary="List schedules of the courses the caller can see (?course_id=)")
async def list_schedules(ctx: Ctx) -> Any:
    me = ctx.me
    q = ctx.parsed_query(ScheduleListQuery)
    stmt = select(Schedule).join(Course, Course.id == Schedule.course_id)
    if q.course_id is not None:
        await visible_course(ctx.db, me, q.course_id)
        stmt = stmt.where(Schedule.course_id == q.course_id)
    visible = visibility_filter(me)
    if visible is not None and q.course_id is None:
        stmt = stmt.where(visible)
    if me.role != Role.ADMIN:
        # Only a course's staff see its inactive schedules.
        stmt = stmt.where(or_(Schedule.is_active.is_(True), teaches_filter(me)))
    if q.is_active is not None:
        stmt = stmt.where(Schedule.is_active.is_(q.is_active))
    if q.cursor:
        _, last_id = decode_cursor(q.cursor, "id")
        stmt = stmt.where(Schedule.id > last_id)
    rows = (await ctx.db.scalars(stmt.order_by(Schedule.id).limit(q.limit + 1))).all()
    now = utcnow()
    results = [schedule_json(s, now=now) for s in rows[: q.limit]]
    next_url = None
    if len(rows) > q.limit:
        next_url = next_link(ctx.request, "id", None, rows[q.limit - 1].id)
    return json({"results": results, "next": next_url})


@routes.route("POST", "/schedules/", name="schedules.create", body=ScheduleCreate,
              summary="Create a schedule (the course's teacher or an admin); generates its"
              " sessions; 409 schedule_conflict if it double-books the teacher")
async def create(ctx: Ctx) -> Any:
    me = ctx.me
    body = ctx.parsed(ScheduleCreate)
    course = await managed_course(ctx.db, me, body.course_id, lock=True)
    schedule = Schedule()
    _apply(ctx, schedule, body.model_dump(), current=False)
    ctx.db.add(schedule)
    await ctx.db.flush()
    now = utcnow()
    await check_and_generate(ctx.db, ctx.state.settings.courses, schedule, course, now=now,
                             refresh=False)
    return json(schedule_json(schedule, now=now), status=201)


@routes.route("GET", "/schedules/{schedule_id}/", name="schedules.get",
              summary="One schedule, with its next occurrences")
async def get(ctx: Ctx) -> Any:
    schedule, _ = await _schedule(ctx)
    return json(schedule_json(schedule, now=utcnow()))


def _current_values(schedule: Schedule) -> dict[str, Any]:
    return {
        "course_id": schedule.course_id,
        "title": schedule.title,
        "description": schedule.description,
        "start_time": schedule.start_local,
        "timezone": schedule.timezone,
        "rrule": schedule.rrule,
        "exdates": [datetime.fromisoformat(d) for d in schedule.exdates],
        "is_active": schedule.is_active,
    }


# In a PATCH these fields cannot be cleared: null there means "leave as is".
_NOT_NULL = ("course_id", "title", "description", "start_time", "timezone", "exdates",
             "is_active")


async def _update(ctx: Ctx, values: dict[str, Any], *, partial: bool) -> Any:
    me = ctx.me
    moving_to = values.get("course_id")
    schedule, course = await _schedule(
        ctx, write=True, other_course_id=moving_to if isinstance(moving_to, int) else None
    )
    if partial:
        given = {k: v for k, v in values.items() if v is not None or k not in _NOT_NULL}
        values = {**_current_values(schedule), **given}
    target = course
    if values["course_id"] != course.id:
        target = await managed_course(ctx.db, me, values["course_id"], lock=True)
    before = _timing(schedule)
    _apply(ctx, schedule, values, current=partial)
    await ctx.db.flush()
    now = utcnow()
    if target.id != course.id:
        # Sessions already generated belong to the old course: drop the future ones.
        await remove_future_sessions(ctx.db, schedule.id, now=now)
    if _timing(schedule) != before:
        await check_and_generate(ctx.db, ctx.state.settings.courses, schedule, target, now=now,
                                 refresh=True)
    elif target.is_active:
        # Same times: future sessions only take the new title and description.
        await sync_schedule(
            ctx.db,
            schedule,
            now=now,
            horizon=timedelta(days=ctx.state.settings.courses.schedule_horizon_days),
            refresh=True,
        )
    return json(schedule_json(schedule, now=now))


@routes.route("PUT", "/schedules/{schedule_id}/", name="schedules.replace",
              body=ScheduleCreate,
              summary="Replace a schedule (its course's teacher or an admin); future"
              " scheduled sessions follow; 409 schedule_conflict on double-booking")
async def replace(ctx: Ctx) -> Any:
    return await _update(ctx, ctx.parsed(ScheduleCreate).model_dump(), partial=False)


@routes.route("PATCH", "/schedules/{schedule_id}/", name="schedules.update",
              body=SchedulePatch,
              summary="Change some fields of a schedule (its course's teacher or an admin)")
async def update(ctx: Ctx) -> Any:
    return await _update(
        ctx, ctx.parsed(SchedulePatch).model_dump(exclude_unset=True), partial=True
    )


@routes.route("DELETE", "/schedules/{schedule_id}/", name="schedules.delete",
              summary="Delete a schedule (its course's teacher or an admin): its future"
              " scheduled sessions go; past, live and ended ones are kept")
async def delete_schedule(ctx: Ctx) -> Any:
    schedule, course = await _schedule(ctx, write=True)
    removed = await remove_future_sessions(ctx.db, schedule.id, now=utcnow())
    if removed:
        await schedule_removed(ctx.db, schedule, course)
    ctx.audit_detail["removed_sessions"] = removed
    await ctx.db.delete(schedule)
    await ctx.db.flush()
    return no_content()

