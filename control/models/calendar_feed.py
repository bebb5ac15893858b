"""Private calendar feeds: one secret per person, the whole credential of their feed URL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, utcnow


class CalendarFeed(Base):
    """The secret in a person's feed URL. Rotating replaces it, revoking deletes the row.

    The secret is kept as it is (not hashed): a calendar app holds the URL for good, and
    its owner needs the same URL again to subscribe from another device; it opens nothing
    but a read-only list of class times.
    """

    __tablename__ = "calendar_feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    secret: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
