"""A class's recording survives its process dying: `academia serve` SIGKILLed mid-class or
mid-finalisation (a crash, `docker compose stop` running out of time), then started again.

Real processes, as an operator runs them: `academia serve` in its own process group
(killed whole, as a container is), an ffmpeg encoder publishing over RTMP, storage a local
folder or S3 (a moto server). Passthrough mode and 1 s segments keep it cheap.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from support.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, s3_server  # noqa: F401
from transcode.hls_playlist import MediaPlaylist, parse_media_playlist
from transcode.storage.backend import Storage
from transcode.storage.local import LocalStorage
from transcode.storage.s3 import S3Storage

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")

ACADEMIA = [sys.executable, "-m", "mediaserver.cli"]
ADMIN_PASSWORD = "restart-test-admin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(condition: Callable[[], bool], what: str, within: float = 90) -> None:
    """A behaviour check with a generous bound (a busy machine is slow), not a timing one."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.3)


class Store:
    """The node's storage as the test reads it (the same backend the node writes to)."""

    def __init__(self, make: Callable[[], Storage]) -> None:
        self._make = make

    def _run(self, action: Callable[[Storage], Any]) -> Any:
        async def go() -> Any:
            storage = self._make()
            try:
                return await action(storage)
            finally:
                await storage.close()
        return asyncio.run(go())

    def keys(self, prefix: str) -> list[str]:
        result: list[str] = self._run(lambda s: s.list(prefix))
        return result

    def get(self, key: str) -> bytes | None:
        result: bytes | None = self._run(lambda s: s.get(key))
        return result

    def segments(self, session_id: int) -> list[str]:
        prefix = f"recordings/{session_id}/source/"
        return [k for k in self.keys(prefix) if k.endswith(".m4s")]


