"""Telling the admins that a webhook endpoint was disabled (in the app, and the log), so
a dead receiver is noticed rather than silently skipped."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control.models import Role, User, WebhookEndpoint
from control.notifications.events import announce
from control.notifications.kinds import EventKind

__all__ = ["report_disabled"]

log = logging.getLogger(__name__)


async def report_disabled(db: AsyncSession, endpoint: WebhookEndpoint) -> None:
    log.warning("webhook %d (%s) disabled: %s", endpoint.id, endpoint.url,
                endpoint.disabled_reason)
    admins = (
        await db.scalars(select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True)))
    ).all()
    await announce(
        db, EventKind.WEBHOOK_DISABLED, recipients=list(admins), webhooks=False,
        data={"webhook_id": endpoint.id, "url": endpoint.url,
              "reason": endpoint.disabled_reason, "link": "/admin"},
    )
