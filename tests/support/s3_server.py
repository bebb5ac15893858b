"""A real S3 server for tests: moto's standalone server in a subprocess on loopback.

`S3Server` starts it on a free port of 127.0.0.1 and waits until it answers; `stop()` and
`start()` again reuse the SAME port, which is how tests simulate an outage (moto keeps its
data in memory, so a restarted server is empty). Test modules use the `s3_server` fixture
by importing it: `from s3_server import s3_server  # noqa: F401`. Any access key works.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["ACCESS_KEY", "SECRET_KEY", "S3Server", "s3_server"]

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
START_TIMEOUT_S = 20
# Another process may take the port between our probe and moto's bind; try a fresh one.
START_ATTEMPTS = 3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """One moto server process; `endpoint` stays the same across stop/start."""

    def __init__(self, log_dir: Path) -> None:
        self.port = 0
        self._log_dir = log_dir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """"host:port", as the minio SDK wants it."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (on a new free port the first time, else on the same port)."""
        if self.running:
            return
        attempts = 1 if self.port else START_ATTEMPTS
        failure = ""
        for _attempt in range(attempts):
            if not self.port or failure:
                self.port = _free_port()
            failure = self._launch()
            if not failure:
                return
        raise RuntimeError(f"moto S3 server did not start on port {self.port}:\n{failure}")

    def _launch(self) -> str:
        """Run the process and wait for an answer; '' on success, else why it failed."""
        log_path = self._log_dir / f"moto-{self.port}.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://{self.endpoint}/", timeout=1) as reply:
                    if reply.status == 200:
                        return ""
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        return log_path.read_text(errors="replace")[-3000:] or "(no output)"

    def stop(self) -> None:
        """Stop the server; its data is gone. A server already stopped is fine."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A running moto S3 server shared by one test module (use a bucket per test).

    A test that stops it must start it again before it ends (try/finally)."""
    server = S3Server(tmp_path_factory.mktemp("moto"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