class Node:
    """`academia serve` on a data dir; started, SIGKILLed or stopped (SIGTERM)."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = int(env["ACADEMIA_HTTP_PORT"])
        self.rtmp_port = int(env["ACADEMIA_RTMP_PORT"])
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, *, path_prefix: Path | None = None) -> None:
        env = dict(self.env)
        if path_prefix is not None:
            env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
        self.runs += 1
        log = (self.data_dir.parent / f"serve-{self.runs}.log").open("wb")
        self.process = subprocess.Popen([*ACADEMIA, "serve"], env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _wait_for(self._answers, "the node answers HTTP")

    def logs(self) -> str:
        return "".join((self.data_dir.parent / f"serve-{n}.log").read_text(errors="replace")
                       for n in range(1, self.runs + 1))

    def _answers(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.logs()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/categories/",
                                        timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL to the whole process group: the node and its ffmpeg children."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=180) == 0, self.logs()

    def call(self, method: str, path: str, token: str | None = None, body: object = None
             ) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method, headers=headers,
            data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def session(self, session_id: int) -> tuple[str, str | None]:
        with sqlite3.connect(self.data_dir / "academia.sqlite3") as db:
            row = db.execute("SELECT status, recording_url FROM course_sessions WHERE id = ?",
                             (session_id,)).fetchone()
        return str(row[0]), row[1]


class Encoder:
    """ffmpeg publishing a test picture and tone to the node, as OBS would."""

    def __init__(self, node: Node, key: str, frequency: int) -> None:
        self.process = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
             "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=15",
             "-f", "lavfi", "-i", f"sine=frequency={frequency}", "-t", "120",
             "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-c:a", "aac",
             "-f", "flv", f"rtmp://127.0.0.1:{node.rtmp_port}/live/{key}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture(params=["local", "s3"])
def node_and_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Node, Store]]:
    data_dir = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACADEMIA_")}
    env.update(ACADEMIA_DATA_DIR=str(data_dir), ACADEMIA_PASSWORD_TIME_COST="1",
               ACADEMIA_PASSWORD_MEMORY_COST_KIB="64", ACADEMIA_ADMIN_PASSWORD=ADMIN_PASSWORD,
               ACADEMIA_HTTP_PORT=str(_free_port()), ACADEMIA_RTMP_PORT=str(_free_port()),
               ACADEMIA_TRANSCODE_MODE="passthrough", ACADEMIA_SEGMENT_SECONDS="1",
               ACADEMIA_RECONNECT_GRACE_SECONDS="60")
    if request.param == "local":
        store = Store(lambda: LocalStorage(data_dir / "media"))
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        bucket = f"restart-{request.node.name.split('[')[0][-20:].replace('_', '-')}"
        env.update(ACADEMIA_STORAGE_BACKEND="s3", ACADEMIA_S3_ENDPOINT=server.endpoint,
                   ACADEMIA_S3_ACCESS_KEY=ACCESS_KEY, ACADEMIA_S3_SECRET_KEY=SECRET_KEY,
                   ACADEMIA_S3_BUCKET=bucket)
        store = Store(lambda: S3Storage(server.endpoint, ACCESS_KEY, SECRET_KEY, bucket))
    node = Node(data_dir, env)
    try:
        yield node, store
    finally:
        if node.process is not None and node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait()


def _go_live(node: Node, store: Store, key: str | None = None, *, frequency: int = 440,
             segments: int = 4, after: int = 0) -> tuple[Encoder, int, str]:
    """Publish until `segments` more source segments (beyond `after`) are stored."""
    token = str(node.call("POST", "/auth/login", body={
        "username": "admin", "password": ADMIN_PASSWORD})["token"])
    courses = node.call("GET", "/courses/", token)
    course_id = int((courses["results"] if isinstance(courses, dict) else courses)[0]["id"])
    if key is None:
        key = str(node.call("POST", f"/courses/{course_id}/stream-keys", token,
                            {"label": "restart test"})["key"])
    encoder = Encoder(node, key, frequency)
    status: dict[str, Any] = {}

    def live() -> bool:
        status.update(node.call("GET", f"/courses/{course_id}/live-status", token))
        assert encoder.process.poll() is None, node.logs()
        return bool(status.get("session_id"))

    _wait_for(live, "the class is live")
    session_id = int(status["session_id"])
    _wait_for(lambda: len(store.segments(session_id)) >= after + segments,
              f"{segments} more segments stored")
    return encoder, session_id, key


def _recording(store: Store, session_id: int, folder: Path) -> MediaPlaylist:
    """The stored source recording, copied to `folder` as a player would fetch it: the
    playlist, its segments and the init segments its EXT-X-MAPs name."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = f"recordings/{session_id}/source/"
    text = store.get(prefix + "index.m3u8")
    assert text is not None
    playlist = parse_media_playlist(text.decode())
    (folder / "index.m3u8").write_bytes(text)
    for segment in playlist.segments:
        for uri in (segment.init_uri, segment.uri):
            if uri is not None and not (folder / uri).exists():
                data = store.get(prefix + uri)
                assert data is not None, f"the playlist names a missing {uri}"
                (folder / uri).write_bytes(data)
    return playlist


def _played_frames(folder: Path, playlist: MediaPlaylist) -> int:
    """The video frames a player decodes: each run's init, then that run's segments."""
    frames = 0
    runs: list[list[str]] = []
    for segment in playlist.segments:
        if segment.init_uri is not None:
            runs.append([segment.init_uri])
        assert runs, "the first segment names no init (EXT-X-MAP)"
        runs[-1].append(segment.uri)
    for run in runs:
        frames += _decoded_frames(b"".join((folder / uri).read_bytes() for uri in run))
    return frames


