"""Claiming and settling outbox rows, so each delivery is made by one worker, once.

A worker claims due rows in a short transaction: on PostgreSQL `SELECT ... FOR UPDATE
SKIP LOCKED` lets several control processes claim side by side without waiting on or
taking each other's rows; every row is then leased by a guarded UPDATE (still unleased,
or its lease run out), which alone is enough on SQLite, whose one writer at a time makes
the check and the write atomic. The send happens after that commit, holding no lock and
no connection; a second short transaction records the attempt and settles the row (sent,
retried later with backoff, or failed), only if the lease is still this worker's.

A worker that dies between sending and settling leaves a row whose lease runs out and
that is sent again: the one case of a second delivery, which is why every delivery
carries an id that stays the same on every try (mail Message-ID, webhook-id).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control.db.database import Database
from control.models import (
    Channel,
    DeliveryAttempt,
    DeliveryStatus,
    NotificationEvent,
    OutboxMessage,
    User,
    WebhookEndpoint,
)
from control.notifications.endpoint_report import report_disabled
from control.notifications.preferences import channels_of

__all__ = ["Claimed", "Outcome", "backoff", "claim_due", "settle"]

# Longer than any send may take (mail and webhook timeouts are well below it).
LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True)
class Claimed:
    """One delivery to make, with everything needed to make it outside a transaction."""

    id: int
    channel: Channel
    message_id: str
    attempt: int
    kind: str
    data: dict[str, Any]
    created_at: datetime
    user_id: int | None = None
    email: str = ""
    webhook_id: int | None = None
    url: str = ""
    secret: str = ""
    # Why there is nothing to send after all (no address, unsubscribed, endpoint gone).
    skip: str = ""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0
    skipped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def backoff(attempt: int, base_seconds: int) -> timedelta:
    """Before try `attempt + 1`: base, 2 x base, 4 x base ... at most an hour."""
    return min(timedelta(seconds=base_seconds * 2 ** max(attempt - 1, 0)), MAX_BACKOFF)


async def _describe(db: AsyncSession, row: OutboxMessage, event: NotificationEvent) -> Claimed:
    base = Claimed(id=row.id, channel=row.channel, message_id=row.message_id,
                   attempt=row.attempts, kind=event.kind, data=dict(event.data),
                   created_at=event.created_at, user_id=row.user_id, webhook_id=row.webhook_id)
    if row.channel == Channel.EMAIL:
        user = await db.get(User, row.user_id) if row.user_id is not None else None
        if user is None or not user.is_active or not user.email:
            return _with(base, skip="no address to send to")
        if not (await channels_of(db, [user.id]))[user.id].email:
            return _with(base, skip="unsubscribed from mail")
        return _with(base, email=user.email)
    endpoint = await db.get(WebhookEndpoint, row.webhook_id) if row.webhook_id else None
    if endpoint is None or not endpoint.enabled:
        return _with(base, skip="the webhook endpoint is disabled")
    return _with(base, url=endpoint.url, secret=endpoint.secret)


def _with(base: Claimed, **changes: Any) -> Claimed:
    return replace(base, **changes)


async def claim_due(
    database: Database, *, owner: str, now: datetime, limit: int = 20
) -> list[Claimed]:
    async with database.transaction(write=True) as db:
        candidates = (
            await db.scalars(
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.status == DeliveryStatus.PENDING,
                    OutboxMessage.next_attempt_at <= now,
                    or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
                )
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        claimed: list[Claimed] = []
        for row_id in candidates:
            taken = await db.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row_id,
                    OutboxMessage.status == DeliveryStatus.PENDING,
                    or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
                )
                .values(lease_until=now + LEASE, lease_owner=owner,
                        attempts=OutboxMessage.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another worker leased it between our select and update
            row = await db.get(OutboxMessage, row_id, populate_existing=True)
            assert row is not None
            event = await db.get(NotificationEvent, row.event_id)
            assert event is not None
            claimed.append(await _describe(db, row, event))
        return claimed


async def settle(
    database: Database, claimed: Claimed, outcome: Outcome, *, owner: str, now: datetime,
    max_attempts: int, retry_seconds: int, failure_limit: int,
) -> str | None:
    """Record the attempt and move the row on. Returns the reason a webhook endpoint was
    just disabled (for the caller to report), else None."""
    async with database.transaction(write=True) as db:
        row = await db.get(OutboxMessage, claimed.id, with_for_update=True,
                           populate_existing=True)
        if row is None or row.lease_owner != owner or row.status != DeliveryStatus.PENDING:
            return None  # deleted meanwhile, or our lease ran out and another took it
        if not outcome.skipped:
            db.add(DeliveryAttempt(outbox_id=row.id, at=now, ok=outcome.ok,
                                   status_code=outcome.status_code,
                                   error=outcome.error[:500], duration_ms=outcome.duration_ms))
        row.lease_until = None
        row.last_error = outcome.error
        if outcome.skipped:
            row.status = DeliveryStatus.SKIPPED
        elif outcome.ok:
            row.status = DeliveryStatus.SENT
            row.sent_at = now
        elif row.attempts >= max_attempts:
            row.status = DeliveryStatus.FAILED
        else:
            row.next_attempt_at = now + backoff(row.attempts, retry_seconds)
        if row.channel != Channel.WEBHOOK or row.webhook_id is None or outcome.skipped:
            return None
        endpoint = await db.get(WebhookEndpoint, row.webhook_id, with_for_update=True)
        if endpoint is None:
            return None
        if outcome.ok:
            endpoint.consecutive_failures = 0
            return None
        endpoint.consecutive_failures += 1
        if not endpoint.enabled or endpoint.consecutive_failures < failure_limit:
            return None
        reason = (f"{endpoint.consecutive_failures} failed deliveries in a row;"
                  f" last: {outcome.error}")[:500]
        endpoint.enabled = False
        endpoint.disabled_at = now
        endpoint.disabled_reason = reason
        # Its other waiting deliveries would only fail too. Rows another worker holds (a
        # lease, or a row lock while it settles one) are left to it: waiting for them here
        # while holding the endpoint could deadlock; that worker finds the endpoint
        # disabled at its next claim.
        waiting = (
            await db.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.webhook_id == endpoint.id,
                       OutboxMessage.status == DeliveryStatus.PENDING,
                       OutboxMessage.id != row.id,
                       or_(OutboxMessage.lease_until.is_(None),
                           OutboxMessage.lease_until < now))
                .with_for_update(skip_locked=True)
            )
        ).all()
        if waiting:
            await db.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(list(waiting)))
                .values(status=DeliveryStatus.FAILED, last_error="the endpoint was disabled")
                .execution_options(synchronize_session=False)
            )
        await report_disabled(db, endpoint)
        return reason
