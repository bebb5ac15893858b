"""The payment provider as a test plays it: signed webhook deliveries, payment and refund
events, and a paid course to pay for (test_payments, test_removal_sticks)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json as jsonlib
from typing import Any

from control.http.state import STATE
from support.api_client import Api
from support.world import World

SECRET = "test-webhook-secret"  # what conftest's settings fixture sets


def set_settings(api: Api, section: str, **changes: Any) -> None:
    state = api.client.app[STATE]
    state.settings = dataclasses.replace(
        state.settings, **{section: dataclasses.replace(getattr(state.settings, section),
                                                        **changes)}
    )


def signed(body: dict[str, Any] | bytes, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else jsonlib.dumps(body).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Academia-Signature": signature, "Content-Type": "application/json"}


async def deliver(api: Api, body: dict[str, Any] | bytes, expect: int = 200,
                  secret: str = SECRET) -> Any:
    raw, headers = signed(body, secret)
    return await api.post("/payments/webhook", data=raw, headers=headers, expect=expect)


def event(txn: str, enrollment_id: int, kind: str = "payment", amount: int = 2500,
          currency: str = "EUR") -> dict[str, Any]:
    return {"transaction_id": txn, "type": kind, "enrollment_id": enrollment_id,
            "amount_cents": amount, "currency": currency}


async def paid_course(api: Api, world: World, capacity: int = 30) -> int:
    set_settings(api, "courses", payment_required=True)
    made = await api.post("/courses/", world.teacher, json={
        "title": "Paid", "category_id": world.category_id, "access_level": "paid",
        "price_cents": 2500, "currency": "EUR", "capacity": capacity}, expect=201)
    return int(made["id"])
