"""A whole Academia Live node in the test's process, and what a viewer does with it.

`LiveStack` starts `MediaNode` (the composition `academia serve` runs) on free ports with
SQLite, after the same migration and first-start setup, so the demo course and its stream
key exist. Helpers publish with real clients and read playlists and segments as a player
would: over HTTP, through the playback URL the API hands out, decoded with PyAV. Segments
are fragmented MP4 (CMAF): a player decodes one after its init segment (EXT-X-MAP), and
`LiveStack.segment_media` fetches both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import av
import pytest

from config.loading import load_settings
from config.settings import Settings
from control.courses.demo_course import create_demo_course
from control.db.database import Database
from control.models import User
from mediaserver.node import MediaNode
from mediaserver.process import prepare_database

ADMIN_PASSWORD = "admin-password-for-tests"
METRICS_TOKEN = "metrics-token-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stack_settings(data_dir: Path, **streaming: Any) -> Settings:
    base = load_settings(environ={})
    http_port = free_port()
    return dataclasses.replace(
        base,
        server=dataclasses.replace(base.server, data_dir=data_dir, http_port=http_port,
                                   metrics_token=METRICS_TOKEN),
        auth=dataclasses.replace(base.auth, password_time_cost=1, password_memory_cost_kib=64,
                                 admin_password=ADMIN_PASSWORD),
        streaming=dataclasses.replace(
            base.streaming,
            **{"rtmp_port": free_port(), "x264_preset": "ultrafast",
               "reconnect_grace_seconds": 3, **streaming},
        ),
    )


@dataclass
class Segment:
    duration: float
    uri: str
    discontinuity: bool
    init: str | None = None  # the EXT-X-MAP in force: the init an fMP4 segment needs
    gap: bool = False  # EXT-X-GAP: listed, but not there to fetch


def media_segments(playlist: str) -> list[Segment]:
    """The complete segments of a media playlist (LL-HLS parts and hints left out)."""
    segments: list[Segment] = []
    duration, discontinuity, gap = 0.0, False, False
    init: str | None = None
    for line in playlist.splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:"):].split(",")[0])
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line == "#EXT-X-GAP":
            gap = True
        elif line.startswith("#EXT-X-MAP:"):
            found = re.search(r'URI="([^"]*)"', line)
            init = found.group(1) if found else None
        elif line and not line.startswith("#"):
            segments.append(Segment(duration, line, discontinuity, init, gap))
            discontinuity, gap = False, False
    return segments


def media_playlist_uris(master: str) -> list[str]:
    """Every media playlist a master playlist names: variants and EXT-X-MEDIA renditions
    (the audio group), each once, in order."""
    uris = re.findall(r'^#EXT-X-MEDIA:.*?URI="([^"]+)"', master, flags=re.MULTILINE)
    uris += [uri for _, uri in variants(master)]
    return list(dict.fromkeys(uris))


def variants(master: str) -> list[tuple[dict[str, str], str]]:
    """(attributes, uri) of each #EXT-X-STREAM-INF."""
    found = []
    lines = master.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes = dict(
                (k, v.strip('"'))
                for k, v in re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])
            )
            found.append((attributes, lines[index + 1]))
    return found


def decode(data: bytes, *, fmt: str | None = None) -> dict[str, Any]:
    """What a player finds in a segment or file: streams, frame size, duration."""
    with av.open(io.BytesIO(data), mode="r", format=fmt) as container:
        info: dict[str, Any] = {
            "video": [s.codec_context.name for s in container.streams.video],
            "audio": [s.codec_context.name for s in container.streams.audio],
            "duration": (container.duration or 0) / 1_000_000,
        }
        frames = 0
        for frame in container.decode(video=0) if container.streams.video else []:
            info.setdefault("size", (frame.width, frame.height))
            info.setdefault("first_keyframe", frame.key_frame)
            frames += 1
        info["frames"] = frames
    return info


