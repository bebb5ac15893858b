"""Class sessions: one meeting of a course, scheduled or ad hoc, and its lifecycle."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, enum_column, utcnow


class SessionStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


class CourseSession(Base):
    __tablename__ = "course_sessions"
    __table_args__ = (
        # One session per occurrence: generating sessions again is harmless.
        UniqueConstraint("schedule_id", "occurrence_start"),
        Index("ix_course_sessions_course_start", "course_id", "start_time"),
        # At most one live session per course, even if two go-live calls race.
        Index(
            "uq_course_sessions_one_live",
            "course_id",
            unique=True,
            sqlite_where=text("status = 'live'"),
            postgresql_where=text("status = 'live'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("schedules.id", ondelete="SET NULL"), default=None
    )
    occurrence_start: Mapped[datetime | None] = mapped_column(default=None)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    start_time: Mapped[datetime]
    end_time: Mapped[datetime]
    status: Mapped[SessionStatus] = mapped_column(
        enum_column(SessionStatus), default=SessionStatus.SCHEDULED
    )
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    recording_url: Mapped[str] = mapped_column(String(500), default="")
    attendance_count: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
