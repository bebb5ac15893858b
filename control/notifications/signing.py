"""Webhook signatures as the Standard Webhooks specification says: a `whsec_` secret, and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` beside `webhook-id`
and `webhook-timestamp` (the reference `standardwebhooks` package computes it)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

__all__ = ["new_secret", "signed_headers"]


def new_secret() -> str:
    """24 random bytes, as the spec's example secrets are (whsec_ + base64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def signed_headers(secret: str, message_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three headers a delivery carries; `at` is when this attempt is made (a retry is
    signed anew, so receivers' timestamp tolerance holds)."""
    signature = Webhook(secret).sign(message_id, at, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }
