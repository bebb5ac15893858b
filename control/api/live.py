"""Going live over HTTP: start and end a course's broadcast, and ask whether it is live.

The work is done by control.sessions.live, which the media server calls too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from control.api.live_notice import notify_session_ended
from control.api.sessions import session_json
from control.courses.permissions import managed_course, visible_course
from control.errors import conflict
from control.http.responses import json
from control.http.routing import Ctx, Routes
from control.models import Course, CourseSession, SessionStatus
from control.models.base import utcnow
from control.sessions.live import end_live, go_live
from control.sessions.states import live_session

routes = Routes("live")


def live_json(course: Course, session: CourseSession | None) -> dict[str, Any]:
    live = session is not None and session.status == SessionStatus.LIVE
    return {
        "course_id": course.id,
        "is_live": live,
        "session_id": session.id if live and session else None,
        "since": session.started_at if live and session else None,
        "session": session_json(session) if live and session else None,
    }


@routes.route("POST", "/courses/{course_id}/start-live", name="live.start",
              summary="Go live (the course's teacher or an admin): the scheduled session"
              " whose window is now, else an ad-hoc one; 409 already_live")
async def start_live(ctx: Ctx) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"), lock=True)
    session = await go_live(ctx.db, course, now=utcnow(), settings=ctx.state.settings.courses)
    ctx.audit_detail["session_id"] = session.id
    return json(live_json(course, session))


@routes.route("POST", "/courses/{course_id}/end-live", name="live.end",
              summary="End the live session (the course's teacher or an admin); 409 not_live")
async def stop_live(ctx: Ctx) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"), lock=True)
    session = await end_live(
        ctx.db, course, now=utcnow(),
        present_percent=ctx.state.settings.courses.attendance_present_percent,
    )
    if session is None:
        raise conflict("not_live", f"course {course.id} is not live")
    ctx.audit_detail["session_id"] = session.id
    notify_session_ended(ctx, course.id, session.id)
    return json({**live_json(course, None), "ended_session": session_json(session)})


@routes.route("GET", "/courses/{course_id}/live-status", name="live.status", public=True,
              summary="Whether the course is live now, since when, and in which session"
              " (anyone who can see the course)")
async def live_status(ctx: Ctx) -> Any:
    course = await visible_course(ctx.db, ctx.user, ctx.param("course_id"))
    session = await live_session(ctx.db, course.id)
    result = live_json(course, session)
    upcoming = (
        await ctx.db.scalars(
            select(CourseSession)
            .where(
                CourseSession.course_id == course.id,
                CourseSession.status == SessionStatus.SCHEDULED,
                CourseSession.is_active.is_(True),
                CourseSession.end_time > utcnow(),
            )
            .order_by(CourseSession.start_time, CourseSession.id)
            .limit(1)
        )
    ).first()
    result["next_session"] = session_json(upcoming) if upcoming else None
    observer = ctx.state.live_observer
    details = await observer.details(course.id) if observer is not None and session else None
    # The stream itself (input bitrate, codecs, renditions) while a node carries it.
    result["stream"] = details
    return json(result)
