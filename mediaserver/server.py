"""The Academia Live process: migrations, first-start setup, the HTTP API, background jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from config.settings import Settings
from control.accounts import count_users, create_user
from control.api.app import build_app
from control.database import Database
from control.migrate import is_current, upgrade
from control.models import Role
from control.models.base import utcnow
from control.passwords import Passwords
from control.publishing import rtmp_url
from control.session_generation import generate_sessions
from mediaserver.control_inprocess import InProcessControl
from mediaserver.live_registry import LiveRegistry
from mediaserver.media_sink import FlvFileSink, MediaSink
from mediaserver.rtmp.server import RtmpServer

log = logging.getLogger(__name__)


async def prepare_database(settings: Settings, database: Database) -> None:
    """SQLite (the embedded default) is migrated on start; a shared server is migrated
    deliberately with `academia migrate`, so several nodes never race to do it."""
    if database.is_sqlite:
        settings.server.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade(database)
    elif not await is_current(database):
        raise SystemExit("the database schema is not current: run `academia migrate` first")


async def first_start(settings: Settings, database: Database) -> None:
    """On an empty database, make the admin account and say how to sign in."""
    async with database.transaction(write=True) as db:
        if await count_users(db):
            return
        password = settings.auth.admin_password or secrets.token_urlsafe(12)
        await create_user(
            db, Passwords(settings.auth), username="admin", password=password, role=Role.ADMIN
        )
    print("First start: created the admin account.", flush=True)
    print("  username: admin", flush=True)
    if settings.auth.admin_password:
        print("  password: the one in ACADEMIA_ADMIN_PASSWORD", flush=True)
    else:
        print(f"  password: {password}   (shown once: keep it)", flush=True)
    print(
        f"  sign in:  POST {settings.public_url}/auth/login"
        ' {"username": "admin", "password": "..."}',
        flush=True,
    )


SESSION_GENERATION_INTERVAL = 3600.0


async def generate_sessions_forever(settings: Settings, database: Database) -> None:
    """Keeps sessions generated a horizon ahead as time moves on (each run is idempotent)."""
    horizon = timedelta(days=settings.courses.schedule_horizon_days)
    while True:
        try:
            async with database.transaction(write=True) as db:
                report = await generate_sessions(db, now=utcnow(), horizon=horizon)
            if report.created or report.removed:
                log.info("sessions generated: %s", report)
        except Exception:
            # A failed run is retried at the next interval; the server keeps serving.
            log.exception("session generation failed")
        await asyncio.sleep(SESSION_GENERATION_INTERVAL)


def flv_ingest_sinks(media_dir: Path) -> Callable[[int, int], MediaSink]:
    """Until the transcode workers exist, each publish is kept as the source FLV."""

    def make(course_id: int, session_id: int) -> MediaSink:
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        folder = media_dir / "ingest" / f"course-{course_id}"
        folder.mkdir(parents=True, exist_ok=True)
        return FlvFileSink(folder / f"session-{session_id}-{stamp}.flv")

    return make


async def serve_forever(settings: Settings) -> None:
    database = Database(settings.database_url)
    await prepare_database(settings, database)
    await first_start(settings, database)
    app = build_app(settings, database)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.http_port)
    await site.start()
    rtmp = RtmpServer(
        InProcessControl(database, settings.courses),
        flv_ingest_sinks(settings.media_dir),
        host=settings.server.host,
        port=settings.streaming.rtmp_port,
        timeout=settings.streaming.rtmp_timeout_seconds,
        registry=LiveRegistry(max_streams=settings.streaming.max_streams),
    )
    await rtmp.start()
    print(f"Academia Live is listening on {settings.public_url}", flush=True)
    print(f"  API description: {settings.public_url}/openapi.json", flush=True)
    print(f"  RTMP ingest (OBS server URL): {rtmp_url(settings)}", flush=True)

    generator = asyncio.create_task(generate_sessions_forever(settings, database))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await rtmp.close()
        generator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await generator
        await runner.cleanup()
        await database.close()
