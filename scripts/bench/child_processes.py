"""The servers a benchmark starts, and stopping every one of them, whatever happens.

Each child gets its own session (process group), so Ctrl-C in the terminal reaches the
benchmark alone, which then stops its children itself, workers included (gunicorn's),
by their group id; nothing else on the machine is touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Children:
    """Starts servers in their own process groups and stops them all at the end."""

    def __init__(self) -> None:
        self._running: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(
        self,
        name: str,
        argv: Sequence[str | Path],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        self._running.append((name, proc, log))
        return proc

    def wait_http(self, proc: subprocess.Popen[bytes], url: str, timeout_s: float = 60) -> None:
        """Until url answers (any HTTP status); fails early if the server died."""
        name, log = next((n, lg) for n, p, lg in self._running if p is proc)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}:\n{log_tail(log)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer on {url} in {timeout_s}s:\n{log_tail(log)}")

    def stop(self, proc: subprocess.Popen[bytes], grace_s: float = 10) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        # Workers that outlived their master (the group id is the master's pid).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._running = [r for r in self._running if r[1] is not proc]

    def stop_all(self) -> None:
        for _name, proc, _log in reversed(list(self._running)):
            self.stop(proc)
