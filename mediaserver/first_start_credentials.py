"""Handing the first start's secrets (the admin password, the demo stream key) to the
operator without leaving them in logs.

On a terminal they are printed, once. Anywhere else stdout is usually a log (a container's,
a service manager's) that keeps them for anyone who reads logs later, so they are written to
a file only the server's account may read, `<data_dir>/first-start-credentials.txt`, and the
log says where.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

__all__ = ["CREDENTIALS_FILE", "Notice", "announce_credentials", "write_private"]

CREDENTIALS_FILE = "first-start-credentials.txt"

# The first start's message, given how each secret is to appear in it.
Notice = Callable[[Callable[[str], str]], str]


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by this account only (0600), even if
    the file existed with a wider mode; never through a symlink planted at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def announce_credentials(notice: Notice, data_dir: Path, out: TextIO) -> Path | None:
    """Print `notice` with its secrets on a terminal; elsewhere write it whole to the
    credentials file and print it with each secret replaced by where to find it.
    Returns the file written, if any."""
    if out.isatty():
        out.write(notice(lambda secret: f"{secret}   (shown once: keep it)") + "\n")
        out.flush()
        return None
    path = data_dir / CREDENTIALS_FILE
    write_private(path, notice(lambda secret: secret) + "\n")
    shown = path.absolute()
    out.write(notice(lambda _secret: f"(in {shown})") + "\n")
    out.write(f"The secrets above are in {shown} (mode 0600): keep them, then delete it.\n")
    out.flush()
    return path
