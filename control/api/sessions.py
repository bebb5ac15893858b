"""Class sessions: listing them, one-off sessions, edits, cancelling and deleting.

Anyone who can see a course may read its sessions; its teacher and admins write them.
Status changes go through control.sessions.states (illegal ones answer 409). Live and
ended sessions are history: they are never deleted. Deleting a session generated from
a schedule also adds its occurrence to the schedule's EXDATEs, so the periodic
generation does not bring it back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, Field
from sqlalchemy import Select, or_, select, tuple_

from control.api.live_notice import notify_session_ended
from control.api.schedule_or_session import load_in_course
from control.courses.permissions import (
    is_staff,
    managed_course,
    teaches_filter,
    visibility_filter,
    visible_course,
)
from control.errors import bad_request, forbidden, unprocessable
from control.http.bodies import Body, Id, Query, QueryDateTime
from control.http.cursor import decode_cursor, next_link
from control.http.responses import json, no_content
from control.http.routing import Ctx, Routes
from control.models import (
    Course,
    CourseSession,
    Enrollment,
    EnrollmentStatus,
    Role,
    SessionStatus,
    User,
)
from control.models.base import utcnow
from control.scheduling.double_booking import refuse_clash
from control.scheduling.recurrence import Occurrence
from control.sessions.deletion import delete_session
from control.sessions.live import move_session
from control.sessions.rescheduling import move_times, refuse_unless_scheduled

routes = Routes("sessions")


class SessionCreate(Body):
    course_id: Id
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=50_000)
    start_time: AwareDatetime
    end_time: AwareDatetime


class SessionReplace(Body):
    course_id: Id | None = None  # accepted so a fetched session can be sent back; not movable
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=50_000)
    start_time: AwareDatetime
    end_time: AwareDatetime
    status: SessionStatus | None = None
    # No recording_url in either body: media URLs are the server's alone (set when the
    # recording is ready), so a body naming one is refused like any unknown field.
    is_active: bool = True


class SessionPatch(Body):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=50_000)
    start_time: AwareDatetime | None = None
    end_time: AwareDatetime | None = None
    status: SessionStatus | None = None
    is_active: bool | None = None


class SessionListQuery(Query):
    course_id: Id | None = None
    status: SessionStatus | None = None
    # Sessions starting in [from, to); a time without a zone is taken as UTC.
    from_: QueryDateTime | None = Field(default=None, alias="from")
    to: QueryDateTime | None = None
    cursor: str | None = None
    limit: int = Field(default=50, ge=1, le=200)


def session_json(session: CourseSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "course_id": session.course_id,
        "schedule_id": session.schedule_id,
        "occurrence_start": session.occurrence_start,
        "title": session.title,
        "description": session.description,
        "start_time": session.start_time,
        "end_time": session.end_time,
        "duration_minutes": int((session.end_time - session.start_time).total_seconds() // 60),
        "status": session.status.value,
        "started_at": session.started_at,
        "ended_at": session.ended_at,
        "recording_url": session.recording_url,
        "attendance_count": session.attendance_count,
        "is_active": session.is_active,
        "created_at": session.created_at,
    }


def check_times(ctx: Ctx, start: datetime, end: datetime) -> None:
    if end <= start:
        raise unprocessable("end_time must be after start_time")
    limit = ctx.state.settings.courses.session_duration_limit
    if (end - start).total_seconds() > limit * 60:
        raise unprocessable(
            f"a session may last at most {limit} minutes (session_duration_limit)",
            "session_too_long",
        )


async def _session(ctx: Ctx, *, write: bool = False) -> tuple[CourseSession, Course]:
    return await load_in_course(ctx, CourseSession, ctx.param("session_id"), "session", write=write)



def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _filtered(stmt: Select[Any], q: SessionListQuery) -> Select[Any]:
    if q.status is not None:
        stmt = stmt.where(CourseSession.status == q.status)
    start, end = _utc(q.from_), _utc(q.to)
    if start is not None:
        stmt = stmt.where(CourseSession.start_time >= start)
    if end is not None:
        stmt = stmt.where(CourseSession.start_time < end)
    if q.cursor:
        value, last_id = decode_cursor(q.cursor, "start_time")
        try:
            after = datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise bad_request("the cursor is not one this server gave", "bad_cursor") from None
        stmt = stmt.where(tuple_(CourseSession.start_time, CourseSession.id) > (after, last_id))
    return stmt.order_by(CourseSession.start_time, CourseSession.id).limit(q.limit + 1)


async def _page(ctx: Ctx, stmt: Select[Any], q: SessionListQuery) -> dict[str, Any]:
    rows = (await ctx.db.scalars(_filtered(stmt, q))).all()
    results = [session_json(s) for s in rows[: q.limit]]
    next_url = None
    if len(rows) > q.limit:
        last = rows[q.limit - 1]
        next_url = next_link(ctx.request, "start_time", last.start_time.isoformat(), last.id)
    return {"results": results, "next": next_url}


def _hide_inactive_from(me: User) -> Any:
    """Non-staff do not see sessions their course's staff switched off."""
    if me.role == Role.ADMIN:
        return None
    return or_(CourseSession.is_active.is_(True), teaches_filter(me))


@routes.route("GET", "/sessions/", name="sessions.list", query=SessionListQuery,
              summary="List sessions of the courses the caller can see (?course_id, status,"
              " from, to)")
