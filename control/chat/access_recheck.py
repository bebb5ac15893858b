"""Access that is taken away is gone from open chat sockets too.

A socket's grant (who opened it, under which sign-in token, in which role) is checked
again every `chat_access_recheck_seconds` for every open socket, one transaction per
session and one check per distinct grant, with the same rules as at the upgrade
(control.chat.access). A student removed from the course, a deactivated account, a
revoked token (logout), a changed role, a course that no longer shows its chat to
anonymous readers: the socket is closed with CLOSE_ACCESS_GONE and the reason, and
receives nothing more. Nothing outside the chat has to remember to tell it, and it works
the same when the change was made by another process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.chat.access import chat_right
from control.chat.connection import CLOSE_ACCESS_GONE, Grant
from control.chat.hub import CHAT_HUB, ChatHub
from control.errors import ApiError
from control.http.state import STATE, AppState
from control.models import AuthToken, Course, CourseSession, User
from control.models.base import utcnow

log = logging.getLogger(__name__)


async def signed_in_user(db: AsyncSession, grant: Grant) -> User | None:
    """The grant's user while its account is active and its sign-in token is live."""
    if grant.user_id is None or grant.token_id is None:
        return None
    user: User | None = await db.scalar(
        select(User)
        .join(AuthToken, AuthToken.user_id == User.id)
        .where(
            AuthToken.id == grant.token_id,
            AuthToken.user_id == grant.user_id,
            AuthToken.revoked_at.is_(None),
            AuthToken.expires_at > utcnow(),
            User.is_active.is_(True),
        )
    )
    return user


async def lost_access(
    db: AsyncSession, grant: Grant, session_id: int, course_id: int
) -> str | None:
    """Why this grant no longer opens this chat, or None while it still does."""
    session = await db.get(CourseSession, session_id)
    course = await db.get(Course, course_id)
    if session is None or course is None:
        return "this chat is gone"
    user = None
    if grant.user_id is not None:
        user = await signed_in_user(db, grant)
        if user is None:
            return "signed out (the sign-in ended or the account was deactivated)"
        if user.role != grant.role:
            return "your role changed: open the chat again"
    try:
        await chat_right(db, user, session, course)
    except ApiError as refusal:
        return refusal.message
    return None


async def recheck(state: AppState, hub: ChatHub) -> None:
    """One pass over every open socket: close those whose access is gone."""
    for session_id in hub.session_ids():
        connections = [c for c in hub.connections(session_id) if c.dropped is None]
        if not connections:
            continue
        verdicts: dict[Grant, str | None] = {}
        async with state.database.transaction(write=False) as db:
            for connection in connections:
                if connection.grant not in verdicts:
                    verdicts[connection.grant] = await lost_access(
                        db, connection.grant, session_id, connection.course_id
                    )
        for connection in connections:
            reason = verdicts[connection.grant]
            if reason is not None:
                connection.drop(CLOSE_ACCESS_GONE, f"access withdrawn: {reason}")


async def _keep_checking(state: AppState, hub: ChatHub) -> None:
    period = max(1, state.settings.courses.chat_access_recheck_seconds)
    while True:
        await asyncio.sleep(period)
        try:
            await recheck(state, hub)
        except Exception:  # a failed pass must not end the checks; the next may succeed
            log.exception("re-checking chat access failed")


async def access_recheck_context(app: web.Application) -> AsyncIterator[None]:
    """For app.cleanup_ctx: the checks run while the application does."""
    task = asyncio.create_task(_keep_checking(app[STATE], app[CHAT_HUB]))
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
