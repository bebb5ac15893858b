"""The chat over HTTP: tickets to open the chat WebSocket (control.chat.websocket), and
moderation by a course's teacher and admins: delete messages, ban, mute, and slow mode.

Changes reach open sockets after the transaction commits: a deleted message is
withdrawn from every viewer, a banned user's sockets are told at once. Telling them
only queues frames: no moderation call waits on a reader.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import select

from control.chat.access import chat_right
from control.chat.frames import deleted_frame, error_frame
from control.chat.hub import CHAT_HUB, ChatHub
from control.chat.tickets import issue_ticket, token_id
from control.courses.permissions import is_staff, managed_course, require_staff, visible_course
from control.errors import ApiError, not_found, unprocessable
from control.http.bodies import Body, Id
from control.http.client_address import client_address
from control.http.responses import json, no_content
from control.http.routing import Before, Ctx, Routes
from control.models import ChatBan, ChatMessage, ChatMute, Course, CourseSession, User

routes = Routes("chat")


class BanBody(Body):
    user_id: Id


class MuteBody(Body):
    user_id: Id
    minutes: int = Field(ge=1, le=7 * 24 * 60)


class ChatSettingsBody(Body):
    slow_mode_seconds: int = Field(ge=0, le=3600)


def _hub(ctx: Ctx) -> ChatHub:
    return ctx.request.app[CHAT_HUB]


async def _sanctionable(ctx: Ctx, course: Course, user_id: int) -> User:
    user = await ctx.db.get(User, user_id)
    if user is None:
        raise not_found("user")
    if is_staff(user, course):
        raise unprocessable("the course's staff cannot be banned or muted", "staff_exempt")
    return user


def _ban_json(ban: ChatBan, username: str) -> dict[str, Any]:
    return {"user_id": ban.user_id, "username": username, "banned_by_id": ban.banned_by_id,
            "created_at": ban.created_at}


async def limit_anonymous_tickets(pre: Before) -> None:
    """Anonymous callers get tickets at a bounded rate per address, checked before the
    write transaction (and its lock) is taken."""
    if pre.user is None:
        state = pre.state
        await state.sign_in_limits.before_anonymous_ticket(
            client_address(pre.request, state.trusted_proxies)
        )


@routes.route("POST", "/sessions/{session_id}/chat-ticket", name="chat.ticket", public=True,
              audited=False, prepare=limit_anonymous_tickets,
              summary="A ticket to open the session's chat WebSocket (GET"
              " /sessions/{session_id}/chat?ticket=...): good for one connection, for"
              " chat_ticket_ttl_seconds; anonymous callers get one for a public chat")
async def chat_ticket(ctx: Ctx) -> Any:
    session = await ctx.db.get(CourseSession, ctx.param("session_id"))
    course = await ctx.db.get(Course, session.course_id) if session else None
    if session is None or course is None:
        raise not_found("session")
    # The same refusals as the WebSocket would give, before any ticket exists.
    await chat_right(ctx.db, ctx.user, session, course)
    token = (
        await token_id(ctx.db, ctx.request.headers.get("Authorization", ""))
        if ctx.user else None
    )
    ticket, expires_at = await issue_ticket(
        ctx.db, session.id, ctx.user.id if ctx.user else None, token, _hub(ctx).clock(),
        ctx.state.settings.courses.chat_ticket_ttl_seconds,
    )
    return json({"ticket": ticket, "expires_at": expires_at}, status=201)


@routes.route("DELETE", "/chat/messages/{message_id}", name="chat.delete_message",
              summary="Delete a chat message (the course's teacher or an admin): it leaves the"
              " history and every open chat; deleting it again answers 204 too")
async def delete_message(ctx: Ctx) -> Any:
    message = await ctx.db.get(ChatMessage, ctx.param("message_id"))
    session = await ctx.db.get(CourseSession, message.session_id) if message else None
    if message is None or session is None:
        raise not_found("message")
    try:
        course = await visible_course(ctx.db, ctx.me, session.course_id)
    except ApiError:
        raise not_found("message") from None
    require_staff(ctx.me, course)
    ctx.audit_detail["session_id"] = session.id
    if message.deleted_at is None:
        hub = _hub(ctx)
        message.deleted_at = hub.clock()
        message.deleted_by_id = ctx.me.id

        async def withdraw() -> None:
            hub.broadcast(session.id, deleted_frame(message.id))

        ctx.after_commit.append(withdraw)
    return no_content()


@routes.route("GET", "/courses/{course_id}/chat-bans", name="chat.bans",
              summary="Who is banned from the course's chat (the course's teacher or an admin)")
async def list_bans(ctx: Ctx) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"))
    rows = (
        await ctx.db.execute(
            select(ChatBan, User.username)
            .join(User, User.id == ChatBan.user_id)
            .where(ChatBan.course_id == course.id)
            .order_by(ChatBan.id)
        )
    ).all()
    return json([_ban_json(ban, username) for ban, username in rows])


@routes.route("POST", "/courses/{course_id}/chat-bans", name="chat.ban", body=BanBody,
              summary="Ban a user from the course's chat (the course's teacher or an admin);"
              " their open chats are told at once; banning again changes nothing")
async def ban(ctx: Ctx) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"), lock=True)
    user = await _sanctionable(ctx, course, ctx.parsed(BanBody).user_id)
    ctx.audit_detail["user_id"] = user.id
    existing = await ctx.db.scalar(
        select(ChatBan).where(ChatBan.course_id == course.id, ChatBan.user_id == user.id)
    )
    if existing is not None:
        return json(_ban_json(existing, user.username))
    row = ChatBan(course_id=course.id, user_id=user.id, banned_by_id=ctx.me.id,
                  created_at=_hub(ctx).clock())
    ctx.db.add(row)
    await ctx.db.flush()
    hub, course_id, user_id = _hub(ctx), course.id, user.id

    async def tell() -> None:
        hub.tell_user(course_id, user_id,
                      error_frame("banned", "you are banned from this course's chat"))

    ctx.after_commit.append(tell)
    return json(_ban_json(row, user.username), status=201)


@routes.route("DELETE", "/courses/{course_id}/chat-bans/{user_id}", name="chat.unban",
              summary="Lift a chat ban (the course's teacher or an admin); 404 if none")
async def unban(ctx: Ctx) -> Any:
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"), lock=True)
    row = await ctx.db.scalar(
        select(ChatBan).where(
            ChatBan.course_id == course.id, ChatBan.user_id == ctx.param("user_id")
        )
    )
    if row is None:
        raise not_found("chat ban")
    await ctx.db.delete(row)
    return no_content()


@routes.route("POST", "/courses/{course_id}/chat-mutes", name="chat.mute", body=MuteBody,
              summary="Mute a user in the course's chat for some minutes (the course's"
              " teacher or an admin); a new mute replaces the previous one")
async def mute(ctx: Ctx) -> Any:
    body = ctx.parsed(MuteBody)
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"), lock=True)
    user = await _sanctionable(ctx, course, body.user_id)
    now = _hub(ctx).clock()
    until = now + timedelta(minutes=body.minutes)
    row = await ctx.db.scalar(
        select(ChatMute).where(ChatMute.course_id == course.id, ChatMute.user_id == user.id)
    )
    if row is None:
        row = ChatMute(course_id=course.id, user_id=user.id, until=until)
        ctx.db.add(row)
    row.until, row.muted_by_id, row.created_at = until, ctx.me.id, now
    await ctx.db.flush()
    ctx.audit_detail.update(user_id=user.id, minutes=body.minutes)
    return json({"user_id": user.id, "until": until}, status=201)


@routes.route("PUT", "/courses/{course_id}/chat-settings", name="chat.settings",
              body=ChatSettingsBody,
              summary="Set the course's chat slow mode: a student posts at most once per"
              " slow_mode_seconds, 0 is off (the course's teacher or an admin)")
async def chat_settings(ctx: Ctx) -> Any:
    body = ctx.parsed(ChatSettingsBody)
    course = await managed_course(ctx.db, ctx.me, ctx.param("course_id"), lock=True)
    course.chat_slow_mode_seconds = body.slow_mode_seconds
    ctx.audit_detail["slow_mode_seconds"] = body.slow_mode_seconds
    return json({"course_id": course.id, "chat_mode": course.chat_mode.value,
                 "slow_mode_seconds": course.chat_slow_mode_seconds})
