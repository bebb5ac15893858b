"""One live class on a real cluster, and a playback token for each of its students.

PostgreSQL (tests/support/postgres_server.py), Redis, moto's S3 server, one control
process and one media node (`academia serve --role control|media`, passthrough mode: the
CPU goes to the players and the edge, not to x264) and the nginx edge of `academia
edge-config` (tests/support/cluster_processes.py). Through the API, as an admin: a
teacher, a private course and its stream key. The students are written straight into the
database (users, active enrollments, sign-in tokens: thousands through the API would take
minutes), then each asks the API for its own playback grant, as a student's page does.
One ffmpeg publishes to the media node (tests/support/live_stack.py's publish_ffmpeg).

`live_class` stops everything it started when its block ends, whatever ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert, select

from config.settings import AuthSettings
from control.accounts.auth_tokens import issue_token
from control.accounts.passwords import Passwords
from control.db.database import Database
from control.models import Enrollment, EnrollmentStatus, Role, User
from support.cluster_processes import ADMIN_PASSWORD, Cluster, ClusterProcess, create_database
from support.live_stack import media_playlist_uris, publish_ffmpeg
from support.nginx_edge import NginxEdge
from support.postgres_server import start_postgres, stop_postgres
from support.redis_server import start_redis, stop_redis
from support.s3_server import S3Server

__all__ = ["METRICS_TOKEN", "LiveClass", "live_class"]

METRICS_TOKEN = "viewers-bench-metrics-token"
PASSWORD = "viewers-bench-password"
# Signing in is not measured: the cheapest argon2 cost keeps seeding quick.
_CHEAP = AuthSettings(password_time_cost=1, password_memory_cost_kib=64)
GRANT_CONCURRENCY = 16
LIVE_WITHIN_S = 60.0


@dataclass
class LiveClass:
    cluster: Cluster
    control: ClusterProcess
    media: ClusterProcess
    edge: NginxEdge
    session_id: int
    # Each student's media playlist through the edge (the grant's URL, the first variant).
    playlists: list[str]
    master_url: str  # the first student's master playlist through the edge

    def at(self, base: str) -> list[str]:
        """The students' playlist URLs at another origin (`base`: scheme://host:port)."""
        edge = self.cluster.edge_url
        return [base + url.removeprefix(edge) for url in self.playlists]


async def _call(http: aiohttp.ClientSession, method: str, url: str, token: str,
                body: Any = None) -> Any:
    async with http.request(method, url, json=body,
                            headers={"Authorization": f"Bearer {token}"}) as answer:
        found = await answer.json()
        if answer.status >= 400:
            raise RuntimeError(f"{method} {url}: {answer.status} {found}")
        return found


async def _course(http: aiohttp.ClientSession, api: str) -> tuple[int, str]:
    """(course id, stream key) of a new private course, made as the admin."""
    async with http.post(f"{api}/auth/login",
                         json={"username": "admin", "password": ADMIN_PASSWORD}) as answer:
        admin = (await answer.json())["token"]
    teacher = await _call(http, "POST", f"{api}/users/", admin,
                          {"username": "bench_teacher", "password": PASSWORD,
                           "role": "teacher"})
    category = await _call(http, "POST", f"{api}/categories/", admin, {"name": "Bench"})
    course = await _call(http, "POST", f"{api}/courses/", admin,
                         {"title": "Viewers", "category_id": category["id"],
                          "teacher_id": teacher["id"]})
    await _call(http, "PATCH", f"{api}/courses/{course['id']}/", admin,
                {"access_level": "private"})
    key = await _call(http, "POST", f"{api}/courses/{course['id']}/stream-keys", admin, {})
    return int(course["id"]), str(key["key"])


