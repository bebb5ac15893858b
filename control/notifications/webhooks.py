"""Webhook endpoints: checking a URL an admin registers, and delivering one event to one
endpoint, signed (signing.py), with no redirects followed and no internal address reached
(address_guard.py: literal addresses are checked here, names by the resolver, which hands
aiohttp only the addresses it checked)."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from control.notifications.address_guard import AddressRefused, Network, check_address
from control.notifications.outbox import Claimed, Outcome
from control.notifications.signing import signed_headers

__all__ = ["GuardedResolver", "check_url", "deliver", "payload"]

TIMEOUT = aiohttp.ClientTimeout(total=15)
ACCEPTED_SCHEMES = ("http", "https")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_url(url: str, allowed: tuple[Network, ...]) -> None:
    """Refuse (AddressRefused) a URL that is not http(s) or names an internal address."""
    parts = urlsplit(url)
    if parts.scheme not in ACCEPTED_SCHEMES or not parts.hostname:
        raise AddressRefused("a webhook URL is http:// or https:// with a host")
    if parts.username or parts.password:
        raise AddressRefused("a webhook URL carries no user name or password")
    host = parts.hostname
    if _is_ip(host):
        check_address(host, allowed)
    elif host == "localhost" or host.endswith(".localhost"):
        check_address("127.0.0.1", allowed)


class GuardedResolver(AbstractResolver):
    """Resolves names, then refuses them if any address they give is internal."""

    def __init__(self, allowed: tuple[Network, ...]) -> None:
        self._inner = ThreadedResolver()
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            try:
                check_address(entry["host"], self._allowed)
            except AddressRefused as exc:
                # An OSError is what aiohttp expects of a resolver that cannot connect.
                raise OSError(f"{host}: {exc}") from None
        return found

    async def close(self) -> None:
        await self._inner.close()


def payload(claimed: Claimed) -> str:
    """The Standard Webhooks body: {"type", "timestamp", "data"}, compact JSON."""
    body: dict[str, Any] = {"type": claimed.kind,
                            "timestamp": claimed.created_at.isoformat(timespec="seconds"),
                            "data": claimed.data}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


async def deliver(
    client: aiohttp.ClientSession, claimed: Claimed, allowed: tuple[Network, ...],
    now: datetime,
) -> Outcome:
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        check_url(claimed.url, allowed)
    except AddressRefused as exc:
        return Outcome(ok=False, error=str(exc))
    body = payload(claimed)
    headers = {**signed_headers(claimed.secret, claimed.message_id, now, body),
               "Content-Type": "application/json", "User-Agent": "AcademiaLive-Webhooks/1"}
    try:
        async with client.post(claimed.url, data=body.encode(), headers=headers,
                               allow_redirects=False, timeout=TIMEOUT) as response:
            await response.read()
            if 200 <= response.status < 300:
                return Outcome(ok=True, status_code=response.status, duration_ms=took())
            return Outcome(ok=False, status_code=response.status,
                           error=f"HTTP {response.status}", duration_ms=took())
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:500], duration_ms=took())
