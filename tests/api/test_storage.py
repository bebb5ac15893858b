"""GET /storage, per-course retention and what happens when storage is full, on both
databases, over a real storage folder (LocalStorage through the media side's port; large
objects are sparse files, so a gigabyte costs no disk)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from config.loading import load_settings
from config.settings import Settings
from control.app import build_app
from control.db.database import Database
from control.models import CourseSession, SessionStatus
from control.models.base import utcnow
from control.storage_policy.enforcement import AUDIT_ACTION, enforce_retention
from control.storage_policy.one_runner import retention_turn
from mediaserver.recording_store import RecordingStore
from mediaserver.retention_job import enforce_retention_forever
from support.api_client import Api
from support.world import World
from transcode.storage.local import LocalStorage

MB = 1_000_000


@pytest.fixture
def media(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The smallest limit there is (1 GB): sparse files fill it without using the disk."""
    return dataclasses.replace(
        settings, storage=dataclasses.replace(settings.storage, vod_storage_limit_gb=1))


@pytest.fixture
async def api(aiohttp_client: Any, database: Database, settings: Settings,
              media: LocalStorage) -> Api:
    """The app with the media side's port over `media` (conftest's `world` builds on it)."""
    app = build_app(settings, database, media_store=RecordingStore(media))
    return Api(await aiohttp_client(app), database, settings)


async def put_sized(media: LocalStorage, key: str, size: int) -> None:
    await media.put(key, b"x", "application/octet-stream")
    os.truncate(media.root / key, size)  # sparse: the size is real, the disk untouched


async def add_session(database: Database, course_id: int, *, days_ago: float,
                      status: SessionStatus = SessionStatus.ENDED) -> int:
    start = utcnow() - timedelta(days=days_ago)
    async with database.transaction(write=True) as db:
        session = CourseSession(
            course_id=course_id, title=f"{days_ago} days ago", start_time=start,
            end_time=start + timedelta(hours=1), status=status, started_at=start,
            ended_at=None if status == SessionStatus.LIVE else start + timedelta(hours=1),
            recording_url="" if status == SessionStatus.LIVE else "http://x/recording")
        db.add(session)
        await db.flush()
        return session.id


