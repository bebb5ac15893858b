"""The Academia Live process in its role: migrations, first-start setup, the node, jobs.

`all` (the default) is the whole server in one process; `control` the API, pages, chat
and jobs of a cluster; `media` a cluster's ingest and live origin, which touches no
database (it asks the control plane over HTTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sys
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from config.loading import SettingsError
from config.settings import ROLES, Settings
from control.accounts.passwords import Passwords
from control.accounts.user_accounts import count_users, create_user
from control.courses.demo_course import create_demo_course
from control.db.database import Database
from control.db.migrate import is_current, upgrade
from control.errors import ApiError
from control.models import Role
from control.models.base import utcnow
from control.scheduling.session_generation import generate_sessions
from control.streaming.stream_keys import rtmp_url
from mediaserver.control_node import ControlNode
from mediaserver.first_start_credentials import announce_credentials
from mediaserver.node import MediaNode
from mediaserver.recording_store import RecordingStore
from mediaserver.retention_job import enforce_retention_forever

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
    """See _first_start. Control processes of a cluster start together on one empty
    database: one of them makes the admin, the others' attempts fail on the unique
    username and are let go (before anything was announced)."""
    try:
        await _first_start(settings, database)
    except IntegrityError:
        log.info("first start: another process made the admin account meanwhile")
    except ApiError as exc:
        if exc.code != "username_taken":
            raise
        log.info("first start: another process made the admin account meanwhile")


async def _first_start(settings: Settings, database: Database) -> None:
    """On an empty database, make the admin account and a demo course with a stream key,
    and say how to sign in and what to paste into OBS (the secrets themselves only on a
    terminal, else in a private file: see first_start_credentials)."""
    url = settings.public_url
    async with database.transaction(write=True) as db:
        if await count_users(db):
            return
        password = settings.auth.admin_password or secrets.token_urlsafe(12)
        admin = await create_user(
            db, Passwords(settings.auth), username="admin", password=password, role=Role.ADMIN
        )
        course, key = await create_demo_course(
            db, admin, capacity=settings.courses.course_enrollment_limit
        )

        def notice(show: Callable[[str], str]) -> str:
            lines = [
                "First start: created the admin account.",
                "  username: admin",
                "  password: the one in ACADEMIA_ADMIN_PASSWORD" if settings.auth.admin_password
                else f"  password: {show(password)}",
                f'  sign in:  POST {url}/auth/login {{"username": "admin", "password": "..."}}',
                f"And a public demo course (id {course.id}) to try streaming. "
                "In OBS, Settings > Stream:",
                "  Service:    Custom...",
                f"  Server:     {rtmp_url(settings)}",
                f"  Stream Key: {show(key)}",
                f"Then watch it in a browser: {url}/learn/{course.id}",
                f"  (the embeddable player: {url}/embed/{course.id}; "
                f"the teacher's page: {url}/teach)",
            ]
            return "\n".join(lines)

        # Printed on a terminal only: elsewhere stdout is a log that would keep the secrets.
        # Inside the transaction: if the file cannot be written, no admin is made either,
        # and the next start tries again (rather than leaving secrets no one ever saw).
        announce_credentials(notice, settings.server.data_dir, sys.stdout)


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


async def serve_forever(settings: Settings) -> None:
    role = settings.cluster.role
    if role not in ROLES:
        raise SettingsError(f"role: {role!r} is none of {', '.join(ROLES)}")
    database = None
    if role != "media":
        database = Database(settings.database_url)
        await prepare_database(settings, database)
        await first_start(settings, database)
    # Handlers first: a SIGTERM that arrives while starting still shuts down cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node: MediaNode | ControlNode
    if role == "control":
        assert database is not None
        node = ControlNode(settings, database)
    else:
        node = MediaNode(settings, database)
    await node.start()
    if role == "media":
        print(f"Academia Live media node on port {node.http_port}, asking the control plane"
              f" at {settings.cluster.control_url}", flush=True)
    else:
        print(f"Academia Live is listening on {settings.public_url}", flush=True)
        print(f"  API description: {settings.public_url}/openapi.json", flush=True)
    if role != "control":
        print(f"  RTMP ingest (OBS server URL): {rtmp_url(settings)}", flush=True)

    jobs: list[asyncio.Task[None]] = []
    if database is not None:
        jobs.append(asyncio.create_task(generate_sessions_forever(settings, database)))
        # Storage and database both at hand: this process applies the retention policy.
        store = node.store if isinstance(node, ControlNode) else RecordingStore(node.storage)
        jobs.append(asyncio.create_task(enforce_retention_forever(settings, database, store)))
    try:
        await stop.wait()
    finally:
        log.info("shutting down%s", ": finalising live sessions" if role != "control" else "")
        # Jobs first: a retention run must not outlive the storage it deletes from.
        for job in jobs:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        await node.close()
        if database is not None:
            await database.close()
        log.info("shut down cleanly")
