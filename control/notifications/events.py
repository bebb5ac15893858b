"""Announcing an event: recorded once, in the caller's transaction, with everything it owes
people written beside it: an in-app notification per person who wants those, an outbox
row per mail to send and per webhook endpoint subscribed to its kind.

Nothing is sent here: the outbox worker (worker.py) sends after commit, so a request or a
live class never waits for a mail server or a webhook, and a change that rolls back
announces nothing.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import (
    Channel,
    Notification,
    NotificationEvent,
    OutboxMessage,
    User,
    WebhookEndpoint,
)
from control.models.base import utcnow
from control.notifications.kinds import ALL_EVENTS, EventKind
from control.notifications.messages import render
from control.notifications.preferences import channels_of

__all__ = ["announce", "iso", "new_message_id"]


def new_message_id() -> str:
    return "msg_" + secrets.token_urlsafe(18)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 with its zone (UTC, the zone the database keeps)."""
    return moment.isoformat(timespec="seconds") if moment is not None else None


async def _new_event(
    db: AsyncSession, kind: EventKind, course_id: int | None, data: dict[str, Any],
    dedupe_key: str | None,
) -> int | None:
    if dedupe_key is None:
        event = NotificationEvent(kind=kind.value, course_id=course_id, data=data)
        db.add(event)
        await db.flush()
        return event.id
    # Timed events (reminders) may be noticed by several processes at once: the unique
    # key lets exactly one insert win, without an error aborting the others' transactions.
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(NotificationEvent)
        .values(kind=kind.value, course_id=course_id, data=data, dedupe_key=dedupe_key,
                created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(NotificationEvent.id)
    )
    return (await db.execute(stmt)).scalar_one_or_none()


async def announce(
    db: AsyncSession, kind: EventKind, *, recipients: list[int], data: dict[str, Any],
    course_id: int | None = None, dedupe_key: str | None = None, webhooks: bool = True,
) -> int | None:
    """Record `kind` for `recipients` (user ids) and the subscribed webhook endpoints.
    Returns the event's id, or None when `dedupe_key` was announced already."""
    event_id = await _new_event(db, kind, course_id, data, dedupe_key)
    if event_id is None:
        return None
    people = sorted(set(recipients))
    message = render(kind, data)
    wants = await channels_of(db, people)
    found = (
        await db.execute(select(User.id, User.email, User.is_active).where(User.id.in_(people)))
    ).all() if people else []
    for user_id, email, active in found:
        if not active:
            continue
        channels = wants[user_id]
        if channels.in_app:
            db.add(Notification(user_id=user_id, event_id=event_id, kind=kind.value,
                                title=message.title, body=message.body, link=message.link,
                                course_id=course_id))
        if channels.email and email:
            db.add(OutboxMessage(event_id=event_id, channel=Channel.EMAIL, user_id=user_id,
                                 message_id=new_message_id()))
    if webhooks:
        endpoints = await db.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
        )
        for endpoint in endpoints:
            if kind.value in endpoint.events or ALL_EVENTS in endpoint.events:
                db.add(OutboxMessage(event_id=event_id, channel=Channel.WEBHOOK,
                                     webhook_id=endpoint.id, message_id=new_message_id()))
    await db.flush()
    return event_id
