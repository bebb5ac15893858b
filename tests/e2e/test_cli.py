"""The `academia` command as an operator uses it: migrate, user create, serve's first start."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import av
import pytest

from config.settings import Settings
from control.accounts.user_accounts import count_users
from control.db.database import Database
from mediaserver.first_start_credentials import (
    CREDENTIALS_FILE,
    announce_credentials,
    write_private,
)
from mediaserver.process import first_start
from support.hls_validator import validate_playlists

ACADEMIA = [sys.executable, "-m", "mediaserver.cli"]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACADEMIA_")}
    env.update(ACADEMIA_DATA_DIR=str(data_dir), ACADEMIA_PASSWORD_TIME_COST="1",
               ACADEMIA_PASSWORD_MEMORY_COST_KIB="64", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _login(port: int, username: str, password: str) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/auth/login",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def test_migrate_and_user_create(tmp_path: Path) -> None:
    env = _env(tmp_path / "var")
    out = subprocess.run([*ACADEMIA, "migrate"], env=env, capture_output=True, text=True,
                         check=True)
    assert "up to date" in out.stdout
    assert (tmp_path / "var" / "academia.sqlite3").exists()
    made = subprocess.run(
        [*ACADEMIA, "user", "create", "--username", "ada", "--password", "analytical-engine",
         "--role", "teacher"], env=env, capture_output=True, text=True, check=True,
    )
    assert "created teacher 'ada'" in made.stdout
    again = subprocess.run(
        [*ACADEMIA, "user", "create", "--username", "ada", "--password", "analytical-engine",
         "--role", "teacher"], env=env, capture_output=True, text=True,
    )
    assert again.returncode == 1 and "taken" in again.stderr
    bad = subprocess.run([*ACADEMIA, "migrate"], env={**env, "ACADEMIA_HTTP_PORT": "x"},
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "ACADEMIA_HTTP_PORT" in bad.stderr


def test_first_start_creates_admin_and_serves(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path / "var", ACADEMIA_HTTP_PORT=str(port),
               ACADEMIA_RTMP_PORT=str(_free_port()))
    server = subprocess.Popen([*ACADEMIA, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None
        printed = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            printed.append(line)
            if "listening on" in line:
                break
        text = "".join(printed)
        password, key = _credentials(tmp_path / "var", text)
        login = _login(port, "admin", password)
        assert login["user"]["role"] == "admin"  # type: ignore[index]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    written = (tmp_path / "var" / CREDENTIALS_FILE).read_text()
    # A second start finds the admin: no new secrets, printed or written.
    server = subprocess.Popen([*ACADEMIA, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None
        for line in server.stdout:
            assert "First start" not in line and password not in line and key not in line
            if "listening on" in line:
                break
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
    assert (tmp_path / "var" / CREDENTIALS_FILE).read_text() == written


def _credentials(data_dir: Path, printed: str) -> tuple[str, str]:
    """The admin password and demo stream key from the first start's credentials file,
    checked to be private and absent from what the process printed (its stdout is a pipe,
    as in a container: a log)."""
    path = data_dir / CREDENTIALS_FILE
    assert path.exists(), printed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path.absolute()) in printed
    text = path.read_text()
    password = re.search(r"password: (\S+)", text)
    key = re.search(r"Stream Key: (\S+)", text)
    assert password and key, text
    assert password.group(1) not in printed and key.group(1) not in printed, printed
    assert "Stream Key:" in printed  # what to paste where is still said, without the key
    return password.group(1), key.group(1)


def test_first_start_credentials_on_a_terminal_are_printed_not_written(
    tmp_path: Path,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    written = announce_credentials(lambda show: f"password: {show('pw-123')}",
                                   tmp_path / "var", out)
    assert written is None and not (tmp_path / "var").exists()
    assert "password: pw-123   (shown once: keep it)" in out.getvalue()
    # Anywhere else (a pipe, a log file): the file has the secret, the output does not.
    log = io.StringIO()
    written = announce_credentials(lambda show: f"password: {show('pw-123')}",
                                   tmp_path / "var", log)
    assert written == tmp_path / "var" / CREDENTIALS_FILE
    assert written.read_text() == "password: pw-123\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert "pw-123" not in log.getvalue() and str(written.absolute()) in log.getvalue()


def test_credentials_file_is_private_even_if_it_existed_open(tmp_path: Path) -> None:
    path = tmp_path / CREDENTIALS_FILE
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new secrets")
    assert path.read_text() == "new secrets"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A symlink planted in its place is not followed (the secrets never land elsewhere).
    path.unlink()
    elsewhere = tmp_path / "elsewhere"
    path.symlink_to(elsewhere)
    with pytest.raises(OSError):
        write_private(path, "secrets")
    assert not elsewhere.exists()


def test_admin_password_from_environment(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path / "var", ACADEMIA_HTTP_PORT=str(port),
               ACADEMIA_RTMP_PORT=str(_free_port()), ACADEMIA_ADMIN_PASSWORD="chosen-by-operator")
    server = subprocess.Popen([*ACADEMIA, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None
        printed = []
        for line in server.stdout:
            assert "chosen-by-operator" not in line
            printed.append(line)
            if "listening on" in line:
                break
        assert _login(port, "admin", "chosen-by-operator")["token"]
        # The operator's own password is not repeated in the file; the stream key is there.
        path = tmp_path / "var" / CREDENTIALS_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "chosen-by-operator" not in path.read_text()
        key = re.search(r"Stream Key: (\S+)", path.read_text())
        assert key and key.group(1) not in "".join(printed)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


def _call(port: int, method: str, path: str, token: str, body: object = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs Debian's ffmpeg")
def test_obs_settings_from_first_start_work_and_sigterm_finalises_the_class(
    tmp_path: Path,
) -> None:
    """What `make run` prints is enough to go live; SIGTERM mid-class keeps the recording."""
    port, rtmp_port = _free_port(), _free_port()
    env = _env(tmp_path / "var", ACADEMIA_HTTP_PORT=str(port), ACADEMIA_RTMP_PORT=str(rtmp_port),
               ACADEMIA_ADMIN_PASSWORD="chosen-by-operator", ACADEMIA_X264_PRESET="ultrafast")
    server = subprocess.Popen([*ACADEMIA, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    publish: subprocess.Popen[str] | None = None
    try:
        assert server.stdout is not None
        banner = []
        for line in server.stdout:
            banner.append(line)
            if "RTMP ingest" in line:
                break
        text = "".join(banner)
        server_url = re.search(r"Server:\s+(\S+)", text)
        key = re.search(r"Stream Key:\s+(\S+)",
                        (tmp_path / "var" / CREDENTIALS_FILE).read_text())
        course = re.search(r"demo course \(id (\d+)\)", text)
        assert server_url and key and course, text
        assert server_url.group(1) == f"rtmp://127.0.0.1:{rtmp_port}/live"
        # ... and where to watch: the course page, which plays the class.
        assert f"http://127.0.0.1:{port}/learn/{course.group(1)}" in text
        token = str(_login(port, "admin", "chosen-by-operator")["token"])
        # The server URL and key exactly as OBS would take them.
        publish = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=15",
             "-f", "lavfi", "-i", "sine=frequency=440", "-t", "60",
             "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac",
             "-f", "flv", f"{server_url.group(1)}/{key.group(1)}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        status_path = f"/courses/{course.group(1)}/live-status"
        deadline = time.monotonic() + 20
        status = _call(port, "GET", status_path, token)
        while not (status["stream"] and status["stream"]["renditions"]):
            assert time.monotonic() < deadline and publish.poll() is None, status
            time.sleep(0.3)
            status = _call(port, "GET", status_path, token)
        session_id = status["session_id"]
        time.sleep(4)
        server.send_signal(signal.SIGTERM)
        logs, _ = server.communicate(timeout=60)
        assert server.returncode == 0, logs
        assert "shut down cleanly" in logs
        publish.wait(timeout=10)  # the encoder was disconnected
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if publish is not None and publish.poll() is None:
            publish.kill()
            publish.wait()
    # The class ended with its recording, as if the teacher had pressed "end".
    database = tmp_path / "var" / "academia.sqlite3"
    with sqlite3.connect(database) as db:
        row = db.execute("SELECT status, recording_url FROM course_sessions WHERE id = ?",
                         (session_id,)).fetchone()
    assert row[0] == "ended" and row[1].endswith(f"/sessions/{session_id}/recording")
    mp4 = tmp_path / "var" / "media" / "recordings" / str(session_id) / "recording.mp4"
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name:format=duration",
         "-of", "json", str(mp4)], capture_output=True, text=True, check=True,
    )
    probed = json.loads(probe.stdout)
    assert sorted(s["codec_name"] for s in probed["streams"]) == ["aac", "h264"]
    assert float(probed["format"]["duration"]) >= 4
    media = tmp_path / "var" / "media"
    # The live edge lived in memory: nothing is stored outside the recording.
    assert not [p for p in (media / "live").rglob("*") if p.is_file()]
    # The class stays watchable as HLS: a VOD of fMP4 segments, each stored once.
    recording = media / "recordings" / str(session_id)
    playlists = {"master.m3u8": (recording / "master.m3u8").read_text()}
    for uri in _playlist_uris(playlists["master.m3u8"]):
        playlists[uri] = (recording / uri).read_text()
    assert len(playlists) >= 3, playlists  # a video rung and the audio rendition at least
    validate_playlists(playlists)
    for uri, text in playlists.items():
        if uri == "master.m3u8":
            continue
        assert "#EXT-X-ENDLIST" in text and "#EXT-X-MAP:" in text, uri
        segments = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert segments and all(s.endswith(".m4s") for s in segments), uri
        folder = (recording / uri).parent
        init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
        assert init is not None
        first = (folder / init.group(1)).read_bytes() + (folder / segments[0]).read_bytes()
        with av.open(io.BytesIO(first), mode="r") as container:
            assert next(container.decode(container.streams[0])) is not None, uri


def _playlist_uris(master: str) -> list[str]:
    """The media playlists a master names: variant lines and EXT-X-MEDIA URIs."""
    uris = re.findall(r'^#EXT-X-MEDIA:.*URI="([^"]+)"', master, flags=re.MULTILINE)
    uris += [line for line in master.splitlines() if line and not line.startswith("#")]
    return list(dict.fromkeys(uris))


async def test_a_first_start_that_cannot_hand_over_its_secrets_makes_no_admin(
    settings: Settings, tmp_path: Path,
) -> None:
    """Secrets no one ever saw would lock the operator out: if the credentials file cannot
    be written, nothing is created, and the next start tries again."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'first.sqlite3'}")
    await database.create_all()
    try:
        (settings.server.data_dir / CREDENTIALS_FILE).mkdir(parents=True)  # in the way
        with pytest.raises(OSError):
            await first_start(settings, database)
        async with database.transaction(write=False) as db:
            assert await count_users(db) == 0
        (settings.server.data_dir / CREDENTIALS_FILE).rmdir()
        await first_start(settings, database)
        async with database.transaction(write=False) as db:
            assert await count_users(db) == 1
        assert "Stream Key: " in (settings.server.data_dir / CREDENTIALS_FILE).read_text()
    finally:
        await database.close()


async def test_control_processes_starting_together_make_one_admin(
    settings: Settings, database: Database,
) -> None:
    """A cluster's control processes start at once on one empty database: one admin, one
    demo course, and no process fails its start."""
    others = [Database(database.url) for _ in range(2)]
    try:
        await asyncio.gather(first_start(settings, database),
                             *(first_start(settings, other) for other in others))
    finally:
        for other in others:
            await other.close()
    async with database.transaction(write=False) as db:
        assert await count_users(db) == 1
