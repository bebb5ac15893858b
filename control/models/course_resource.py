"""Course resources: files a teacher attached to a course or to one of its sessions
(slides, notes, exercises). The bytes live in media storage under `resources/{course_id}/`;
this row says what they are and who may see them (the course's, or the session's, rules)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, utcnow


class CourseResource(Base):
    __tablename__ = "course_resources"
    __table_args__ = (
        # Listing a course's (and a session's) files, oldest first.
        Index("ix_course_resources_course_session", "course_id", "session_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    # None: the course's own file; else the session it belongs to (of the same course).
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("course_sessions.id", ondelete="CASCADE"), default=None)
    # Who uploaded it; erasure anonymises (NULL) and keeps the file: it is the course's.
    uploaded_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None)
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))  # sanitised, for the download
    content_type: Mapped[str] = mapped_column(String(100))  # detected from the bytes
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
