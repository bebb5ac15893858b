"""The outbox worker: every control process runs one (started with the app), which now
and then makes the due reminders and sends what the outbox holds: mail, webhooks.
Several workers on one PostgreSQL share the work without sending anything twice
(outbox.py says how)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from datetime import datetime

import aiohttp

from config.settings import Settings
from control.db.database import Database
from control.models import Channel
from control.models.base import utcnow
from control.notifications.address_guard import allowed_networks
from control.notifications.mail import MailSender, build_mail
from control.notifications.outbox import Claimed, Outcome, claim_due, settle
from control.notifications.reminders import remind_due
from control.notifications.unsubscribe import make_token, unsubscribe_key
from control.notifications.webhooks import GuardedResolver, deliver

__all__ = ["NotificationWorker"]

log = logging.getLogger(__name__)
BATCH = 50


class NotificationWorker:
    def __init__(self, settings: Settings, database: Database) -> None:
        self._settings = settings
        self._database = database
        self._config = settings.notifications
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._allowed = allowed_networks(self._config.webhook_allowed_networks)
        self._mail = MailSender(self._config.smtp_url) if self._config.smtp_url else None
        self._client: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self._allowed))
            # trust_env off: no proxy from the environment may route around the guard.
            self._client = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def _send(self, claimed: Claimed, now: datetime) -> Outcome:
        if claimed.skip:
            return Outcome(ok=False, skipped=True, error=claimed.skip)
        if claimed.channel == Channel.WEBHOOK:
            return await deliver(self._http(), claimed, self._allowed, now)
        if self._mail is None:
            return Outcome(ok=False, skipped=True, error="no SMTP server configured")
        assert claimed.user_id is not None
        token = make_token(unsubscribe_key(self._settings), claimed.user_id)
        mail = build_mail(claimed, sender=self._config.mail_from,
                          public_url=self._settings.public_url, unsubscribe_token=token)
        return await self._mail.send(mail)

    async def run_once(self, now: datetime | None = None) -> int:
        """Make the due reminders, then send one batch of due deliveries; how many were
        tried. `now` is for tests that move time on."""
        at = now or utcnow()
        async with self._database.transaction(write=True) as db:
            await remind_due(db, now=at, minutes=self._config.reminder_minutes)
        batch = await claim_due(self._database, owner=self.owner, now=at, limit=BATCH)
        outcomes = await asyncio.gather(*(self._send(c, at) for c in batch))
        for claimed, outcome in zip(batch, outcomes, strict=True):
            disabled = await settle(
                self._database, claimed, outcome, owner=self.owner, now=now or utcnow(),
                max_attempts=self._config.delivery_max_attempts,
                retry_seconds=self._config.delivery_retry_seconds,
                failure_limit=self._config.webhook_failure_limit,
            )
            if disabled:
                log.warning("webhook %s disabled: %s", claimed.webhook_id, disabled)
        return len(batch)

    async def run_forever(self) -> None:
        while True:
            try:
                tried = await self.run_once()
            except Exception:
                # A failed round is tried again at the next poll; the server keeps serving.
                log.exception("sending notifications failed")
                tried = 0
            if tried < BATCH:
                await asyncio.sleep(self._config.outbox_poll_seconds)
