"""The `academia` command as an operator uses it: migrate, user create, serve's first start."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

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
        found = re.search(r"password: (\S+)\s+\(shown once", text)
        assert found, text
        login = _login(port, "admin", found.group(1))
        assert login["user"]["role"] == "admin"  # type: ignore[index]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    # A second start finds the admin and prints no new password.
    server = subprocess.Popen([*ACADEMIA, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None
        for line in server.stdout:
            assert "shown once" not in line
            if "listening on" in line:
                break
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


def test_admin_password_from_environment(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path / "var", ACADEMIA_HTTP_PORT=str(port),
               ACADEMIA_RTMP_PORT=str(_free_port()), ACADEMIA_ADMIN_PASSWORD="chosen-by-operator")
    server = subprocess.Popen([*ACADEMIA, "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert server.stdout is not None
        for line in server.stdout:
            assert "chosen-by-operator" not in line
            if "listening on" in line:
                break
        assert _login(port, "admin", "chosen-by-operator")["token"]
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
        key = re.search(r"Stream Key:\s+(\S+)", text)
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
    assert not list((tmp_path / "var" / "media" / "live").rglob("*.ts"))
