"""Recurring (or one-off) class times of a course, as wall-clock times in a time zone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, utcnow


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # Wall clock in `timezone`, deliberately naive: 09:00 stays 09:00 across DST.
    start_local: Mapped[datetime] = mapped_column(DateTime())
    duration_minutes: Mapped[int]
    timezone: Mapped[str] = mapped_column(String(64))
    rrule: Mapped[str | None] = mapped_column(String(500), default=None)
    # ISO wall-clock strings of skipped occurrences (EXDATE).
    exdates: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
