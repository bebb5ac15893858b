"""The `academia` command as an operator uses it: migrate, user create, serve's first start."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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
    env = _env(tmp_path / "var", ACADEMIA_HTTP_PORT=str(port))
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
               ACADEMIA_ADMIN_PASSWORD="chosen-by-operator")
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
