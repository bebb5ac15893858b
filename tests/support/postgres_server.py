"""A throwaway PostgreSQL server for the test suite.

Uses the server binaries of Debian's ``postgresql`` package (``/usr/lib/postgresql/<N>/bin``,
newest version found at runtime). ``start_postgres`` creates a fresh cluster in a folder,
starts it on a free TCP port of 127.0.0.1 with durability switched off for speed, and creates
the ``academia_test`` database; ``stop_postgres`` kills it.

initdb and postgres refuse to run as root, so when the tests run as root (as in CI) every server
binary runs as the ``postgres`` system user through ``runuser``; otherwise as the current user.
"""

from __future__ import annotations

import getpass
import grp
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
DATABASE = "academia_test"
# Another process may grab the port between our probe and the server's bind; retry on a new one.
START_ATTEMPTS = 3
START_TIMEOUT_S = 30

# Durability is pointless for a cluster that is deleted after the run, and costs time.
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


@dataclass(frozen=True)
class PostgresServer:
    url: str  # SQLAlchemy async URL: postgresql+asyncpg://USER@127.0.0.1:PORT/DBNAME
    dsn: str  # plain asyncpg DSN: postgresql://USER@127.0.0.1:PORT/DBNAME
    data_dir: Path


def _bin_dir() -> Path | None:
    """The bin folder of the newest installed PostgreSQL version, if any."""

    def version(path: Path) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in path.name.split("."))
        except ValueError:
            return (-1,)

    candidates = [p for p in PG_ROOT.glob("*/bin") if version(p.parent) != (-1,)]
    if not candidates:
        return None
    return max(candidates, key=lambda p: version(p.parent))


def _as_root() -> bool:
    return os.geteuid() == 0


def _db_user() -> str:
    # The cluster's superuser is named after the OS user that runs initdb.
    return SERVICE_USER if _as_root() else getpass.getuser()


def postgres_available() -> bool:
    """True when the PostgreSQL server binaries (and, as root, the means to drop root) exist."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        return False
    if not all((bin_dir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
        return False
    if _as_root():
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            return False
        return shutil.which("runuser") is not None
    return True


def _run(
    args: Sequence[str | Path], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = [str(a) for a in args]
    if _as_root():
        cmd = ["runuser", "-u", SERVICE_USER, "--", *cmd]
    # cwd: the service user may not be allowed into the caller's working directory.
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _can_traverse(path: Path, uid: int, gids: set[int]) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _hand_over(base_dir: Path) -> None:
    """As root, let the service user own base_dir and reach it.

    pytest makes its temporary folders 0700 for root, which locks the service user out;
    folders under the system temp dir get search-only permission for others (pytest resets
    its own on the next run). Elsewhere we refuse rather than loosen arbitrary folders.
    """
    entry = pwd.getpwnam(SERVICE_USER)
    gids = set(os.getgrouplist(SERVICE_USER, entry.pw_gid))
    os.chown(base_dir, entry.pw_uid, entry.pw_gid)
    tmp_root = Path(tempfile.gettempdir()).resolve()
    for parent in reversed(base_dir.parents):
        if _can_traverse(parent, entry.pw_uid, gids):
            continue
        if parent != tmp_root and tmp_root not in parent.parents:
            group = grp.getgrgid(entry.pw_gid).gr_name
            raise RuntimeError(
                f"user {SERVICE_USER!r} (group {group!r}) cannot enter {parent}; "
                f"put the test folder (pytest --basetemp) somewhere it can reach"
            )
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(log_file: Path, lines: int = 30) -> str:
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


def start_postgres(base_dir: Path) -> PostgresServer:
    """Create a cluster in base_dir/"pgdata", start it and create the test database."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise RuntimeError(f"no PostgreSQL server binaries under {PG_ROOT}")
    base_dir = base_dir.resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    if _as_root():
        _hand_over(base_dir)
    data_dir = base_dir / "pgdata"
    socket_dir = base_dir / "sockets"
    log_file = base_dir / "postgres.log"
    user = _db_user()

    # Created by the service user so that it owns them.
    setup = _run(["mkdir", "-p", socket_dir], cwd=base_dir)
    if setup.returncode != 0:
        raise RuntimeError(f"cannot create {socket_dir}:\n{setup.stderr}")
    init = _run(
        [
            bin_dir / "initdb",
            f"--pgdata={data_dir}",
            f"--username={user}",
            "--auth=trust",
            "--encoding=UTF8",
            # C locale: independent of the machine's locales, and deterministic sorting.
            "--locale=C",
            "--no-sync",
        ],
        cwd=base_dir,
    )
    if init.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")

    # The conf file belongs to the service user; appending keeps its ownership.
    with (data_dir / "postgresql.conf").open("a") as conf:
        conf.write("\n# academia test settings\n")
        conf.write("listen_addresses = '127.0.0.1'\n")
        conf.write(f"unix_socket_directories = '{socket_dir}'\n")
        for name, value in FAST_SETTINGS.items():
            conf.write(f"{name} = {value}\n")

    failure = ""
    for _attempt in range(START_ATTEMPTS):
        port = _free_port()
        start = _run(
            [
                bin_dir / "pg_ctl",
                "start",
                "--wait",
                f"--timeout={START_TIMEOUT_S}",
                f"--pgdata={data_dir}",
                f"--log={log_file}",
                f"--options=-p {port}",
            ],
            cwd=base_dir,
            timeout=START_TIMEOUT_S + 10,
        )
        if start.returncode == 0:
            break
        failure = f"{start.stdout}\n{start.stderr}\n--- server log ---\n{_log_tail(log_file)}"
    else:
        raise RuntimeError(f"PostgreSQL did not start in {data_dir}:\n{failure}")

    created = _run(
        [bin_dir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", user, DATABASE],
        cwd=base_dir,
    )
    dsn = f"postgresql://{user}@127.0.0.1:{port}/{DATABASE}"
    server = PostgresServer(
        url=dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        dsn=dsn,
        data_dir=data_dir,
    )
    if created.returncode != 0:
        stop_postgres(server)
        raise RuntimeError(
            f"createdb {DATABASE} failed:\n{created.stderr}\n"
            f"--- server log ---\n{_log_tail(log_file)}"
        )
    return server


def stop_postgres(server: PostgresServer) -> None:
    """Kill the server at once (its data is disposable); a server already gone is fine."""
    bin_dir = _bin_dir()
    if bin_dir is None or not server.data_dir.is_dir():
        return
    try:
        _run(
            [bin_dir / "pg_ctl", "stop", "-w", "-m", "immediate", "-D", server.data_dir],
            cwd=server.data_dir.parent,
        )
    except (OSError, subprocess.SubprocessError):
        pass
