"""Helpers for the sign-in rate-limit tests: an app whose limits run on a test clock and
believe X-Forwarded-For from the test client (to play many addresses), and a hasher that
counts its calls."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from config.settings import AuthSettings, Settings
from control.accounts.rate_limit_store import InProcessStore, RateLimitStore
from control.accounts.sign_in_limits import SignInLimits
from control.app import build_app
from control.db.database import Database
from control.http.state import STATE
from support.api_client import Api

OFF = {"login_ip_burst": 0, "login_account_burst": 0, "register_ip_burst": 0}


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingHasher:
    """Wraps the app's Passwords.verify to count the argon2 checks actually made."""

    def __init__(self, api: Api) -> None:
        passwords = api.client.app[STATE].passwords
        self.calls = 0
        lock = threading.Lock()
        real = passwords.verify

        def verify(password_hash: str, password: str) -> bool:
            with lock:
                self.calls += 1
            return bool(real(password_hash, password))

        passwords.verify = verify


def limited_settings(settings: Settings, *, proxies: str = "127.0.0.1", redis_url: str = "",
                     **auth: Any) -> Settings:
    return dataclasses.replace(
        settings,
        auth=dataclasses.replace(settings.auth, **{**OFF, **auth}),
        server=dataclasses.replace(settings.server, trusted_proxies=proxies, redis_url=redis_url),
    )


async def limited_api(
    aiohttp_client: Any, database: Database, settings: Settings, *,
    clock: Clock | None = None, store: RateLimitStore | None = None,
) -> Api:
    app = build_app(settings, database)
    if clock is not None:
        auth: AuthSettings = settings.auth
        app[STATE].sign_in_limits = SignInLimits(auth, store or InProcessStore(), clock)
    return Api(await aiohttp_client(app), database, settings)


def source(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}
