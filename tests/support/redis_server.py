"""A throwaway Redis server for the test suite (Debian's ``redis-server`` package).

The ``redis_server`` fixture (tests/conftest.py offers it to every test) gives a test a
server of its own, which the test may kill. ``start_redis`` runs ``redis-server`` in the
foreground on a free port of 127.0.0.1 (or on a given one: a Redis started again where the
clients expect it), with persistence off (``--save '' --appendonly no``) and its working
folder in a given temporary folder, and waits until it answers PING; ``stop_redis`` ends
that process (and only it), ``kill_redis`` ends it the hard way (SIGKILL: an outage, not a
shutdown).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_ATTEMPTS = 3
START_TIMEOUT_S = 10.0


@dataclass
class RedisServer:
    url: str  # redis://127.0.0.1:PORT/0
    port: int
    process: subprocess.Popen[bytes]
    log_file: Path


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(base_dir: Path, port: int | None = None) -> RedisServer:
    base_dir.mkdir(parents=True, exist_ok=True)
    log_file = base_dir / "redis.log"
    failure = ""
    wanted = port
    for _attempt in range(START_ATTEMPTS):
        # A free port may be taken by another process first: then try a new one (unless
        # this port was asked for: then try it again).
        port = wanted or _free_port()
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(base_dir),
                 "--daemonize", "no", "--protected-mode", "yes"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=base_dir,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if _answers_ping(port):
                return RedisServer(f"redis://127.0.0.1:{port}/0", port, process, log_file)
            time.sleep(0.05)
        failure = log_file.read_text(errors="replace")[-2000:]
        _end(process)
    raise RuntimeError(f"redis-server did not start:\n{failure}")


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_redis(server: RedisServer) -> None:
    _end(server.process)


def kill_redis(server: RedisServer) -> None:
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, stopped at its end (a test may kill it)."""
    if not redis_available():
        pytest.fail("redis-server is missing: run `make test`, which installs it")
    server = start_redis(tmp_path / "redis")
    try:
        yield server
    finally:
        stop_redis(server)
