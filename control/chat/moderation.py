"""The rules a chat message must pass: clean, non-empty, short enough, and a sender who
is neither banned nor muted nor posting faster than the course's slow mode allows.

The course's staff (its teacher, admins) moderate and are exempt from the sanctions.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.chat.frames import ChatRefusal
from control.models import ChatBan, ChatMessage, ChatMute, Course


def clean_text(raw: object, max_length: int) -> str:
    """The text as it will be stored: control characters other than newline removed."""
    if not isinstance(raw, str):
        raise ChatRefusal("bad_frame", "text must be a string")
    text = "".join(ch for ch in raw if ch == "\n" or unicodedata.category(ch) != "Cc")
    if not text.strip():
        raise ChatRefusal("empty", "the message is empty")
    if len(text) > max_length:
        raise ChatRefusal("too_long", f"a message has at most {max_length} characters")
    return text


async def is_banned(db: AsyncSession, course_id: int, user_id: int) -> bool:
    found = await db.scalar(
        select(ChatBan.id).where(ChatBan.course_id == course_id, ChatBan.user_id == user_id)
    )
    return found is not None


async def check_sanctions(
    db: AsyncSession, course: Course, session_id: int, user_id: int, now: datetime
) -> None:
    """Raise ChatRefusal when a (non-staff) user may not post now."""
    if await is_banned(db, course.id, user_id):
        raise ChatRefusal("banned", "you are banned from this course's chat")
    until = await db.scalar(
        select(ChatMute.until).where(ChatMute.course_id == course.id, ChatMute.user_id == user_id)
    )
    if until is not None and until > now:
        raise ChatRefusal("muted", f"you are muted until {until.isoformat()}")
    slow = course.chat_slow_mode_seconds
    if slow > 0:
        # Deleted messages count too: deleting one's own spam must not reset the wait.
        last = await db.scalar(
            select(ChatMessage.sent_at)
            .where(ChatMessage.session_id == session_id, ChatMessage.user_id == user_id)
            .order_by(ChatMessage.sent_at.desc())
            .limit(1)
        )
        if last is not None and now - last < timedelta(seconds=slow):
            raise ChatRefusal("slow_mode", f"slow mode: one message every {slow} seconds")
