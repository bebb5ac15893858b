"""A student's place in a course, and the history of every change to it."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control.models.base import Base, enum_column, utcnow


class EnrollmentStatus(enum.StrEnum):
    REQUESTED = "requested"
    PENDING_PAYMENT = "pending_payment"
    WAITLISTED = "waitlisted"
    ACTIVE = "active"
    REJECTED = "rejected"
    REMOVED = "removed"
    COMPLETED = "completed"
    REFUNDED = "refunded"


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("course_id", "student_id"),
        Index("ix_enrollments_course_status", "course_id", "status", "queued_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    student_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[EnrollmentStatus] = mapped_column(enum_column(EnrollmentStatus))
    # When the student joined the waitlist: the waitlist is served in this order.
    queued_at: Mapped[datetime | None] = mapped_column(default=None)
    # Nothing is owed for this enrollment: a payment confirmed it, or the teacher put the
    # student in with enroll-student (which waives payment). Promotion from the waitlist
    # (and enrolling again after leaving) then never asks for payment; a refund clears it.
    paid: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EnrollmentEvent(Base):
    __tablename__ = "enrollment_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[EnrollmentStatus | None] = mapped_column(enum_column(EnrollmentStatus))
    to_status: Mapped[EnrollmentStatus] = mapped_column(enum_column(EnrollmentStatus))
    # None when the system acted (a payment webhook). A waitlist promotion records the
    # person whose action freed the seat, with the reason saying it was a promotion.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)
