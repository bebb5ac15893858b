"""How far each person got in each recording: where to resume, and how much they saw."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, utcnow


class RecordingProgress(Base):
    """One row per person and recorded session, overwritten as the player reports."""

    __tablename__ = "recording_progress"
    __table_args__ = (
        UniqueConstraint("session_id", "user_id"),
        # The write limit looks up a person's latest report.
        Index("ix_recording_progress_user_updated", "user_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("course_sessions.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Where to resume (the last position reported), in seconds.
    position_seconds: Mapped[float] = mapped_column(Float)
    # Seconds played forward at a plausible pace (control.progress.watching), at most the
    # duration: seeking ahead earns nothing.
    watched_seconds: Mapped[float] = mapped_column(Float)
    duration_seconds: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
