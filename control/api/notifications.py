"""A person's notifications: the in-app list with its unread count, marking read, the
channels they want, and unsubscribing from mail through a signed link (no sign-in)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import func, select, update

from control.errors import bad_request, not_found
from control.http.bodies import Body, Id, Query
from control.http.responses import json
from control.http.routing import Ctx, Routes
from control.models import Notification, User
from control.models.base import utcnow
from control.notifications.preferences import channels_of, set_channels
from control.notifications.unsubscribe import UnsubscribeError, read_token, unsubscribe_key

routes = Routes("notifications")


class InboxQuery(Query):
    unread: bool = False  # only the unread ones
    before_id: Id | None = None  # the next page: older than this one
    limit: int = Field(default=20, ge=1, le=100)


class ChannelsBody(Body):
    email: bool | None = None
    in_app: bool | None = None


class UnsubscribeQuery(Query):
    token: str = Field(min_length=1, max_length=200)


def notification_json(row: Notification) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "title": row.title,
        "body": row.body,
        "link": row.link,
        "course_id": row.course_id,
        "created_at": row.created_at,
        "read_at": row.read_at,
    }


@routes.route("GET", "/me/notifications", name="notifications.list", query=InboxQuery,
              summary="The caller's in-app notifications, newest first, and how many are"
              " unread (?unread=true, before_id, limit)")
async def list_mine(ctx: Ctx) -> Any:
    me = ctx.me
    q = ctx.parsed_query(InboxQuery)
    stmt = select(Notification).where(Notification.user_id == me.id)
    if q.unread:
        stmt = stmt.where(Notification.read_at.is_(None))
    if q.before_id is not None:
        stmt = stmt.where(Notification.id < q.before_id)
    rows = (await ctx.db.scalars(stmt.order_by(Notification.id.desc()).limit(q.limit))).all()
    unread = await ctx.db.scalar(
        select(func.count()).select_from(Notification)
        .where(Notification.user_id == me.id, Notification.read_at.is_(None))
    )
    return json({"results": [notification_json(n) for n in rows], "unread": unread or 0})


@routes.route("POST", "/me/notifications/{notification_id}/read", name="notifications.read",
              audited=False,
              summary="Mark one of the caller's notifications read")
async def mark_read(ctx: Ctx) -> Any:
    row = await ctx.db.get(Notification, ctx.param("notification_id"))
    if row is None or row.user_id != ctx.me.id:
        raise not_found("notification")  # someone else's is not theirs to know of
    if row.read_at is None:
        row.read_at = utcnow()
    return json(notification_json(row))


@routes.route("POST", "/me/notifications/read-all", name="notifications.read_all",
              audited=False, summary="Mark all the caller's notifications read")
async def mark_all_read(ctx: Ctx) -> Any:
    result = await ctx.db.execute(
        update(Notification)
        .where(Notification.user_id == ctx.me.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return json({"marked": int(result.rowcount or 0)})  # type: ignore[attr-defined]


@routes.route("GET", "/me/notification-preferences", name="notifications.preferences",
              summary="The channels the caller is told through: {email, in_app}")
async def preferences(ctx: Ctx) -> Any:
    me = ctx.me
    channels = (await channels_of(ctx.db, [me.id]))[me.id]
    return json({"email": channels.email, "in_app": channels.in_app,
                 "email_address": me.email})


@routes.route("PUT", "/me/notification-preferences", name="notifications.set_preferences",
              body=ChannelsBody,
              summary="Choose the channels the caller is told through: {email?, in_app?}")
async def set_preferences(ctx: Ctx) -> Any:
    body = ctx.parsed(ChannelsBody)
    channels = await set_channels(ctx.db, ctx.me.id, email=body.email, in_app=body.in_app)
    return json({"email": channels.email, "in_app": channels.in_app,
                 "email_address": ctx.me.email})


@routes.route("POST", "/mail/unsubscribe", name="notifications.unsubscribe",
              query=UnsubscribeQuery, public=True,
              summary="Stop mail through the signed link every mail carries (no sign-in;"
              " RFC 8058 one-click): ?token=")
async def unsubscribe(ctx: Ctx) -> Any:
    token = ctx.parsed_query(UnsubscribeQuery).token
    try:
        user_id, channel = read_token(unsubscribe_key(ctx.state.settings), token)
    except UnsubscribeError as exc:
        raise bad_request(str(exc), "bad_token") from None
    if channel != "email" or await ctx.db.get(User, user_id) is None:
        raise bad_request("this unsubscribe link is not valid", "bad_token")
    await set_channels(ctx.db, user_id, email=False)
    ctx.audit_detail["user_id"] = user_id
    return json({"unsubscribed": "email"})
