"""One chat message from a socket: checked, stored in a short transaction of its own,
then broadcast to the session once committed.

Access is checked again for every message: a ban, a mute, a removal from the course, a
change of chat mode or the end of the sender's sign-in takes effect on sockets that are
already open. Broadcasting only queues: the poster never waits on a reader.
"""

from __future__ import annotations

from control.chat.access import chat_right
from control.chat.access_recheck import signed_in_user
from control.chat.connection import ChatConnection
from control.chat.frames import ChatRefusal, message_frame
from control.chat.hub import ChatHub
from control.chat.moderation import check_sanctions, clean_text
from control.courses.permissions import is_staff
from control.errors import ApiError
from control.http.state import AppState
from control.models import ChatMessage, Course, CourseSession


async def post_message(
    state: AppState, hub: ChatHub, connection: ChatConnection, raw_text: object
) -> None:
    """Store and broadcast the message, or raise ChatRefusal for the sender alone."""
    if connection.user_id is None:
        raise ChatRefusal("not_allowed", "sign in to post in this chat")
    text = clean_text(raw_text, state.settings.courses.chat_max_length)
    now = hub.clock()
    async with state.database.transaction(write=True) as db:
        user = await signed_in_user(db, connection.grant)
        session = await db.get(CourseSession, connection.session_id)
        course = await db.get(Course, connection.course_id)
        if user is None:
            raise ChatRefusal("not_allowed", "your sign-in has ended: sign in again")
        if session is None or course is None:
            raise ChatRefusal("not_allowed", "this chat is gone")
        try:
            right = await chat_right(db, user, session, course)
        except ApiError as exc:
            raise ChatRefusal("not_allowed", exc.message) from None
        if right != "post":
            raise ChatRefusal("not_allowed", "you may read this chat but not post")
        if not is_staff(user, course):
            await check_sanctions(db, course, session.id, user.id, now)
            if not await hub.take_token(user.id):
                raise ChatRefusal("rate_limited", "too many messages: wait a moment")
        message = ChatMessage(session_id=session.id, user_id=user.id, text=text, sent_at=now)
        db.add(message)
        await db.flush()
        frame = message_frame(message, user.username)
    hub.broadcast(connection.session_id, frame)
