"""Attendance over HTTP: the player's heartbeat, and the per-session report for staff."""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

from aiohttp import web

from control.api.schedule_or_session import load_in_course
from control.courses.permissions import require_staff
from control.errors import ApiError, conflict
from control.http.bodies import Body, Query
from control.http.responses import json, no_content
from control.http.routing import Ctx, Routes
from control.models import CourseSession, SessionStatus
from control.models.base import utcnow
from control.sessions.attendance import attendance_report, record_presence
from control.streaming.playback_access import playback_refusal

routes = Routes("attendance")


class HeartbeatBody(Body):
    """Nothing needed: the caller and the session say it all."""


class ReportQuery(Query):
    format: Literal["json", "csv"] = "json"


@routes.route("POST", "/sessions/{session_id}/heartbeat", name="attendance.heartbeat",
              body=HeartbeatBody, body_optional=True, audited=False,
              summary="I am watching: the player calls this every heartbeat_seconds while the"
              " session is live (a signed-in user who may play it); 409 not_live")
async def heartbeat(ctx: Ctx) -> Any:
    me = ctx.me
    session, _ = await load_in_course(ctx, CourseSession, ctx.param("session_id"), "session")
    refusal = await playback_refusal(ctx.db, me, session)
    if refusal is not None:
        raise ApiError(403, refusal.value, refusal.message)
    if session.status != SessionStatus.LIVE:
        raise conflict("not_live", f"session {session.id} is not live")
    await record_presence(
        ctx.db, session.id, me.id, utcnow(), ctx.state.settings.courses.heartbeat_seconds
    )
    return no_content()


@routes.route("GET", "/sessions/{session_id}/attendance", name="attendance.report",
              query=ReportQuery, audit_read=True,
              summary="Who attended (the course's teacher or an admin): one row per student"
              " with minutes live and whether present; ?format=csv for a spreadsheet")
async def report(ctx: Ctx) -> Any:
    session, course = await load_in_course(ctx, CourseSession, ctx.param("session_id"), "session")
    require_staff(ctx.me, course)
    now = utcnow()
    rows = await attendance_report(
        ctx.db, session, now,
        present_percent=ctx.state.settings.courses.attendance_present_percent,
    )
    # The report is the moment to refresh the stored count (this request writes anyway).
    session.attendance_count = sum(1 for row in rows if row.present)
    if ctx.parsed_query(ReportQuery).format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["user_id", "username", "minutes", "present"])
        for row in rows:
            writer.writerow([row.user_id, row.username, f"{row.minutes:.1f}",
                             "true" if row.present else "false"])
        return web.Response(
            text=out.getvalue(), content_type="text/csv",
            headers={"Content-Disposition":
                     f'attachment; filename="session-{session.id}-attendance.csv"'},
        )
    return json([
        {"user_id": r.user_id, "username": r.username, "minutes": r.minutes,
         "present": r.present}
        for r in rows
    ])
