"""The notification outbox: events as they happened, one row per delivery to make (a mail
to one person, a POST to one webhook endpoint), and every attempt at one.

Rows are written in the transaction that made the change, so an event is never lost nor
announced for a change that rolled back; workers in any process claim and send them
(control/notifications/outbox.py).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, enum_column, utcnow


class Channel(enum.StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or being sent: see lease_until)
    SENT = "sent"
    FAILED = "failed"  # out of attempts, or nowhere to send it any more
    SKIPPED = "skipped"  # nothing to do after all (the person unsubscribed meanwhile)


class NotificationEvent(Base):
    """Something people are told about, once; `dedupe_key` makes timed events (reminders)
    unique even when several processes notice them at the same moment."""

    __tablename__ = "notification_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    course_id: Mapped[int | None] = mapped_column(default=None)
    data: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_notification_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("notification_events.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[Channel] = mapped_column(enum_column(Channel))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None, index=True
    )
    webhook_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), default=None, index=True
    )
    # The Standard Webhooks "webhook-id", the mail's Message-ID: the same on every retry,
    # so a receiver can drop a delivery it already has.
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_column(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A claimed row belongs to one worker until then; a worker that died mid-send lets it
    # go back to the others when the lease runs out.
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    lease_owner: Mapped[str] = mapped_column(String(64), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryAttempt(Base):
    """One try at a delivery: the webhook delivery log shows these."""

    __tablename__ = "notification_delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(
        ForeignKey("notification_outbox.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    ok: Mapped[bool] = mapped_column(default=False)
    status_code: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[str] = mapped_column(String(500), default="")
    duration_ms: Mapped[int] = mapped_column(default=0)
