"""Recording progress over HTTP: the player's position reports and resume point, the
per-recording report for staff, and a course's completion per student (JSON or CSV)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from control.api.schedule_or_session import load_in_course
from control.courses.permissions import managed_course, require_staff
from control.errors import ApiError, conflict
from control.http.bodies import Body, Query
from control.http.responses import json
from control.http.routing import Ctx, Routes
from control.models import CourseSession
from control.models.base import utcnow
from control.progress.completion import course_completion
from control.progress.watch_report import watch_report
from control.progress.watching import Progress, progress_of, report_position
from control.streaming.playback_access import playable_kind, playback_refusal

routes = Routes("progress")

# Longest recording a report may describe: a day. Positions are bounded by it.
MAX_SECONDS = 86_400.0


class ProgressBody(Body):
    """A position past the duration is taken as the end (players round both)."""

    position_seconds: float = Field(ge=0, le=MAX_SECONDS)
    duration_seconds: float = Field(gt=0, le=MAX_SECONDS)


class CompletionQuery(Query):
    format: Literal["json", "csv"] = "json"


def _progress_json(progress: Progress) -> dict[str, Any]:
    return {
        "position_seconds": progress.position_seconds,
        "duration_seconds": progress.duration_seconds,
        "watched_seconds": round(progress.watched_seconds, 1),
        "watched_share": round(progress.watched_share, 3),
        "updated_at": progress.updated_at,
    }


async def _recording(ctx: Ctx) -> CourseSession:
    """The session, if the caller may play it and it has a recording."""
    session, _ = await load_in_course(ctx, CourseSession, ctx.param("session_id"), "session")
    refusal = await playback_refusal(ctx.db, ctx.me, session)
    if refusal is not None:
        raise ApiError(403, refusal.value, refusal.message)
    if playable_kind(session) != "recording":
        raise conflict("not_available", f"session {session.id} has no recording to watch")
    return session


@routes.route("PUT", "/sessions/{session_id}/progress", name="progress.report",
              body=ProgressBody, audited=False,
              summary="Where I am in the session's recording (the player, every few seconds"
              " while it plays); stored at most once per progress_write_seconds per person,"
              " \"saved\" says whether this one was; 403 like playback, 409 not_available")
async def report(ctx: Ctx) -> Any:
    session = await _recording(ctx)
    body = ctx.parsed(ProgressBody)
    progress, saved = await report_position(
        ctx.db, ctx.me, session.id,
        position=body.position_seconds, duration=body.duration_seconds, now=utcnow(),
        min_interval=timedelta(seconds=ctx.state.settings.courses.progress_write_seconds),
    )
    return json({**_progress_json(progress), "saved": saved})


@routes.route("GET", "/sessions/{session_id}/progress", name="progress.get",
              summary="My place in the session's recording, to resume there (zeros before"
              " the first report)")
async def get(ctx: Ctx) -> Any:
    session = await _recording(ctx)
    return json(_progress_json(await progress_of(ctx.db, session.id, ctx.me.id)))


@routes.route("GET", "/sessions/{session_id}/progress/report", name="progress.session_report",
              audit_read=True,
              summary="Who watched what share of the session's recording (the course's"
              " teacher or an admin): one row per student, by username")
async def session_report(ctx: Ctx) -> Any:
    session, course = await load_in_course(ctx, CourseSession, ctx.param("session_id"), "session")
    require_staff(ctx.me, course)
    rows = await watch_report(ctx.db, session)
    return json([
        {"user_id": r.user_id, "username": r.username, "display_name": r.display_name,
         **_progress_json(r.progress)}
        for r in rows
    ])


@routes.route("GET", "/courses/{course_id}/completion", name="progress.completion",
              query=CompletionQuery, audit_read=True,
              summary="The course's completion per enrolled student (its teacher or an"
              " admin): a class is done when attended live or its recording watched to"
              " recording_watched_percent; ?format=csv for a spreadsheet")
async def completion(ctx: Ctx) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"))
    settings = ctx.state.settings.courses
    rows = await course_completion(
        ctx.db, course, utcnow(), present_percent=settings.attendance_present_percent,
        watched_percent=settings.recording_watched_percent,
    )
    if ctx.parsed_query(CompletionQuery).format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["user_id", "username", "sessions", "attended_live",
                         "watched_recording", "done", "completion_percent"])
        for row in rows:
            attended = sum(1 for m in row.sessions if m.attended)
            watched = sum(1 for m in row.sessions if m.done and not m.attended)
            writer.writerow([row.user_id, row.username, len(row.sessions), attended, watched,
                             row.done, f"{row.percent:.1f}"])
        return web.Response(
            text=out.getvalue(), content_type="text/csv",
            headers={"Content-Disposition":
                     f'attachment; filename="course-{course.id}-completion.csv"'},
        )
    return json([
        {"user_id": r.user_id, "username": r.username, "display_name": r.display_name,
         "done": r.done,
         "sessions_total": len(r.sessions), "completion_percent": r.percent,
         "sessions": [{"session_id": m.session_id, "attended": m.attended,
                       "watched_share": m.watched_share, "done": m.done}
                      for m in r.sessions]}
        for r in rows
    ])
