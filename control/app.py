"""Builds the control plane's aiohttp application from its endpoint modules."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from config.settings import Settings
from control.accounts.passwords import Passwords, dummy_hash
from control.accounts.rate_limit_store import InProcessStore, RateLimitStore
from control.accounts.sign_in_limits import SignInLimits
from control.api import (
    attendance,
    audit,
    calendars,
    categories,
    chat,
    chat_presence,
    courses,
    enrollments,
    invites,
    live,
    nodes,
    notifications,
    payments,
    playback,
    privacy,
    progress,
    resources,
    schedules,
    sessions,
    storage,
    stream_keys,
    users,
    webhooks,
)
from control.chat.websocket import install_chat
from control.db.database import Database
from control.http.client_address import trusted_networks
from control.http.error_middleware import error_middleware
from control.http.openapi import openapi_document
from control.http.responses import json
from control.http.routing import Endpoint, add_endpoints
from control.http.state import STATE, AppState
from control.node_api.mounting import add_node_api
from control.notifications.worker import NotificationWorker
from control.resources.resource_store import ResourceStore
from control.sessions.live_observer import LiveObserver
from control.storage_policy.media_store import MediaStore
from control.streaming.playback_tokens import PlaybackSigner, signing_key
from control.web.pages import add_page_routes

NOTIFICATION_TASK = web.AppKey("notification_worker", asyncio.Task[None])

ENDPOINT_MODULES = (
    users, categories, courses, stream_keys, audit, enrollments, invites, payments,
    schedules, sessions, live, playback, chat, chat_presence, attendance, nodes, storage,
    privacy, calendars, progress, notifications, webhooks, resources,
)


def all_endpoints() -> list[Endpoint]:
    return [e for module in ENDPOINT_MODULES for e in module.routes.endpoints]


def _rate_limit_store(settings: Settings) -> RateLimitStore:
    """Shared through Redis when there is one (several processes), else this process's."""
    if settings.server.redis_url:
        from control.accounts.redis_rate_limit_store import RedisRateLimitStore

        return RedisRateLimitStore(settings.server.redis_url)
    return InProcessStore()


def _run_notification_worker(
    app: web.Application, settings: Settings, database: Database
) -> None:
    """Every control process sends from the shared outbox (control/notifications/outbox.py
    keeps that once-only); an outbox_poll_seconds of 0 sends nothing (tests drive it)."""
    if settings.notifications.outbox_poll_seconds <= 0:
        return
    worker = NotificationWorker(settings, database)

    async def start(_app: web.Application) -> None:
        _app[NOTIFICATION_TASK] = asyncio.create_task(worker.run_forever())

    async def stop(_app: web.Application) -> None:
        task = _app.get(NOTIFICATION_TASK)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await worker.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


def build_app(
    settings: Settings, database: Database, *, live_observer: LiveObserver | None = None,
    media_store: MediaStore | None = None, resource_store: ResourceStore | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware], client_max_size=settings.server.max_body_bytes
    )
    passwords = Passwords(settings.auth)
    limits = SignInLimits(settings.auth, _rate_limit_store(settings))
    signer = PlaybackSigner(signing_key(settings))
    app[STATE] = AppState(
        settings, database, passwords, dummy_hash(passwords),
        playback_signer=signer, sign_in_limits=limits,
        trusted_proxies=trusted_networks(settings.server.trusted_proxies),
        live_observer=live_observer, media_store=media_store, resource_store=resource_store,
    )

    async def release(_app: web.Application) -> None:
        await limits.close()
        passwords.close()

    app.on_cleanup.append(release)
    _run_notification_worker(app, settings, database)
    endpoints = all_endpoints()
    add_endpoints(app, endpoints)
    document = openapi_document(endpoints)

    async def serve_openapi(_request: web.Request) -> web.Response:
        return json(document)

    app.router.add_get("/openapi.json", serve_openapi)
    # Media nodes' questions and heartbeats: only with a node secret, never in OpenAPI.
    add_node_api(app, settings, database, signer)
    add_page_routes(app, settings.public_url)  # the web pages and their assets
    hub = install_chat(app)  # the chat WebSocket: not a JSON endpoint, so not in OpenAPI
    if settings.server.redis_url:  # several control processes: chat, revocations, presence
        from control.redis_sharing import share_through_redis

        share_through_redis(app, settings.server.redis_url, database, hub)
    return app
