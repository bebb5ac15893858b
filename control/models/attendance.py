"""Attendance: the stretches of time a user was seen watching (or chatting in) a session."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base


class AttendanceInterval(Base):
    """From the first heartbeat of a stretch to the latest one that extended it."""

    __tablename__ = "attendance_intervals"
    # A heartbeat looks up the user's latest interval in the session.
    __table_args__ = (
        Index("ix_attendance_intervals_session_user", "session_id", "user_id", "last_seen_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("course_sessions.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    joined_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
