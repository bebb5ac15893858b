"""Course resources on both databases, over real storage (a folder, and moto's S3 for the
whole round trip): teachers upload, those who may see the course list and download through
short signed URLs, and the attacks the feature invites fail (too large, wrong people,
lying types, hostile names, borrowed or stale links)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from config.settings import Settings
from control.api import resources as resources_api
from control.app import build_app
from control.db.database import Database
from control.http.state import STATE
from control.models.base import utcnow
from control.resources.upload_slots import UPLOADS_AT_ONCE
from control.storage_policy.enforcement import enforce_retention
from mediaserver.recording_store import RecordingStore
from mediaserver.resource_files import ResourceFiles
from support.api_client import Api, Person
from support.frozen_time import Clock
from support.recordings import private_course, recorded_session
from support.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, s3_server  # noqa: F401
from support.world import World
from transcode.storage.backend import Storage
from transcode.storage.local import LocalStorage
from transcode.storage.s3 import S3Storage

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + bytes(range(256)) * 40 + b"%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
MB = 1_000_000
SLIDES = "Slides \N{EN DASH} week 1.pdf"  # a name beyond ASCII


def entries(folder: Path) -> list[str]:
    """What a folder holds (none when it does not exist), off the event loop's path."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def media(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media")


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "resource-spool"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A 1 MB cap: passing it costs little."""
    return dataclasses.replace(
        settings, storage=dataclasses.replace(settings.storage, resource_max_mb=1))


def app_api(aiohttp_client: Any, database: Database, settings: Settings, storage: Storage,
            spool: Path) -> Any:
    app = build_app(settings, database, media_store=RecordingStore(storage),
                    resource_store=ResourceFiles(storage, spool))
    return aiohttp_client(app)


@pytest.fixture
async def api(aiohttp_client: Any, database: Database, settings: Settings,
              media: LocalStorage, spool: Path) -> Api:
    """The app with the media side's ports over `media` (conftest's `world` builds on it)."""
    return Api(await app_api(aiohttp_client, database, settings, media, spool), database,
               settings)


async def upload(api: Api, path: str, who: Person | None, data: Any, *, filename: str,
                 title: str = "Slides", expect: int = 201) -> Any:
    return await api.post(f"{path}/resources", who, data=data, expect=expect,
                          params={"title": title, "filename": filename},
                          headers={"Content-Type": "application/octet-stream"})


def local_path(url: str) -> str:
    """The signed URL's path and query: the test client speaks to the app directly."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def fetch(api: Api, url: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
    response = await api.client.get(local_path(url), **kw)
    return response.status, dict(response.headers), await response.read()


async def stored_keys(storage: Storage) -> list[str]:
    return await storage.list("resources/")


@pytest.fixture
async def s3_storage(s3_server: S3Server) -> AsyncIterator[S3Storage]:  # noqa: F811
    store = S3Storage(s3_server.endpoint, ACCESS_KEY, SECRET_KEY, f"res-{uuid.uuid4().hex}")
    yield store
    await store.close()


async def test_upload_list_download_and_delete(api: Api, world: World, media: LocalStorage,
                                               spool: Path) -> None:
    await round_trip(api, world, media, spool)


async def test_the_same_over_s3(api: Api, world: World, s3_storage: S3Storage, spool: Path,
                                aiohttp_client: Any) -> None:
    over_s3 = Api(await app_api(aiohttp_client, api.database, api.settings, s3_storage, spool),
                  api.database, api.settings)
    await round_trip(over_s3, world, s3_storage, spool)


