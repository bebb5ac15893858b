"""GET /sessions/{session_id}/chat?ticket=T: the chat WebSocket, and its installation.

Browsers cannot set headers on a WebSocket, and whatever the address carries ends up in
proxy logs, so it carries a chat ticket (control/chat/tickets.py: one upgrade, one
session, seconds), never the API token. Refusals before the upgrade are the API's usual
JSON errors (401/403/404/409); after it, errors are frames to the sender. Frames go out
through each socket's own bounded queue (control/chat/connection.py), and the socket's
access is checked again while it stays open (control/chat/access_recheck.py). A
signed-in user's open socket records attendance presence on joining, every heartbeat
period, and on leaving, while the session is live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import select

from control.chat.access import chat_right
from control.chat.access_recheck import access_recheck_context, signed_in_user
from control.chat.connection import ChatConnection, Grant
from control.chat.frames import ChatRefusal, error_frame, message_frame
from control.chat.hub import CHAT_HUB, ChatHub
from control.chat.moderation import is_banned
from control.chat.posting import post_message
from control.chat.presence import CHAT_PRESENCE, LocalPresence
from control.chat.tickets import redeem_ticket, ticket_required
from control.courses.permissions import is_staff
from control.errors import bad_request, not_found, unauthorized
from control.http.bodies import INT_MAX
from control.http.state import STATE, AppState
from control.models import ChatMessage, Course, CourseSession, SessionStatus, User
from control.sessions.attendance import record_presence

log = logging.getLogger(__name__)

CHAT_PATH = "/sessions/{session_id:\\d+}/chat"
# Pings find peers that vanished without closing (a laptop lid shut).
PING_SECONDS = 30.0


async def _history(state: AppState, session_id: int) -> list[dict[str, Any]]:
    """The last chat_message_limit messages still shown, oldest first."""
    limit = state.settings.courses.chat_message_limit
    async with state.database.transaction(write=False) as db:
        rows = (
            await db.execute(
                select(ChatMessage, User.username)
                .join(User, User.id == ChatMessage.user_id)
                .where(ChatMessage.session_id == session_id, ChatMessage.deleted_at.is_(None))
                .order_by(ChatMessage.id.desc())
                .limit(limit)
            )
        ).all()
    return [message_frame(message, username) for message, username in reversed(rows)]


async def _record_presence(state: AppState, hub: ChatHub, session_id: int, user_id: int) -> None:
    async with state.database.transaction(write=True) as db:
        status = await db.scalar(
            select(CourseSession.status).where(CourseSession.id == session_id)
        )
        if status == SessionStatus.LIVE:
            await record_presence(
                db, session_id, user_id, hub.clock(), state.settings.courses.heartbeat_seconds
            )


async def _keep_presence(state: AppState, hub: ChatHub, session_id: int, user_id: int) -> None:
    while True:
        try:
            await _record_presence(state, hub, session_id, user_id)
        except Exception:  # a failed write must not end the chat; the next one may succeed
            log.exception("recording chat presence failed for session %s", session_id)
        await asyncio.sleep(state.settings.courses.heartbeat_seconds)


async def _frame(state: AppState, hub: ChatHub, connection: ChatConnection, data: str) -> None:
    try:
        frame = json.loads(data)
    except ValueError:
        raise ChatRefusal("bad_frame", "a frame is a JSON object") from None
    if not isinstance(frame, dict) or frame.get("type") != "message":
        raise ChatRefusal("bad_frame", 'send {"type": "message", "text": ...}')
    await post_message(state, hub, connection, frame.get("text"))


async def chat_socket(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    hub = request.app[CHAT_HUB]
    settings = state.settings.courses
    session_id = int(request.match_info["session_id"])
    if session_id > INT_MAX:  # names no row, and no database could look it up
        raise not_found("session")
    ticket = request.query.get("ticket", "").strip()
    if not ticket:
        raise ticket_required()
    socket = web.WebSocketResponse(
        heartbeat=PING_SECONDS, max_msg_size=16 * settings.chat_max_length + 4096
    )
    if not socket.can_prepare(request).ok:  # before the ticket is spent on nothing
        raise bad_request("this address speaks WebSocket only", "websocket_required")
    # Used up in a transaction of its own: a refusal below does not give it back.
    async with state.database.transaction(write=True) as db:
        redeemed = await redeem_ticket(db, ticket, session_id, hub.clock())
        user_id, token_id = redeemed.user_id, redeemed.auth_token_id
    async with state.database.transaction(write=False) as db:
        user = None
        if user_id is not None:
            user = await signed_in_user(db, Grant(user_id, token_id, None))
            if user is None:
                raise unauthorized("the sign-in behind this ticket has ended")
        session = await db.get(CourseSession, session_id)
        course = await db.get(Course, session.course_id) if session else None
        if session is None or course is None:
            raise not_found("session")
        await chat_right(db, user, session, course)
        banned = (
            user is not None
            and not is_staff(user, course)
            and await is_banned(db, course.id, user.id)
        )
    await socket.prepare(request)
    connection = ChatConnection(
        socket, request.transport, session_id, course.id,
        Grant(user.id, token_id, user.role) if user else Grant(None, None, None),
        user.username if user else "",
        queue_frames=settings.chat_send_queue_frames,
        send_timeout=settings.chat_send_timeout_seconds,
    )
    hub.join(connection)
    presence = (
        asyncio.create_task(_keep_presence(state, hub, session_id, user.id)) if user else None
    )
    try:
        connection.start(await _history(state, session_id))
        if banned:
            connection.send(error_frame("banned", "you are banned from this chat"))
        async for message in socket:
            if message.type == WSMsgType.ERROR:
                break
            if message.type != WSMsgType.TEXT:
                connection.send(error_frame("bad_frame", "frames are JSON text"))
                continue
            try:
                await _frame(state, hub, connection, message.data)
            except ChatRefusal as refusal:
                connection.send(error_frame(refusal.code, refusal.message))
    finally:
        hub.leave(connection)
        await connection.stop()
        if presence is not None and user is not None:
            presence.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await presence
            # The moment they left is the end of their interval.
            with contextlib.suppress(Exception):
                await _record_presence(state, hub, session_id, user.id)
    return socket


def install_chat(app: web.Application) -> ChatHub:
    """The hub in app[CHAT_HUB], this process's presence in app[CHAT_PRESENCE] (replaced
    when processes share Redis: control/redis_sharing.py), the WebSocket route, the access
    re-checks while the app runs, and closing sockets on shutdown."""
    state = app[STATE]
    # The per-user message limit counts in the sign-in limits' store (Redis when shared).
    hub = ChatHub(state.settings.courses, limits=state.sign_in_limits.store)
    app[CHAT_HUB] = hub
    app[CHAT_PRESENCE] = LocalPresence(hub)
    app.router.add_get(CHAT_PATH, chat_socket)
    app.cleanup_ctx.append(access_recheck_context)
    app.on_shutdown.append(hub.close_all)
    return hub