def _decoded_frames(media: bytes | Path) -> int:
    source = io.BytesIO(media) if isinstance(media, bytes) else str(media)
    with av.open(source, mode="r") as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_crash_mid_class_loses_and_overwrites_no_segment(
    node_and_store: tuple[Node, Store], tmp_path: Path
) -> None:
    """SIGKILL mid-class, restart, the encoder comes back into the same live session: the
    new run numbers on after the first (no stored segment is overwritten), and the
    recording lists every segment of both runs in order, with a discontinuity, and plays."""
    node, store = node_and_store
    node.start()
    encoder, session_id, key = _go_live(node, store)
    node.kill()
    encoder.stop()
    first = {k: hashlib.sha256(store.get(k) or b"").hexdigest() for k in store.segments(session_id)}
    assert node.session(session_id)[0] == "live"  # nobody ended it

    node.start()
    encoder, again, _ = _go_live(node, store, key, frequency=660, after=len(first))
    assert again == session_id  # the same class goes on
    encoder.stop()
    node.stop()  # ends the class and finalises its recording

    for stored, digest in first.items():
        assert hashlib.sha256(store.get(stored) or b"").hexdigest() == digest, (
            f"{stored} was overwritten by the second run")
    playlist = _recording(store, session_id, tmp_path / "played")
    uris = [s.uri for s in playlist.segments]
    assert uris == [f"{n:06d}.m4s" for n in range(len(uris))]
    assert len(uris) >= len(first) + 4
    assert set(first) <= {f"recordings/{session_id}/source/{u}" for u in uris}
    # The second run starts with a discontinuity, right after what the first one stored.
    assert [n for n, s in enumerate(playlist.segments) if s.discontinuity] == [len(first)]
    # ... and its own init segment (EXT-X-MAP), named after that segment.
    assert {n: s.init_uri for n, s in enumerate(playlist.segments) if s.init_uri} == {
        0: "init_000000.mp4", len(first): f"init_{len(first):06d}.mp4"}
    assert playlist.ended
    assert _played_frames(tmp_path / "played", playlist) >= 15 * len(uris) * 0.8
    status, url = node.session(session_id)
    assert status == "ended" and url and url.endswith(f"/sessions/{session_id}/recording")


SLOW_EXPORT = """#!/bin/sh
# ffmpeg, except that the recording's MP4 export (the concat demuxer) never ends.
for arg in "$@"; do
  if [ "$arg" = concat ]; then
    touch "{marker}"
    exec sleep 600
  fi
done
exec {ffmpeg} "$@"
"""


def test_a_finalisation_cut_short_is_completed_on_the_next_start(
    node_and_store: tuple[Node, Store], tmp_path: Path
) -> None:
    """`docker compose stop` gives a few seconds, finalising takes longer: the process is
    SIGKILLed while making the MP4. The next start completes the recording: the MP4, VOD
    playlists, and the session's recording_url."""
    node, store = node_and_store
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    marker = tmp_path / "export-started"
    real = shutil.which("ffmpeg")
    assert real is not None
    (slow / "ffmpeg").write_text(SLOW_EXPORT.format(marker=marker, ffmpeg=real))
    (slow / "ffmpeg").chmod(0o755)
    node.start(path_prefix=slow)
    encoder, session_id, _ = _go_live(node, store)
    assert node.process is not None
    node.process.send_signal(signal.SIGTERM)  # the stop begins: the class ends, finalising
    _wait_for(marker.exists, "the MP4 export started")
    node.kill()  # ... and the grace period ran out
    encoder.stop()
    status, url = node.session(session_id)
    assert status == "ended" and not url  # ended without its recording
    assert store.get(f"recordings/{session_id}/recording.mp4") is None

    node.start()
    _wait_for(lambda: bool(node.session(session_id)[1]), "the recording is completed")
    status, url = node.session(session_id)
    assert status == "ended" and url and url.endswith(f"/sessions/{session_id}/recording")
    mp4 = store.get(f"recordings/{session_id}/recording.mp4")
    assert mp4 is not None
    (tmp_path / "recording.mp4").write_bytes(mp4)
    assert _decoded_frames(tmp_path / "recording.mp4") >= 15 * 3
    assert store.get(f"recordings/{session_id}/poster.jpg")
    playlist = _recording(store, session_id, tmp_path / "played")
    assert playlist.ended and len(playlist.segments) >= 4
    assert _played_frames(tmp_path / "played", playlist) >= 15 * len(playlist.segments) * 0.8
    assert store.keys(f"live/{session_id}/") == []
    node.stop()
    assert not (node.data_dir / "work" / f"session-{session_id}").exists()
