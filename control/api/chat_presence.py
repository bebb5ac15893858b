"""Who is in a session's chat now, over HTTP: the signed-in users with an open chat
socket on any control process (control/chat/presence.py)."""

from __future__ import annotations

from typing import Any

from control.chat.access import chat_right
from control.chat.presence import CHAT_PRESENCE
from control.errors import not_found
from control.http.responses import json
from control.http.routing import Ctx, Routes
from control.models import Course, CourseSession

routes = Routes("chat_presence")


@routes.route("GET", "/sessions/{session_id}/chat-presence", name="chat.presence", public=True,
              summary="Who is in the session's chat now (signed-in users with the chat open,"
              " on any server), for whoever may read the chat; `complete` is false when"
              " only this server's share could be read")
async def chat_presence(ctx: Ctx) -> Any:
    session = await ctx.db.get(CourseSession, ctx.param("session_id"))
    course = await ctx.db.get(Course, session.course_id) if session else None
    if session is None or course is None:
        raise not_found("session")
    await chat_right(ctx.db, ctx.user, session, course)  # the same refusals as the chat
    online = await ctx.request.app[CHAT_PRESENCE].online(session.id)
    users = [{"id": uid, "username": name} for uid, name in sorted(online.users.items())]
    return json({"session_id": session.id, "count": len(users), "users": users,
                 "complete": online.complete})