async def round_trip(api: Api, world: World, storage: Storage, spool: Path) -> None:
    """Teacher and admin upload; the enrolled student lists and downloads (whole and a
    range); an outsider sees nothing; staff rename and delete, audited."""
    course = await private_course(api, world, world.student)
    session = await api.post("/sessions/", world.teacher, expect=201, json={
        "course_id": course, "title": "Week 1",
        "start_time": (utcnow() + timedelta(days=1)).isoformat(),
        "end_time": (utcnow() + timedelta(days=1, hours=1)).isoformat()})
    slides = await upload(api, f"/courses/{course}", world.teacher, PDF,
                          filename=SLIDES)
    assert slides["content_type"] == "application/pdf"
    assert slides["size_bytes"] == len(PDF) and slides["filename"] == SLIDES
    assert slides["uploaded_by"] == world.teacher.id and slides["session_id"] is None
    notes = await upload(api, f"/sessions/{session['id']}", world.admin,
                         b"# Notes\n\nGroups act on sets.\n", filename="notes.md", title="Notes")
    assert notes["course_id"] == course and notes["session_id"] == session["id"]
    assert notes["content_type"] == "text/markdown; charset=utf-8"
    keys = await stored_keys(storage)
    assert len(keys) == 2 and all(k.startswith(f"resources/{course}/") for k in keys)

    listed = await api.get(f"/courses/{course}/resources", world.student, expect=200)
    assert [r["title"] for r in listed["results"]] == ["Slides", "Notes"]
    by_session = await api.get(f"/sessions/{session['id']}/resources", world.student,
                               expect=200)
    assert [r["id"] for r in by_session["results"]] == [notes["id"]]
    # A student not in the course sees none of it, nor can they ask for a link.
    out = await api.get(f"/courses/{course}/resources", world.student3, expect=403)
    assert out["error"]["code"] == "not_enrolled"
    await api.get(f"/resources/{slides['id']}/download-url", world.student3, expect=404)
    await api.get(f"/courses/{course}/resources", None, expect=401)

    grant = await api.get(f"/resources/{slides['id']}/download-url", world.student,
                          expect=200)
    assert grant["filename"] == SLIDES
    status, headers, body = await fetch(api, grant["url"])
    assert status == 200 and body == PDF
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"].startswith("attachment;")
    assert f"filename*=UTF-8''{quote(SLIDES, safe='')}" in (
        headers["Content-Disposition"])
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == "sandbox"
    status, headers, body = await fetch(api, grant["url"], headers={"Range": "bytes=5-14"})
    assert status == 206 and body == PDF[5:15]
    assert headers["Content-Range"] == f"bytes 5-14/{len(PDF)}"
    status, headers, body = await fetch(api, grant["url"],
                                        headers={"Range": f"bytes={len(PDF)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(PDF)}"
    text_grant = await api.get(f"/resources/{notes['id']}/download-url", world.student,
                               expect=200)
    status, headers, body = await fetch(api, text_grant["url"])
    assert status == 200 and body.startswith(b"# Notes")
    assert headers["Content-Type"].startswith("text/markdown")  # never text/html

    renamed = await api.patch(f"/resources/{slides['id']}", world.teacher,
                              json={"title": "Week 1 slides"}, expect=200)
    assert renamed["title"] == "Week 1 slides"
    await api.patch(f"/resources/{slides['id']}", world.student, json={"title": "x"},
                    expect=403)
    await api.delete(f"/resources/{slides['id']}", world.student, expect=403)
    await api.delete(f"/resources/{slides['id']}", world.other_teacher, expect=403)
    await api.delete(f"/resources/{slides['id']}", world.teacher, expect=204)
    assert len(await stored_keys(storage)) == 1
    status, _, _ = await fetch(api, grant["url"])
    assert status == 404  # the link outlives no file
    audit = await api.get("/audit?action=resources.delete", world.admin, expect=200)
    [entry] = audit["results"]
    assert entry["actor_id"] == world.teacher.id
    assert entry["detail"]["resource_id"] == slides["id"]
    assert entry["detail"]["title"] == "Week 1 slides"
    uploads = await api.get("/audit?action=resources.upload_course", world.admin, expect=200)
    assert uploads["results"][0]["detail"]["size_bytes"] == len(PDF)
    assert await asyncio.to_thread(entries, spool) == []


async def _hanging_after(data: bytes, stop: asyncio.Event) -> AsyncIterator[bytes]:
    """`data`, then a body that never ends: only a server that answers before the end of
    the body answers at all."""
    for start in range(0, len(data), 64 * 1024):
        yield data[start:start + 64 * 1024]
    await stop.wait()


async def test_an_upload_past_the_cap_stops_there_and_leaves_nothing(
    api: Api, world: World, media: LocalStorage, spool: Path,
) -> None:
    path = f"/courses/{world.course_id}"
    # Declared too large: refused at once, whatever follows.
    stop = asyncio.Event()
    try:
        out = await asyncio.wait_for(api.post(
            f"{path}/resources", world.teacher, expect=413,
            params={"title": "Big", "filename": "big.pdf"},
            headers={"Content-Length": str(5 * MB)}, data=_hanging_after(PDF, stop)),
            timeout=60)
    finally:
        stop.set()
    assert out["error"]["code"] == "too_large"
    # Streamed without a length: a PDF that passes 1 MB and would go on forever is
    # stopped at the cap.
    stop = asyncio.Event()
    try:
        out = await asyncio.wait_for(upload(
            api, path, world.teacher, _hanging_after(PDF + b"\0" * (MB + 1), stop),
            filename="big.pdf", expect=413), timeout=60)
    finally:
        stop.set()
    assert set(out["error"]) == {"code", "message"} and out["error"]["code"] == "too_large"
    assert await stored_keys(media) == [] and await asyncio.to_thread(entries, spool) == []
    # Exactly the cap is fine.
    body = PDF + b"\0" * (MB - len(PDF))
    ok = await upload(api, path, world.teacher, body, filename="full.pdf")
    assert ok["size_bytes"] == MB


async def test_one_person_has_a_few_uploads_in_progress_at_most(
    api: Api, world: World, media: LocalStorage, spool: Path,
) -> None:
    """Each upload in progress may hold its cap of the node's disk: slow uploads that
    never end cost one account UPLOADS_AT_ONCE of them, not the disk."""
    path = f"/courses/{world.course_id}"
    stop = asyncio.Event()
    slow = [asyncio.create_task(upload(api, path, world.teacher, _hanging_after(PDF, stop),
                                       filename=f"slow{n}.pdf"))
            for n in range(UPLOADS_AT_ONCE)]
    try:
        deadline = time.monotonic() + 30
        while len(await asyncio.to_thread(entries, spool)) < UPLOADS_AT_ONCE:
            assert time.monotonic() < deadline, "the slow uploads never reached the spool"
            await asyncio.sleep(0.05)
        out = await upload(api, path, world.teacher, PDF, filename="one-more.pdf", expect=429)
        assert out["error"]["code"] == "too_many_uploads"
        # Another person is not held up by them.
        await upload(api, path, world.admin, PDF, filename="admin.pdf")
    finally:
        stop.set()
    # Ended, they are stored, and the slots are free again.
    assert all(done["size_bytes"] == len(PDF) for done in await asyncio.gather(*slow))
    await upload(api, path, world.teacher, PDF, filename="after.pdf")
    assert len(await stored_keys(media)) == UPLOADS_AT_ONCE + 2


async def test_only_the_courses_staff_upload_refused_before_any_byte(
    api: Api, world: World, media: LocalStorage,
) -> None:
    path = f"/courses/{world.course_id}"
    for who, status in ((None, 401), (world.student, 403), (world.other_teacher, 403)):
        stop = asyncio.Event()
        try:  # a body that never ends: the answer cannot wait for it
            out = await asyncio.wait_for(upload(api, path, who, _hanging_after(b"%", stop),
                                                filename="a.pdf", expect=status), timeout=60)
        finally:
            stop.set()
        assert set(out["error"]) == {"code", "message"}
    await upload(api, "/sessions/999999", world.teacher, PDF, filename="a.pdf", expect=404)
    assert await stored_keys(media) == []


@pytest.mark.parametrize(("data", "filename", "code"), [
    (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "slides.pdf",
     "unsupported_type"),
    (b"  <html><body onload=alert(1)>", "notes.txt", "unsupported_type"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "a.md",
     "unsupported_type"),
    (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 200, "notes.pdf", "unsupported_type"),
    (b"\x7fELF\x02\x01\x01" + b"\x00" * 200, "exercise.zip", "unsupported_type"),
    (b"just some words", "slides.pdf", "type_mismatch"),
    (PDF, "notes.txt", "type_mismatch"),
    (b"\xff\xfe\x00binary\x00junk", "data.txt", "unsupported_type"),
])
async def test_types_are_read_from_the_bytes(
    api: Api, world: World, media: LocalStorage, data: bytes, filename: str, code: str,
) -> None:
    out = await upload(api, f"/courses/{world.course_id}", world.teacher, data,
                       filename=filename, expect=415)
    assert out == {"error": {"code": code, "message": out["error"]["message"]}}
    assert await stored_keys(media) == []


async def test_what_is_kept_and_named_from_the_bytes(api: Api, world: World) -> None:
    path = f"/courses/{world.course_id}"
    image = await upload(api, path, world.teacher, PNG, filename="diagram")
    assert image["content_type"] == "image/png" and image["filename"] == "diagram.png"
    text = await upload(api, path, world.teacher, "Übung 1: ∀x∈G\n".encode(),
                        filename="übung.txt")
    assert text["content_type"] == "text/plain; charset=utf-8"
    out = await upload(api, path, world.teacher, b"", filename="empty.txt", expect=422)
    assert out["error"]["code"] == "empty_file"
    # Without a title, the file's name is its title; a blank one is refused.
    untitled = await api.post(f"{path}/resources", world.teacher, data=PDF, expect=201,
                              params={"filename": "a.pdf"})
    assert untitled["title"] == "a.pdf"
    out = await upload(api, path, world.teacher, PDF, filename="a.pdf", title="   ",
                       expect=422)
    assert set(out["error"]) >= {"code", "message"}


async def test_hostile_file_names_are_harmless(api: Api, world: World, media: LocalStorage,
                                               tmp_path: Path) -> None:
    path = f"/courses/{world.course_id}"
    names = {
        "../../../../etc/passwd.pdf": "passwd.pdf",
        "..\\..\\windows\\win.ini.pdf": "win.ini.pdf",
        'evil"\r\nX-Injected: 1.pdf': "evil_X-Injected_1.pdf",
        "..pdf": "pdf.pdf",
    }
    for given, kept in names.items():
        row = await upload(api, path, world.teacher, PDF, filename=given)
        assert row["filename"] == kept
        grant = await api.get(f"/resources/{row['id']}/download-url", world.student,
                              expect=200)
        status, headers, _ = await fetch(api, grant["url"])
        assert status == 200 and "X-Injected" not in headers
    # Every file sits under the course's folder in storage, nowhere else.
    everything = await media.list("")
    assert len(everything) == len(names)
    assert all(k.startswith(f"resources/{world.course_id}/") for k in everything)
    assert "etc" not in await asyncio.to_thread(entries, tmp_path)


async def test_a_signed_url_opens_its_own_file_until_it_expires(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    course = await private_course(api, world, world.student)
    first = await upload(api, f"/courses/{course}", world.teacher, PDF, filename="a.pdf")
    second = await upload(api, f"/courses/{course}", world.teacher, PNG, filename="b.png")
    grant = await api.get(f"/resources/{first['id']}/download-url", world.student,
                          expect=200)
    token = grant["url"].rsplit("token=", 1)[1]
    # The same token on another file, a changed token, none at all.
    for path in (f"/resources/{second['id']}/download?token={token}",
                 f"/resources/{first['id']}/download?token={token[:-2]}AA",
                 f"/resources/{first['id']}/download?token=x"):
        response = await api.client.get(path)
        assert response.status == 403, path
        assert (await response.json())["error"]["code"] == "forbidden"
    await api.get(f"/resources/{first['id']}/download", None, expect=422)
    # A playback token for a session numbered like the file opens nothing here.
    playback = api.client.app[STATE].playback_signer.issue(
        first["id"], world.student.id, utcnow() + timedelta(minutes=5))
    await api.get(f"/resources/{first['id']}/download?token={playback}", None, expect=403)
    # Five minutes later the link is stale.
    later = Clock(utcnow() + timedelta(minutes=5, seconds=1))
    monkeypatch.setattr(resources_api, "utcnow", later)
    status, _, _ = await fetch(api, grant["url"])
    assert status == 403
    monkeypatch.undo()
    # A student removed from the course gets no link, and the one in hand stops working.
    fresh = await api.get(f"/resources/{first['id']}/download-url", world.student,
                          expect=200)
    await api.post(f"/courses/{course}/remove-student", world.teacher,
                   json={"student_id": world.student.id}, expect=200)
    await api.get(f"/resources/{first['id']}/download-url", world.student, expect=404)
    status, _, _ = await fetch(api, fresh["url"])
    assert status == 403


async def test_session_files_follow_the_recordings_rules(api: Api, world: World) -> None:
    course = await private_course(api, world, world.student, sequential_release=0.9)
    one = await recorded_session(api, world, course)
    two = await recorded_session(api, world, course)
    await upload(api, f"/sessions/{one}", world.teacher, PDF, filename="one.pdf")
    locked = await upload(api, f"/sessions/{two}", world.teacher, PDF, filename="two.pdf")
    # The second recording opens once the first is watched: so do its files.
    out = await api.get(f"/sessions/{two}/resources", world.student, expect=403)
    assert out["error"]["code"] == "locked_recording"
    listed = await api.get(f"/courses/{course}/resources", world.student, expect=200)
    assert [r["filename"] for r in listed["results"]] == ["one.pdf"]
    await api.get(f"/resources/{locked['id']}/download-url", world.student, expect=404)
    staff = await api.get(f"/courses/{course}/resources", world.teacher, expect=200)
    assert len(staff["results"]) == 2
    # Outside the course's term, none of its files.
    await api.patch(f"/courses/{course}/", world.teacher, expect=200, json={
        "access_closes_at": (utcnow() - timedelta(days=1)).isoformat()})
    out = await api.get(f"/courses/{course}/resources", world.student, expect=403)
    assert out["error"]["code"] == "outside_access_window"


async def test_storage_counts_resources_and_retention_keeps_them(
    api: Api, world: World, media: LocalStorage,
) -> None:
    row = await upload(api, f"/courses/{world.course_id}", world.teacher, PDF,
                       filename="a.pdf")
    usage = await api.get("/storage", world.admin, expect=200)
    assert usage["by_kind"]["resources"] == len(PDF)
    # An expired recording goes; the course's file (far older, were it a recording) stays.
    await api.put(f"/courses/{world.course_id}/retention", world.admin,
                  json={"retention_days": 1}, expect=200)
    sid = await recorded_session(api, world, world.course_id)
    await media.put(f"recordings/{sid}/recording.mp4", b"mp4", "video/mp4")
    report = await enforce_retention(api.settings, api.database, RecordingStore(media),
                                     now=utcnow() + timedelta(days=3650))
    assert report is not None and [d.session_id for d in report.deleted] == [sid]
    assert await media.list("recordings/") == []
    assert len(await stored_keys(media)) == 1
    grant = await api.get(f"/resources/{row['id']}/download-url", world.teacher, expect=200)
    assert (await fetch(api, grant["url"]))[2] == PDF


async def test_export_lists_uploads_and_erasure_keeps_the_files(
    api: Api, world: World,
) -> None:
    uploader = await api.person(world.admin.user.role, "uploader")
    row = await upload(api, f"/courses/{world.course_id}", uploader, PDF, filename="a.pdf")
    export = await api.get("/me/export", uploader, expect=200)
    assert [r["id"] for r in export["resources_uploaded"]] == [row["id"]]
    await api.post(f"/users/{uploader.id}/erase", world.admin, expect=200)
    listed = await api.get(f"/courses/{world.course_id}/resources", world.student,
                           expect=200)
    [kept] = listed["results"]
    assert kept["id"] == row["id"] and kept["uploaded_by"] == uploader.id
    erased = await api.get(f"/users/{uploader.id}/", world.admin, expect=200)
    assert erased["username"] == f"erased-{uploader.id}"
    grant = await api.get(f"/resources/{row['id']}/download-url", world.student, expect=200)
    assert (await fetch(api, grant["url"]))[2] == PDF


async def test_a_deleted_class_leaves_its_files_to_the_course(
    api: Api, world: World, media: LocalStorage,
) -> None:
    start = utcnow() + timedelta(days=2)
    session = await api.post("/sessions/", world.teacher, expect=201, json={
        "course_id": world.course_id, "title": "Cancelled before it began",
        "start_time": start.isoformat(), "end_time": (start + timedelta(hours=1)).isoformat()})
    row = await upload(api, f"/sessions/{session['id']}", world.teacher, PDF,
                       filename="handout.pdf")
    await api.delete(f"/sessions/{session['id']}/", world.teacher, expect=204)
    listed = await api.get(f"/courses/{world.course_id}/resources", world.student,
                           expect=200)
    assert [(r["id"], r["session_id"]) for r in listed["results"]] == [(row["id"], None)]
    assert len(await stored_keys(media)) == 1