async def list_sessions(ctx: Ctx) -> Any:
    me = ctx.me
    q = ctx.parsed_query(SessionListQuery)
    stmt = select(CourseSession).join(Course, Course.id == CourseSession.course_id)
    if q.course_id is not None:
        await visible_course(ctx.db, me, q.course_id)
        stmt = stmt.where(CourseSession.course_id == q.course_id)
    else:
        visible = visibility_filter(me)
        if visible is not None:
            stmt = stmt.where(visible)
    hidden = _hide_inactive_from(me)
    if hidden is not None:
        stmt = stmt.where(hidden)
    return json(await _page(ctx, stmt, q))


@routes.route("GET", "/courses/{course_id}/sessions/", name="sessions.course_list",
              query=SessionListQuery,
              summary="A course's sessions (anyone who can see the course)")
async def course_sessions(ctx: Ctx) -> Any:
    me = ctx.me
    q = ctx.parsed_query(SessionListQuery)
    course = await visible_course(ctx.db, me, ctx.param("course_id"))
    stmt = select(CourseSession).where(CourseSession.course_id == course.id)
    if not is_staff(me, course):
        stmt = stmt.where(CourseSession.is_active.is_(True))
    return json(await _page(ctx, stmt, q))


@routes.route("GET", "/courses/{course_id}/student-sessions/", name="sessions.student_list",
              query=SessionListQuery,
              summary="The sessions of a course the caller is actively enrolled in"
              " (students with an active enrollment only)")
async def student_sessions(ctx: Ctx) -> Any:
    me = ctx.me
    q = ctx.parsed_query(SessionListQuery)
    course = await visible_course(ctx.db, me, ctx.param("course_id"))
    enrolled = await ctx.db.scalar(
        select(Enrollment.id).where(
            Enrollment.course_id == course.id,
            Enrollment.student_id == me.id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
        )
    )
    if enrolled is None:
        raise forbidden("only students actively enrolled in this course see its sessions here")
    stmt = select(CourseSession).where(
        CourseSession.course_id == course.id, CourseSession.is_active.is_(True)
    )
    return json(await _page(ctx, stmt, q))


@routes.route("POST", "/sessions/", name="sessions.create", body=SessionCreate,
              summary="Create a one-off session (the course's teacher or an admin); 409"
              " schedule_conflict if it double-books the teacher")
async def create(ctx: Ctx) -> Any:
    body = ctx.parsed(SessionCreate)
    course = await managed_course(ctx.db, ctx.me, body.course_id, lock=True)
    check_times(ctx, body.start_time, body.end_time)
    await refuse_clash(
        ctx.db,
        teacher_id=course.teacher_id,
        candidate=[Occurrence(start=body.start_time, end=body.end_time)],
    )
    session = CourseSession(
        course_id=course.id,
        title=body.title,
        description=body.description,
        start_time=body.start_time.astimezone(UTC),
        end_time=body.end_time.astimezone(UTC),
        status=SessionStatus.SCHEDULED,
    )
    ctx.db.add(session)
    await ctx.db.flush()
    return json(session_json(session), status=201)


@routes.route("GET", "/sessions/{session_id}/", name="sessions.get",
              summary="One session (anyone who can see its course)")
async def get(ctx: Ctx) -> Any:
    session, _ = await _session(ctx)
    return json(session_json(session))


def _present_percent(ctx: Ctx) -> int:
    return ctx.state.settings.courses.attendance_present_percent


async def _update(ctx: Ctx, values: dict[str, Any]) -> Any:
    session, course = await _session(ctx, write=True)
    if values.pop("course_id", None) not in (None, session.course_id):
        raise unprocessable("a session cannot move to another course")
    start = values.pop("start_time", None) or session.start_time
    end = values.pop("end_time", None) or session.end_time
    if (start, end) != (session.start_time, session.end_time):
        refuse_unless_scheduled(session)
        check_times(ctx, start, end)
        await move_times(ctx.db, session, course, start, end)
    target = values.pop("status", None)
    for name, value in values.items():
        if value is not None:
            setattr(session, name, value)
    if target is not None and target != session.status:
        if await move_session(ctx.db, session, course, target, now=utcnow(),
                              present_percent=_present_percent(ctx)):
            notify_session_ended(ctx, course.id, session.id)
    await ctx.db.flush()
    return json(session_json(session))


@routes.route("PUT", "/sessions/{session_id}/", name="sessions.replace", body=SessionReplace,
              summary="Replace a session's fields (the course's teacher or an admin); a"
              " status change follows the session lifecycle")
async def replace(ctx: Ctx) -> Any:
    return await _update(ctx, ctx.parsed(SessionReplace).model_dump())


@routes.route("PATCH", "/sessions/{session_id}/", name="sessions.update", body=SessionPatch,
              summary="Change some fields of a session (the course's teacher or an admin);"
              " a status change follows the session lifecycle")
async def update(ctx: Ctx) -> Any:
    return await _update(ctx, ctx.parsed(SessionPatch).model_dump(exclude_unset=True))


@routes.route("POST", "/sessions/{session_id}/cancel", name="sessions.cancel",
              summary="Cancel a scheduled or live session (the course's teacher or an admin)")
async def cancel(ctx: Ctx) -> Any:
    session, course = await _session(ctx, write=True)
    if await move_session(ctx.db, session, course, SessionStatus.CANCELLED, now=utcnow(),
                          present_percent=_present_percent(ctx)):
        notify_session_ended(ctx, course.id, session.id)
    return json(session_json(session))


@routes.route("DELETE", "/sessions/{session_id}/", name="sessions.delete",
              summary="Delete a scheduled or cancelled session (the course's teacher or an"
              " admin); live and ended sessions are history and answer 409")
async def delete(ctx: Ctx) -> Any:
    session, _ = await _session(ctx, write=True)
    await delete_session(ctx.db, session)
    return no_content()