async def wait_for(check: Callable[[], Any], *, within: float, what: str) -> Any:
    """Poll `check` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.2)


class LiveStack:
    """A started node, an admin token and the demo course's stream key."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = Database(settings.database_url)
        self.node: MediaNode | None = None
        self.http: aiohttp.ClientSession | None = None
        self.admin_token = ""
        self.course_id = 0
        self.key = ""

    async def start(self) -> None:
        await prepare_database(self.settings, self.database)
        async with self.database.transaction(write=True) as db:
            from control.accounts.passwords import Passwords
            from control.accounts.user_accounts import create_user
            from control.models import Role

            admin: User = await create_user(
                db, Passwords(self.settings.auth), username="admin",
                password=ADMIN_PASSWORD, role=Role.ADMIN,
            )
            course, self.key = await create_demo_course(db, admin, capacity=100)
            self.course_id = course.id
        self.node = MediaNode(self.settings, self.database)
        await self.node.start()
        self.http = aiohttp.ClientSession(f"http://127.0.0.1:{self.settings.server.http_port}")
        login = await self.json("POST", "/auth/login",
                                {"username": "admin", "password": ADMIN_PASSWORD}, auth=False)
        self.admin_token = login["token"]

    async def __aenter__(self) -> LiveStack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.node is not None:
            await self.node.close()
        if self.http is not None:
            await self.http.close()
        await self.database.close()

    @property
    def rtmp_url(self) -> str:
        return self.rtmp_url_for(self.key)

    def rtmp_url_for(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.settings.streaming.rtmp_port}/live/{key}"

    async def add_course(self, title: str) -> tuple[int, str]:
        """Another public course with a stream key: (course id, key)."""
        category = await self.json("POST", "/categories/", {"name": f"{title} category"},
                                   expect=201)
        teacher = await self.json("POST", "/users/", {
            "username": f"teacher{category['id']}", "password": "teacher-password",
            "role": "teacher"}, expect=201)
        course = await self.json("POST", "/courses/", {
            "title": title, "category_id": category["id"], "teacher_id": teacher["id"],
            "access_level": "public"}, expect=201)
        key = await self.json("POST", f"/courses/{course['id']}/stream-keys", {}, expect=201)
        return int(course["id"]), str(key["key"])

    async def json(self, method: str, path: str, body: Any = None, *, auth: bool = True,
                   expect: int = 200) -> Any:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self.admin_token}"} if auth else {}
        async with self.http.request(method, path, json=body, headers=headers) as response:
            text = await response.text()
            assert response.status == expect, f"{method} {path}: {response.status} {text}"
            return await response.json() if text else None

    async def get(self, url: str) -> tuple[int, bytes, Mapping[str, str]]:
        """GET a playback URL (absolute, as the API gives it) as a signed-out browser."""
        assert self.http is not None
        async with self.http.get(urlsplit(url).path) as response:
            return response.status, await response.read(), response.headers

    async def ladder_ready(self, master_url: str, *, within: float) -> None:
        """Wait until every video rung under `master_url` lists two segments (a player
        starting then can measure and switch)."""

        async def ready() -> bool:
            for rung in ("hd", "sd", "mobile"):
                _, body, _ = await self.get(master_url.replace("master.m3u8",
                                                               f"{rung}/index.m3u8"))
                if len(media_segments(body.decode(errors="replace"))) < 2:
                    return False
            return True

        await wait_for(ready, within=within, what="two segments in each rung")

    async def segment_media(self, playlist_url: str, segment: Segment) -> bytes:
        """One segment as a player decodes it: its init segment (EXT-X-MAP), then the
        segment, both fetched relative to the media playlist's URL."""
        base = playlist_url.rsplit("/", 1)[0]
        status, data, _ = await self.get(f"{base}/{segment.uri}")
        assert status == 200, (status, segment.uri)
        if segment.init is None:
            return data  # a self-contained segment (MPEG-TS of an older recording)
        status, init, _ = await self.get(f"{base}/{segment.init}")
        assert status == 200, (status, segment.init)
        return init + data

    async def metrics(self) -> str:
        """/metrics as Prometheus scrapes it: with the bearer token."""
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self.settings.server.metrics_token}"}
        async with self.http.get("/metrics", headers=headers) as response:
            assert response.status == 200, response.status
            return await response.text()

    async def live_status(self, course_id: int | None = None) -> dict[str, Any]:
        status: dict[str, Any] = await self.json(
            "GET", f"/courses/{course_id or self.course_id}/live-status")
        return status

    async def live_session_id(self, within: float = 20.0, *, course_id: int | None = None) -> int:
        async def live() -> int | None:
            status = await self.live_status(course_id)
            return status["session_id"] if status["is_live"] else None

        session_id: int = await wait_for(live, within=within, what="the course to go live")
        return session_id

    async def playback(self, session_id: int) -> dict[str, Any]:
        # The demo course is public: a signed-out viewer may watch.
        answer: dict[str, Any] = await self.json(
            "GET", f"/sessions/{session_id}/playback", auth=False)
        return answer

    async def recording_ready(self, session_id: int, within: float = 40.0) -> dict[str, Any]:
        async def ready() -> dict[str, Any] | None:
            session = await self.json("GET", f"/sessions/{session_id}/")
            return session if session["recording_url"] else None

        session: dict[str, Any] = await wait_for(
            ready, within=within, what=f"session {session_id}'s recording")
        return session


async def publish_ffmpeg(url: str, *, seconds: float, size: str = "1280x720", fps: int = 15,
                         gop_seconds: float = 8, audio: bool = True) -> asyncio.subprocess.Process:
    """An OBS-like publish: x264 with a long GOP and AAC, at real time (-re)."""
    args = ["-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast",
             "-g", str(int(gop_seconds * fps)), "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k"]
    args += ["-f", "flv", url]
    return await asyncio.create_subprocess_exec(
        "ffmpeg", *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )


async def finished(process: asyncio.subprocess.Process, within: float) -> tuple[int, str]:
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), within)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr.decode(errors="replace") if stderr else ""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LiveStack]:
    """A whole node with the demo class, for one test (tests/conftest.py offers it to
    every test; a module wanting other settings defines its own)."""
    from control.web.pages import STATIC_DIR

    assert (STATIC_DIR / "vendor" / "hls.min.js").exists(), "run `make assets` first"
    async with LiveStack(stack_settings(tmp_path / "var")) as live:
        yield live
