"""The payment provider's webhook: signed deliveries (HMAC-SHA256 of the raw body) that
control.enrolment.payments applies (payments admit students to paid courses, refunds end their
access), idempotent by transaction id.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from pydantic import Field

from control.enrolment.payments import PaymentNotice, PaymentResult, apply_notice
from control.errors import ApiError
from control.http.bodies import INT_MAX, Body, Id
from control.http.responses import json
from control.http.routing import Ctx, Routes
from control.models import PaymentKind

routes = Routes("payments")
SIGNATURE_HEADER = "X-Academia-Signature"


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


def _answer(result: PaymentResult) -> dict[str, Any]:
    payment, enrollment = result.payment, result.enrollment
    return {
        "transaction_id": payment.transaction_id,
        "type": payment.kind.value,
        "enrollment_id": payment.enrollment_id,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "outcome": result.outcome,
        "enrollment_status": enrollment.status.value,
        "replayed": result.replayed,
    }


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
    notice = PaymentNotice(body.transaction_id, body.type, body.enrollment_id,
                           body.amount_cents, body.currency)
    return json(_answer(await apply_notice(ctx.db, notice, ctx.state.settings.courses)))
