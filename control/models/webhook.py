"""Webhook endpoints an admin registered: where events are POSTed, signed with a secret."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, utcnow


class WebhookEndpoint(Base):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    # The event kinds sent here ("enrolment.approved", ...); ["*"] is every kind.
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    # "whsec_" + base64: shown once at creation; it signs every delivery.
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(default=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
