"""Debian's nginx, started for a test with the configuration `academia edge-config` makes.

`NginxEdge` writes the configuration under a temporary prefix, runs nginx in the
foreground (`daemon off`, so the test owns the process and its exit), waits until the
listen port accepts, and stops that one process at the end. Started by root (as in a
container), its workers stay root: pytest's temporary folders are private to their owner.
`nginx_binary` finds the program where Debian puts it (/usr/sbin, often outside a user's
PATH); tests skip when it is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from pathlib import Path

__all__ = ["NginxEdge", "nginx_binary"]

START_SECONDS = 10.0
# In the foreground, so the test owns the process. Run by root, nginx's workers would be
# `nobody`, who cannot enter pytest's private temporary folders: they stay root here.
_GLOBALS = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
STOP_SECONDS = 5.0


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found is not None:
        return found
    debian = Path("/usr/sbin/nginx")
    return str(debian) if debian.exists() else None


class NginxEdge:
    """One nginx master process running `config` under `prefix`, listening on `port`."""

    def __init__(self, config: str, prefix: Path, port: int) -> None:
        binary = nginx_binary()
        assert binary is not None, "nginx is not installed"
        self.binary = binary
        self.prefix = prefix
        self.port = port
        self.config_file = prefix / "nginx.conf"
        self.config = config
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The master process's id while it runs (a benchmark measures its tree's CPU)."""
        return self._process.pid if self._process is not None else None

    def access_log(self) -> str:
        path = self.prefix / "access.log"
        return path.read_text() if path.exists() else ""

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text() if path.exists() else ""

    async def check(self) -> tuple[int, str]:
        """`nginx -t` on the configuration: (exit status, what it said)."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config)
        process = await asyncio.create_subprocess_exec(
            self.binary, "-t", "-c", str(self.config_file), "-p", f"{self.prefix}/",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(process.communicate(), START_SECONDS)
        assert process.returncode is not None
        return process.returncode, out.decode(errors="replace")

    async def start(self) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config)
        self._process = await asyncio.create_subprocess_exec(
            self.binary, "-c", str(self.config_file), "-p", f"{self.prefix}/",
            "-g", _GLOBALS, stdin=asyncio.subprocess.DEVNULL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        while True:
            if self._process.returncode is not None:
                raise AssertionError(f"nginx exited {self._process.returncode}:\n"
                                     f"{self.error_log()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if loop.time() > deadline:
                    await self.stop()
                    raise AssertionError(f"nginx never listened:\n{self.error_log()}"
                                         ) from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def stop(self) -> None:
        """Ends the nginx this object started (its master; the workers follow it)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
