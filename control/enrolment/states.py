"""The enrollment state machine: the one place an enrollment's status may change.

Each action (approve, pay, withdraw, ...) allows some "from" statuses and some "to"
statuses; anything else is refused with 409 `illegal_transition` naming both. Every
change is written to enrollment_events with who made it (None for the system) and when.
"""

from __future__ import annotations

import enum

from sqlalchemy.ext.asyncio import AsyncSession

from control.errors import ApiError, conflict
from control.models import Enrollment, EnrollmentEvent, EnrollmentStatus
from control.models.base import utcnow
from control.notifications.announce import enrolment_changed

S = EnrollmentStatus


class Action(enum.StrEnum):
    ENROLL = "enroll"  # a new enrollment, or a student who had left coming back
    ADMIT = "admit"  # the teacher's enroll-student for someone requesting or unpaid
    APPROVE = "approve"
    REJECT = "reject"
    PAY = "pay"
    PROMOTE = "promote"  # off the waitlist when a seat frees
    COMPLETE = "complete"
    WITHDRAW = "withdraw"  # the student leaves
    REMOVE = "remove"  # the teacher takes the student out
    REFUND = "refund"


# Statuses in which the student has a place in the course's flow (they may leave them).
IN_FLOW = (S.ACTIVE, S.REQUESTED, S.PENDING_PAYMENT, S.WAITLISTED)
# Statuses after which the student may enroll again (the same row re-enters the flow).
LEFT = (S.REJECTED, S.REMOVED, S.REFUNDED)

# action -> (allowed from-statuses, allowed to-statuses; the first is the usual one).
# None as a from-status is an enrollment that does not exist yet.
TRANSITIONS: dict[Action, tuple[tuple[S | None, ...], tuple[S, ...]]] = {
    Action.ENROLL: ((None, *LEFT), (S.ACTIVE, S.REQUESTED, S.PENDING_PAYMENT, S.WAITLISTED)),
    Action.ADMIT: ((S.REQUESTED, S.PENDING_PAYMENT), (S.ACTIVE, S.WAITLISTED)),
    Action.APPROVE: ((S.REQUESTED,), (S.ACTIVE, S.WAITLISTED, S.PENDING_PAYMENT)),
    Action.REJECT: ((S.REQUESTED,), (S.REJECTED,)),
    Action.PAY: ((S.PENDING_PAYMENT,), (S.ACTIVE, S.WAITLISTED)),
    Action.PROMOTE: ((S.WAITLISTED,), (S.ACTIVE, S.PENDING_PAYMENT)),
    Action.COMPLETE: ((S.ACTIVE,), (S.COMPLETED,)),
    Action.WITHDRAW: (IN_FLOW, (S.REMOVED,)),
    Action.REMOVE: (IN_FLOW, (S.REMOVED,)),
    # Money went back: access ends, even after completion.
    Action.REFUND: ((*IN_FLOW, S.COMPLETED), (S.REFUNDED,)),
}


def illegal_transition(action: Action, current: S | None, to: S) -> ApiError:
    allowed_from = ", ".join(s.value if s else "(none)" for s in TRANSITIONS[action][0])
    return conflict(
        "illegal_transition",
        f"cannot {action.value} an enrollment that is {current.value if current else 'new'}"
        f" (to {to.value}): {action.value} applies only to: {allowed_from}",
        **{"from": current.value if current else None, "to": to.value, "action": action.value},
    )


def allows(action: Action, current: S | None) -> bool:
    return current in TRANSITIONS[action][0]


def require(action: Action, current: S | None) -> None:
    """Refuse early, before deciding the target, when `action` cannot start from here."""
    if not allows(action, current):
        raise illegal_transition(action, current, TRANSITIONS[action][1][0])


def _record(
    db: AsyncSession,
    enrollment: Enrollment,
    previous: S | None,
    actor_id: int | None,
    reason: str,
) -> None:
    db.add(
        EnrollmentEvent(
            enrollment_id=enrollment.id,
            from_status=previous,
            to_status=enrollment.status,
            actor_id=actor_id,
            reason=reason[:200],
            at=utcnow(),
        )
    )


def _set_status(enrollment: Enrollment, to: S) -> None:
    enrollment.status = to
    if to == S.WAITLISTED:
        # Keep an earlier place in the queue: a promoted student whose payment arrives
        # when the course is full again goes back to the front, not the end.
        if enrollment.queued_at is None:
            enrollment.queued_at = utcnow()
    elif to != S.PENDING_PAYMENT:
        # pending_payment keeps queued_at: it marks a seat offered off the waitlist.
        enrollment.queued_at = None


async def start(
    db: AsyncSession,
    *,
    course_id: int,
    student_id: int,
    to: S,
    actor_id: int | None,
    reason: str,
) -> Enrollment:
    """A brand-new enrollment row, entering the flow at `to`."""
    if to not in TRANSITIONS[Action.ENROLL][1]:
        raise illegal_transition(Action.ENROLL, None, to)
    enrollment = Enrollment(course_id=course_id, student_id=student_id, status=to)
    _set_status(enrollment, to)
    db.add(enrollment)
    await db.flush()
    _record(db, enrollment, None, actor_id, reason)
    # Told in the same transaction (the outbox): a refused enrolment announces nothing.
    await enrolment_changed(db, enrollment, None, Action.ENROLL.value)
    return enrollment


async def move(
    db: AsyncSession,
    enrollment: Enrollment,
    action: Action,
    to: S,
    *,
    actor_id: int | None,
    reason: str = "",
) -> None:
    """Change an existing enrollment's status, if the machine allows it, and record it."""
    froms, tos = TRANSITIONS[action]
    previous = enrollment.status
    if previous not in froms or to not in tos:
        raise illegal_transition(action, previous, to)
    _set_status(enrollment, to)
    enrollment.updated_at = utcnow()
    _record(db, enrollment, previous, actor_id, reason or action.value)
    await db.flush()
    await enrolment_changed(db, enrollment, previous, action.value)
