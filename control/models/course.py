"""Courses: who teaches them, who may join and how, and whether they are live."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, Float, ForeignKey, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, enum_column, utcnow


class AccessLevel(enum.StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    PAID = "paid"
    RESTRICTED = "restricted"


class ChatMode(enum.StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    DISABLED = "disabled"


course_prerequisites = Table(
    "course_prerequisites",
    Base.metadata,
    Column("course_id", ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True),
    Column("prerequisite_id", ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True),
)


class Course(Base):
    __tablename__ = "courses"
    __table_args__ = (Index("ix_courses_active_title", "is_active", "title", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    teacher_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)
    access_level: Mapped[AccessLevel] = mapped_column(
        enum_column(AccessLevel), default=AccessLevel.PUBLIC
    )
    capacity: Mapped[int]
    price_cents: Mapped[int | None] = mapped_column(default=None)
    currency: Mapped[str] = mapped_column(String(3), default="")
    vod_channel_id: Mapped[str] = mapped_column(String(100), default="")
    chat_mode: Mapped[ChatMode] = mapped_column(enum_column(ChatMode), default=ChatMode.PUBLIC)
    # A student may post at most once per this many seconds; 0 is off (staff exempt).
    chat_slow_mode_seconds: Mapped[int] = mapped_column(default=0)
    # A term: enrolled students may play, chat and read resources only between these
    # (either may be open-ended); staff and public courses are not bound by them.
    access_opens_at: Mapped[datetime | None] = mapped_column(default=None)
    access_closes_at: Mapped[datetime | None] = mapped_column(default=None)
    # Recordings released in order: a student may play the next once they watched this
    # share (0 < share <= 1) of the previous one; None plays them in any order.
    sequential_release: Mapped[float | None] = mapped_column(Float, default=None)
    is_live: Mapped[bool] = mapped_column(default=False)
    # Recordings older than this many days are deleted by the retention job; None keeps
    # them (unless storage is full: control/storage_policy/retention.py).
    retention_days: Mapped[int | None] = mapped_column(default=None)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
