"""Payments and refunds: what a payment provider's notice does to an enrollment.

A payment of the course's price admits the student (or waitlists them when the course is
full); a refund ends their access and frees the seat for the waitlist. Notices are
idempotent by transaction id, since providers retry: a replay answers what the first
delivery did, and a reused id with other details is refused. The caller owns the
transaction and has checked the notice is genuine (the webhook's signature).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import CourseSettings
from control.db.course_locks import lock_course
from control.enrolment.rules import admission, promote_waitlist
from control.enrolment.states import Action, allows, move
from control.errors import conflict, not_found, unprocessable
from control.models import (
    Course,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    Payment,
    PaymentKind,
)

S = EnrollmentStatus

# What a notice did, told by the status its event moved the enrollment to.
_OUTCOMES = {S.ACTIVE: "activated", S.WAITLISTED: "waitlisted", S.REFUNDED: "refunded"}


@dataclass(frozen=True)
class PaymentNotice:
    """One delivery from the provider: money in (payment) or out (refund)."""

    transaction_id: str
    kind: PaymentKind
    enrollment_id: int
    amount_cents: int
    currency: str


@dataclass(frozen=True)
class PaymentResult:
    """The payment recorded for a notice, its enrollment now, and what the notice did:
    activated, waitlisted, refunded or recorded (money noted, status unchanged)."""

    payment: Payment
    enrollment: Enrollment
    outcome: str
    replayed: bool


def _reason(kind: PaymentKind, transaction_id: str) -> str:
    # The event's reason names the transaction: a replay finds what the first delivery
    # did from it, so no extra column is needed.
    return f"{kind.value} {transaction_id}"


async def _outcome_of(db: AsyncSession, payment: Payment) -> str:
    moved_to = await db.scalar(
        select(EnrollmentEvent.to_status).where(
            EnrollmentEvent.enrollment_id == payment.enrollment_id,
            EnrollmentEvent.reason == _reason(payment.kind, payment.transaction_id),
        )
    )
    # No event: the money was recorded without changing the enrollment's status.
    return _OUTCOMES.get(moved_to, "recorded") if moved_to is not None else "recorded"


def _same_delivery(payment: Payment, notice: PaymentNotice) -> bool:
    return (
        payment.kind == notice.kind
        and payment.enrollment_id == notice.enrollment_id
        and payment.amount_cents == notice.amount_cents
        and payment.currency == notice.currency
    )


async def _apply_payment(
    db: AsyncSession, course: Course, enrollment: Enrollment, notice: PaymentNotice
) -> str:
    if course.price_cents is None or (notice.amount_cents, notice.currency) != (
        course.price_cents, course.currency
    ):
        price = f"{course.price_cents} {course.currency}" if course.price_cents else "no price"
        raise unprocessable(
            f"paid {notice.amount_cents} {notice.currency} but course {course.id} costs {price}",
            "payment_mismatch",
        )
    enrollment.paid = True
    if enrollment.status != S.PENDING_PAYMENT:
        # Paid while waitlisted (promotion then skips payment), or paid twice: the
        # money is recorded and the status left alone.
        return "recorded"
    to = await admission(db, course, S.ACTIVE)
    await move(db, enrollment, Action.PAY, to, actor_id=None,
               reason=_reason(notice.kind, notice.transaction_id))
    return "activated" if to == S.ACTIVE else "waitlisted"


async def _apply_refund(
    db: AsyncSession, course: Course, enrollment: Enrollment, notice: PaymentNotice,
    settings: CourseSettings,
) -> str:
    enrollment.paid = False
    if not allows(Action.REFUND, enrollment.status):
        # Already out of the course (removed, rejected, refunded): nothing to take away.
        return "recorded"
    await move(db, enrollment, Action.REFUND, S.REFUNDED, actor_id=None,
               reason=_reason(notice.kind, notice.transaction_id))
    await promote_waitlist(db, course, None, settings)
    return "refunded"


async def apply_notice(
    db: AsyncSession, notice: PaymentNotice, settings: CourseSettings
) -> PaymentResult:
    """Apply a payment or refund once; a replay of the same notice changes nothing.

    404 for an unknown enrollment, 409 transaction_id_reused for an id delivered before
    with other details, 409 transaction_in_progress when the same id is being applied to
    another enrollment at this moment, 422 payment_mismatch for a payment that is not
    the course's price. `settings` is the server's [courses] section.
    """
    course_id = await db.scalar(
        select(Enrollment.course_id).where(Enrollment.id == notice.enrollment_id)
    )
    if course_id is None:
        raise not_found("enrollment")
    # Locking the course serialises this with enrollments and with a concurrent
    # delivery of the same transaction (both concern the same enrollment).
    await lock_course(db, course_id)
    previous = await db.scalar(
        select(Payment).where(Payment.transaction_id == notice.transaction_id)
    )
    course = await db.get(Course, course_id)
    enrollment = await db.get(Enrollment, notice.enrollment_id)
    assert course is not None and enrollment is not None
    if previous is not None:
        if not _same_delivery(previous, notice):
            raise conflict("transaction_id_reused",
                           f"transaction {notice.transaction_id} was delivered before with"
                           " different details")
        return PaymentResult(previous, enrollment, await _outcome_of(db, previous),
                             replayed=True)
    if notice.kind == PaymentKind.PAYMENT:
        outcome = await _apply_payment(db, course, enrollment, notice)
    else:
        outcome = await _apply_refund(db, course, enrollment, notice, settings)
    payment = Payment(
        transaction_id=notice.transaction_id,
        kind=notice.kind,
        enrollment_id=enrollment.id,
        amount_cents=notice.amount_cents,
        currency=notice.currency,
    )
    db.add(payment)
    try:
        await db.flush()
    except IntegrityError:
        # The same transaction id arrived at once for another enrollment (another course
        # lock): one wins, the other is told; the provider's retry then sees the replay.
        raise conflict("transaction_in_progress",
                       f"transaction {notice.transaction_id} is being applied; retry") from None
    return PaymentResult(payment, enrollment, outcome, replayed=False)