async def _students(database_url: str, course_id: int, count: int) -> list[str]:
    """`count` students enrolled in the course; their sign-in tokens."""
    database = Database(database_url)
    password_hash = Passwords(_CHEAP).hash(PASSWORD)
    try:
        async with database.transaction(write=True) as db:
            await db.execute(insert(User), [
                {"username": f"viewer{i}", "password_hash": password_hash,
                 "role": Role.STUDENT} for i in range(count)])
            users = (await db.scalars(select(User).where(User.username.like("viewer%"))
                                      .order_by(User.id))).all()
            await db.execute(insert(Enrollment), [
                {"course_id": course_id, "student_id": u.id,
                 "status": EnrollmentStatus.ACTIVE, "paid": True} for u in users])
            return [(await issue_token(db, u, 86_400))[0] for u in users]
    finally:
        await database.close()


async def _live_session(http: aiohttp.ClientSession, api: str, course_id: int) -> int:
    deadline = time.monotonic() + LIVE_WITHIN_S
    while time.monotonic() < deadline:
        async with http.get(f"{api}/courses/{course_id}/live-status") as answer:
            status = await answer.json()
        if status.get("is_live") and status.get("session_id"):
            return int(status["session_id"])
        await asyncio.sleep(0.5)
    raise RuntimeError(f"course {course_id} did not go live within {LIVE_WITHIN_S:.0f} s")


async def _grants(http: aiohttp.ClientSession, api: str, session_id: int,
                  tokens: list[str]) -> list[str]:
    """Each student's master playlist URL, from GET /sessions/{id}/playback."""
    gate = asyncio.Semaphore(GRANT_CONCURRENCY)

    async def one(token: str) -> str:
        async with gate:
            grant = await _call(http, "GET", f"{api}/sessions/{session_id}/playback", token)
            return str(grant["url"])

    return list(await asyncio.gather(*(one(t) for t in tokens)))


async def _first_variant(http: aiohttp.ClientSession, master_url: str) -> str:
    """The first media playlist's URI in the master, once the class has one."""
    deadline = time.monotonic() + LIVE_WITHIN_S
    while time.monotonic() < deadline:
        async with http.get(master_url) as answer:
            if answer.status == 200:
                uris = media_playlist_uris(await answer.text())
                if uris:
                    return uris[0]
        await asyncio.sleep(0.5)
    raise RuntimeError(f"no media playlist in {master_url}")


@asynccontextmanager
async def live_class(work: Path, students: int, *, publish_seconds: float
                     ) -> AsyncIterator[LiveClass]:
    """The cluster, the class live and `students` playback grants; all stopped after."""
    postgres = start_postgres(work / "postgres")
    redis = None
    s3 = S3Server(work)
    cluster: Cluster | None = None
    publisher: asyncio.subprocess.Process | None = None
    try:
        redis = start_redis(work / "redis")
        s3.start()
        database_url = await create_database(postgres.url, "viewers")
        cluster = Cluster(work / "cluster", database_url, redis.url, s3.endpoint,
                          bucket="viewers",
                          extra_env={"ACADEMIA_TRANSCODE_MODE": "passthrough",
                                     "ACADEMIA_METRICS_TOKEN": METRICS_TOKEN})
        await cluster.migrate()
        control = await cluster.start_control("control-1")
        media = await cluster.start_media("media-1", control)
        edge = await cluster.start_edge()
        async with aiohttp.ClientSession() as http:
            course_id, key = await _course(http, control.url)
            tokens = await _students(database_url, course_id, students)
            # 640x360 at 30 fps: a real cadence of parts for little x264 CPU.
            publisher = await publish_ffmpeg(media.rtmp_url(key), seconds=publish_seconds,
                                             size="640x360", fps=30, gop_seconds=2)
            session_id = await _live_session(http, control.url, course_id)
            masters = await _grants(http, control.url, session_id, tokens)
            variant = await _first_variant(http, masters[0])
            playlists = [m.rsplit("/", 1)[0] + "/" + variant for m in masters]
        yield LiveClass(cluster, control, media, edge, session_id, playlists, masters[0])
    finally:
        if publisher is not None and publisher.returncode is None:
            publisher.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(publisher.wait(), 5)
            if publisher.returncode is None:
                publisher.kill()
                await publisher.wait()
        if cluster is not None:
            await cluster.close()
        s3.stop()
        if redis is not None:
            stop_redis(redis)
        stop_postgres(postgres)
