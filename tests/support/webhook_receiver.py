"""A webhook receiver on a real HTTP port: it verifies each delivery with the reference
Standard Webhooks library, keeps what it got, and answers the status a test sets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Receiver:
    url: str = ""
    secret: str = ""
    status: int = 200  # what it answers
    received: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    bad_signatures: int = 0


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()

    async def take(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = Webhook(receiver.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            receiver.bad_signatures += 1
            return web.Response(status=400)
        receiver.ids.append(request.headers["webhook-id"])
        receiver.received.append(payload)
        return web.Response(status=receiver.status)

    app = web.Application()
    app.router.add_post("/hook", take)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()
