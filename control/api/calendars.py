"""Calendars over HTTP: my private feed's URL (rotate, revoke), the feed itself (the secret
in its URL is the only credential: calendar apps cannot sign in), and a public course's
feed."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field

from control.calendars.feed import calendar
from control.calendars.feed_courses import classes_of, courses_for, is_public
from control.calendars.feed_secrets import feed_of, owner, revoke, rotate
from control.errors import not_found
from control.http.bodies import Query
from control.http.responses import json, no_content
from control.http.routing import Ctx, Routes
from control.models import CalendarFeed, Course
from control.models.base import utcnow

routes = Routes("calendars")


class FeedQuery(Query):
    key: str = Field(min_length=1, max_length=100)


def _described(ctx: Ctx, feed: CalendarFeed) -> dict[str, Any]:
    return {
        "url": f"{ctx.state.settings.public_url}/calendar/feed.ics?key={feed.secret}",
        "created_at": feed.created_at,
    }


def _ics(body: bytes, filename: str) -> web.Response:
    return web.Response(
        body=body, content_type="text/calendar", charset="utf-8",
        headers={"Content-Disposition": f'inline; filename="{filename}"',
                 # The URL is a secret: keep it and the feed out of shared caches.
                 "Cache-Control": "private, max-age=300",
                 "Referrer-Policy": "no-referrer"},
    )


@routes.route("GET", "/me/calendar", name="calendars.mine", audit_read=True,
              summary="My private calendar feed's URL (made on first ask): the sessions of"
              " the courses I study or teach; the secret in it is the only credential")
async def mine(ctx: Ctx) -> Any:
    feed = await feed_of(ctx.db, ctx.me, create=True)
    assert feed is not None
    return json(_described(ctx, feed))


@routes.route("POST", "/me/calendar/rotate", name="calendars.rotate",
              summary="A new secret for my feed: the old URL stops working at once")
async def rotate_mine(ctx: Ctx) -> Any:
    return json(_described(ctx, await rotate(ctx.db, ctx.me)))


@routes.route("DELETE", "/me/calendar", name="calendars.revoke",
              summary="Revoke my feed's secret (a later GET /me/calendar makes a new one)")
async def revoke_mine(ctx: Ctx) -> Any:
    if not await revoke(ctx.db, ctx.me):
        raise not_found("calendar feed")
    return no_content()


@routes.route("GET", "/calendar/feed.ics", name="calendars.feed", query=FeedQuery,
              public=True,
              summary="A private iCalendar feed (text/calendar); key is its secret;"
              " 404 for an unknown or revoked one")
async def feed(ctx: Ctx) -> Any:
    user = await owner(ctx.db, ctx.parsed_query(FeedQuery).key)
    if user is None:
        raise not_found("calendar feed")
    courses = await courses_for(ctx.db, user)
    body = calendar(f"Academia Live: {user.username}", await classes_of(ctx.db, courses),
                    public_url=ctx.state.settings.public_url, stamp=utcnow())
    return _ics(body, "academia.ics")


@routes.route("GET", "/courses/{course_id}/calendar.ics", name="calendars.course",
              public=True,
              summary="A public course's iCalendar feed (text/calendar); 404 for a course"
              " that is not public")
async def course_feed(ctx: Ctx) -> Any:
    course = await ctx.db.get(Course, ctx.param("course_id"))
    if course is None or not is_public(course):
        raise not_found("course")
    body = calendar(course.title, await classes_of(ctx.db, [course]),
                    public_url=ctx.state.settings.public_url, stamp=utcnow())
    return _ics(body, f"course-{course.id}.ics")
