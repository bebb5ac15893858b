"""The payment provider's webhook: payments admit students to paid courses, refunds end
their access. Deliveries are signed (HMAC-SHA256 of the raw body) and idempotent by
transaction id, since providers retry.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from control.api.bodies import INT_MAX, Body, Id
from control.api.responses import json
from control.api.routing import Ctx, Routes
from control.course_locks import lock_course
from control.enrollment_rules import admission, promote_waitlist
from control.enrollment_states import Action, allows, move
from control.errors import ApiError, conflict, not_found, unprocessable
from control.models import (
    Course,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    Payment,
    PaymentKind,
)

routes = Routes("payments")
SIGNATURE_HEADER = "X-Academia-Signature"
S = EnrollmentStatus


class WebhookBody(Body):
    transaction_id: str = Field(min_length=1, max_length=128)
    type: PaymentKind
    enrollment_id: Id
    amount_cents: int = Field(ge=1, le=INT_MAX)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


def sign(secret: str, raw: bytes) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def _signature_ok(secret: str, raw: bytes, given: str) -> bool:
    # Constant time, so the signature cannot be found byte by byte from response times.
    return hmac.compare_digest(
        sign(secret, raw).encode(), given.strip().lower().encode("utf-8", "replace")
    )


def _reason(kind: PaymentKind, transaction_id: str) -> str:
    # The event's reason names the transaction: a replay finds what the first delivery
    # did from it, so no extra column is needed.
    return f"{kind.value} {transaction_id}"


# What a delivery did, told by the status its event moved the enrollment to.
_OUTCOMES = {S.ACTIVE: "activated", S.WAITLISTED: "waitlisted", S.REFUNDED: "refunded"}


async def _outcome_of(ctx: Ctx, payment: Payment) -> str:
    moved_to = await ctx.db.scalar(
        select(EnrollmentEvent.to_status).where(
            EnrollmentEvent.enrollment_id == payment.enrollment_id,
            EnrollmentEvent.reason == _reason(payment.kind, payment.transaction_id),
        )
    )
    # No event: the money was recorded without changing the enrollment's status.
    return _OUTCOMES.get(moved_to, "recorded") if moved_to is not None else "recorded"


def _answer(
    payment: Payment, enrollment: Enrollment, outcome: str, *, replayed: bool
) -> dict[str, Any]:
    return {
        "transaction_id": payment.transaction_id,
        "type": payment.kind.value,
        "enrollment_id": payment.enrollment_id,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "outcome": outcome,
        "enrollment_status": enrollment.status.value,
        "replayed": replayed,
    }


def _same_delivery(payment: Payment, body: WebhookBody) -> bool:
    return (
        payment.kind == body.type
        and payment.enrollment_id == body.enrollment_id
        and payment.amount_cents == body.amount_cents
        and payment.currency == body.currency
    )


async def _apply_payment(ctx: Ctx, course: Course, enrollment: Enrollment,
                         body: WebhookBody) -> str:
    if course.price_cents is None or (body.amount_cents, body.currency) != (
        course.price_cents, course.currency
    ):
        price = f"{course.price_cents} {course.currency}" if course.price_cents else "no price"
        raise unprocessable(
            f"paid {body.amount_cents} {body.currency} but course {course.id} costs {price}",
            "payment_mismatch",
        )
    enrollment.paid = True
    if enrollment.status != S.PENDING_PAYMENT:
        # Paid while waitlisted (promotion then skips payment), or paid twice: the
        # money is recorded and the status left alone.
        return "recorded"
    to = await admission(ctx.db, course, S.ACTIVE)
    await move(ctx.db, enrollment, Action.PAY, to, actor_id=None,
               reason=_reason(body.type, body.transaction_id))
    return "activated" if to == S.ACTIVE else "waitlisted"


async def _apply_refund(ctx: Ctx, course: Course, enrollment: Enrollment,
                        body: WebhookBody) -> str:
    enrollment.paid = False
    if not allows(Action.REFUND, enrollment.status):
        # Already out of the course (removed, rejected, refunded): nothing to take away.
        return "recorded"
    await move(ctx.db, enrollment, Action.REFUND, S.REFUNDED, actor_id=None,
               reason=_reason(body.type, body.transaction_id))
    await promote_waitlist(ctx.db, course, None, ctx.state.settings.courses)
    return "refunded"


@routes.route("POST", "/payments/webhook", name="payments.webhook", public=True,
              summary="The payment provider's webhook (no token: signed with HMAC-SHA256 of"
              f" the raw body in {SIGNATURE_HEADER}). Body {{transaction_id, type:"
              " payment|refund, enrollment_id, amount_cents, currency}; idempotent by"
              " transaction_id")
async def webhook(ctx: Ctx) -> Any:
    secret = ctx.state.settings.payments.payment_webhook_secret
    if not secret:
        raise ApiError(503, "webhook_disabled",
                       "the payment webhook is disabled: payments.payment_webhook_secret is"
                       " not set")
    # Read the raw bytes ourselves: the signature covers them exactly, not a re-encoding.
    raw = await ctx.request.read()
    if not _signature_ok(secret, raw, ctx.request.headers.get(SIGNATURE_HEADER, "")):
        raise ApiError(401, "bad_signature",
                       f"missing or wrong {SIGNATURE_HEADER}: send the hex HMAC-SHA256 of the"
                       " raw body")
    body = WebhookBody.model_validate_json(raw)
    ctx.audit_detail.update(transaction_id=body.transaction_id, type=body.type.value)
    course_id = await ctx.db.scalar(
        select(Enrollment.course_id).where(Enrollment.id == body.enrollment_id)
    )
    if course_id is None:
        raise not_found("enrollment")
    # Locking the course serialises this with enrollments and with a concurrent
    # delivery of the same transaction (both concern the same enrollment).
    await lock_course(ctx.db, course_id)
    previous = await ctx.db.scalar(
        select(Payment).where(Payment.transaction_id == body.transaction_id)
    )
    course = await ctx.db.get(Course, course_id)
    enrollment = await ctx.db.get(Enrollment, body.enrollment_id)
    assert course is not None and enrollment is not None
    if previous is not None:
        if not _same_delivery(previous, body):
            raise conflict("transaction_id_reused",
                           f"transaction {body.transaction_id} was delivered before with"
                           " different details")
        outcome = await _outcome_of(ctx, previous)
        return json(_answer(previous, enrollment, outcome, replayed=True))
    if body.type == PaymentKind.PAYMENT:
        outcome = await _apply_payment(ctx, course, enrollment, body)
    else:
        outcome = await _apply_refund(ctx, course, enrollment, body)
    payment = Payment(
        transaction_id=body.transaction_id,
        kind=body.type,
        enrollment_id=enrollment.id,
        amount_cents=body.amount_cents,
        currency=body.currency,
    )
    ctx.db.add(payment)
    try:
        await ctx.db.flush()
    except IntegrityError:
        # The same transaction id arrived at once for another enrollment (another course
        # lock): one wins, the other is told; the provider's retry then sees the replay.
        raise conflict("transaction_in_progress",
                       f"transaction {body.transaction_id} is being applied; retry") from None
    return json(_answer(payment, enrollment, outcome, replayed=False))