async def record(media: LocalStorage, sid: int, size: int) -> None:
    await put_sized(media, f"recordings/{sid}/hd/000001.m4s", size // 2)
    await put_sized(media, f"recordings/{sid}/recording.mp4", size - size // 2)


async def test_storage_by_kind_course_and_session(api: Api, world: World,
                                                  media: LocalStorage) -> None:
    ended = await add_session(api.database, world.course_id, days_ago=2)
    live = await add_session(api.database, world.course_id, days_ago=0,
                             status=SessionStatus.LIVE)
    await put_sized(media, f"recordings/{ended}/hd/000001.m4s", 1000)
    await put_sized(media, f"recordings/{ended}/hd/index.m3u8", 10)
    await put_sized(media, f"recordings/{ended}/recording.mp4", 5000)
    await put_sized(media, f"recordings/{ended}/poster.jpg", 40)
    await put_sized(media, f"recordings/{live}/sd/000001.m4s", 300)
    await put_sized(media, "resources/1/slides.pdf", 70)
    out = await api.get("/storage", world.admin, expect=200)
    assert out["total_bytes"] == 6420
    assert out["by_kind"] == {"live": 300, "recording": 1010, "mp4": 5040, "resources": 70,
                              "other": 0}
    assert out["limit_bytes"] == 1000 * MB
    assert out["warning"] is None
    [course] = out["courses"]
    assert course["course_id"] == world.course_id and course["bytes"] == 6350
    sessions = {s["session_id"]: s for s in course["sessions"]}
    assert sessions[ended]["by_kind"]["mp4"] == 5040
    assert sessions[ended]["status"] == "ended"
    assert sessions[live]["by_kind"]["live"] == 300
    await api.get("/storage", world.teacher, expect=403)


def test_the_limit_is_the_seeds_vod_storage_limit() -> None:
    assert load_settings(environ={}).storage.vod_storage_limit_gb == 1000
    assert load_settings(environ={"ACADEMIA_VOD_STORAGE_LIMIT_GB": "20"}
                         ).storage.vod_storage_limit_gb == 20


async def test_warning_past_80_percent(api: Api, world: World, media: LocalStorage,
                                       caplog: pytest.LogCaptureFixture) -> None:
    database, small = api.database, api.settings
    sid = await add_session(database, world.course_id, days_ago=1)
    await record(media, sid, 790 * MB)
    assert (await api.get("/storage", world.admin, expect=200))["warning"] is None
    await put_sized(media, "resources/1/notes.pdf", 20 * MB)
    out = await api.get("/storage", world.admin, expect=200)
    assert out["used_share"] == 0.81 and "81%" in out["warning"]
    caplog.set_level(logging.WARNING, "control.storage_policy.enforcement")
    report = await enforce_retention(small, database, RecordingStore(media), now=utcnow())
    assert report is not None
    assert report.deleted == [] and report.warning  # warned, nothing over the limit yet
    assert any("vod_storage_limit_gb" in r.getMessage() for r in caplog.records)


async def test_when_full_past_retention_then_oldest_never_live_nor_resources(
        api: Api, world: World, media: LocalStorage) -> None:
    database, small = api.database, api.settings
    other = await api.post("/courses/", world.other_teacher, json={
        "title": "Kept long", "category_id": world.category_id}, expect=201)
    await api.put(f"/courses/{world.course_id}/retention", world.admin,
                  json={"retention_days": 30}, expect=200)
    expired = await add_session(database, world.course_id, days_ago=40)  # past 30 days
    oldest = await add_session(database, other["id"], days_ago=300)  # no retention
    older = await add_session(database, other["id"], days_ago=200)
    recent = await add_session(database, world.course_id, days_ago=5)
    live = await add_session(database, other["id"], days_ago=400, status=SessionStatus.LIVE)
    for sid in (expired, oldest, older, recent, live):
        await record(media, sid, 250 * MB)
    await put_sized(media, "resources/9/big.zip", 100 * MB)
    # 1350 MB in a 1000 MB limit: the expired one goes (retention), then the oldest
    # (storage full): 850 MB left. The live class and the resource stay, whatever their age.
    report = await enforce_retention(small, database, RecordingStore(media), now=utcnow())
    assert report is not None
    assert [(d.session_id, d.reason) for d in report.deleted] == [
        (expired, "retention"), (oldest, "storage_full")]
    assert report.used_after == 850 * MB
    left = {key.split("/")[1] for key in await media.list("")}
    assert left == {str(older), str(recent), str(live), "9"}
    audit = await api.get(f"/audit?action={AUDIT_ACTION}", world.admin, expect=200)
    entries = {e["detail"]["session_id"]: e for e in audit["results"]}
    assert set(entries) == {expired, oldest}
    assert entries[expired]["detail"]["reason"] == "retention"
    assert entries[oldest]["detail"]["bytes"] == 250 * MB
    assert entries[oldest]["actor_id"] is None  # the job, not a person
    session = await api.get(f"/sessions/{oldest}/", world.admin, expect=200)
    assert session["recording_url"] == ""
    # Run again: nothing more to do (under the limit, nothing else past retention).
    again = await enforce_retention(small, database, RecordingStore(media), now=utcnow())
    assert again is not None
    assert again.deleted == []


async def test_retention_is_a_course_setting_for_admins(api: Api, world: World) -> None:
    path = f"/courses/{world.course_id}/retention"
    out = await api.put(path, world.admin, json={"retention_days": 90}, expect=200)
    assert out == {"course_id": world.course_id, "retention_days": 90}
    await api.put(path, world.admin, json={"retention_days": 0}, expect=422)
    await api.put(path, world.teacher, json={"retention_days": 1}, expect=403)
    out = await api.put(path, world.admin, json={"retention_days": None}, expect=200)
    assert out["retention_days"] is None
    audit = await api.get("/audit?action=storage.retention", world.admin, expect=200)
    assert [e["detail"]["retention_days"] for e in audit["results"]] == [None, 90]


async def test_no_storage_in_this_process_is_503(aiohttp_client: Any, api: Api,
                                                 world: World, settings: Settings) -> None:
    bare = Api(await aiohttp_client(build_app(settings, api.database)), api.database,
               settings)
    out = await bare.get("/storage", world.admin, expect=503)
    assert out["error"]["code"] == "storage_unavailable"


async def test_the_job_applies_the_policy_on_its_first_run(api: Api, world: World,
                                                          media: LocalStorage) -> None:
    await api.put(f"/courses/{world.course_id}/retention", world.admin,
                  json={"retention_days": 7}, expect=200)
    expired = await add_session(api.database, world.course_id, days_ago=10)
    await record(media, expired, 1000)
    job = asyncio.create_task(enforce_retention_forever(api.settings, api.database,
                                                        RecordingStore(media)))
    try:
        for _ in range(200):
            if not await media.list(f"recordings/{expired}/"):
                break
            await asyncio.sleep(0.05)
        assert await media.list(f"recordings/{expired}/") == []
    finally:
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
    audit = await api.get(f"/audit?action={AUDIT_ACTION}", world.admin, expect=200)
    assert [e["detail"]["session_id"] for e in audit["results"]] == [expired]


async def test_one_run_at_a_time_across_processes(api: Api, world: World,
                                                  media: LocalStorage) -> None:
    """Another control process is running the job: this one skips its turn (PostgreSQL's
    advisory lock); SQLite is one process's and always runs."""
    async with retention_turn(api.database) as mine:
        assert mine
        other = await enforce_retention(api.settings, api.database, RecordingStore(media),
                                        now=utcnow())
        assert (other is None) == (not api.database.is_sqlite)
    after = await enforce_retention(api.settings, api.database, RecordingStore(media),
                                    now=utcnow())
    assert after is not None  # the lock was let go
