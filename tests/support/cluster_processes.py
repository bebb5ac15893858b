"""A whole cluster of real processes for a test: control processes and media nodes
(`academia serve --role ...`, each a subprocess with its own data folder and ports) on one
PostgreSQL database, one Redis and one S3 (moto's server), and the nginx edge made by
`academia edge-config` in front of them.

The test owns every process: `Cluster.close()` stops whatever is still running (and
`kill()` lets a test SIGKILL a node mid-class). Each process's output goes to a log file
beside its data folder, printed when a start fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from support.nginx_edge import NginxEdge
from support.s3_server import ACCESS_KEY, SECRET_KEY

__all__ = ["Cluster", "ClusterProcess", "create_database", "free_port"]

REPO = Path(__file__).resolve().parents[2]
NODE_SECRET = "cluster-node-secret-0123456789"
SIGNING_KEY = "cluster-playback-signing-key-0123456789"
ADMIN_PASSWORD = "admin-password-1"
START_SECONDS = 60.0
STOP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def create_database(server_url: str, name: str) -> str:
    """A fresh database `name` on the PostgreSQL server of `server_url` (a SQLAlchemy
    asyncpg URL); returns the URL of the new one."""
    plain = server_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(plain)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    head, _, _ = server_url.rpartition("/")
    return f"{head}/{name}"


@dataclass
class ClusterProcess:
    name: str
    role: str
    http_port: int
    rtmp_port: int
    log_file: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def rtmp_url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@dataclass
class Cluster:
    """Settings every process shares; processes are added by start_control/start_media."""

    base_dir: Path
    database_url: str
    redis_url: str
    s3_endpoint: str
    bucket: str
    extra_env: dict[str, str] = field(default_factory=dict)
    edge_port: int = field(default_factory=free_port)
    processes: list[ClusterProcess] = field(default_factory=list)
    edge: NginxEdge | None = None

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}"

    def _env(self, process: ClusterProcess) -> dict[str, str]:
        data_dir = self.base_dir / process.name
        data_dir.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "ACADEMIA_ROLE": process.role,
            "ACADEMIA_HOST": "127.0.0.1",
            "ACADEMIA_HTTP_PORT": str(process.http_port),
            "ACADEMIA_RTMP_PORT": str(process.rtmp_port),
            "ACADEMIA_DATA_DIR": str(data_dir),
            "ACADEMIA_DATABASE_URL": self.database_url if process.role != "media" else "",
            # Students reach everything through the edge: grants name its address.
            "ACADEMIA_PUBLIC_URL": self.edge_url,
            "ACADEMIA_TRUSTED_PROXIES": "127.0.0.1",
            "ACADEMIA_REDIS_URL": self.redis_url,
            "ACADEMIA_STORAGE_BACKEND": "s3",
            "ACADEMIA_S3_ENDPOINT": self.s3_endpoint,
            "ACADEMIA_S3_ACCESS_KEY": ACCESS_KEY,
            "ACADEMIA_S3_SECRET_KEY": SECRET_KEY,
            "ACADEMIA_S3_BUCKET": self.bucket,
            "ACADEMIA_NODE_SECRET": NODE_SECRET,
            "ACADEMIA_NODE_NAME": process.name,
            "ACADEMIA_NODE_URL": process.url,
            # Every control process signs and checks playback tokens with one key.
            "ACADEMIA_PLAYBACK_SIGNING_KEY": SIGNING_KEY,
            "ACADEMIA_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ACADEMIA_PASSWORD_TIME_COST": "1",
            "ACADEMIA_PASSWORD_MEMORY_COST_KIB": "64",
            **self.extra_env,
        }

    async def _run(self, *args: str, env: dict[str, str]) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mediaserver.cli", *args, env=env, cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(process.communicate(), START_SECONDS)
        text = out.decode(errors="replace")
        assert process.returncode == 0, f"academia {' '.join(args)} failed:\n{text}"
        return text

    async def migrate(self) -> None:
        migrator = ClusterProcess("migrate", "control", 0, 0, self.base_dir / "migrate.log")
        await self._run("migrate", env=self._env(migrator))

    async def _start(self, name: str, role: str, **env: str) -> ClusterProcess:
        node = ClusterProcess(name, role, free_port(), free_port(),
                              self.base_dir / f"{name}.log")
        self.processes.append(node)
        await self.start(node, **env)
        return node

    async def start(self, node: ClusterProcess, **env: str) -> None:
        """(Re)start `node`'s process and wait until its HTTP port answers."""
        with node.log_file.open("ab") as log:
            node.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mediaserver.cli", "serve",
                env={**self._env(node), **env}, cwd=REPO,
                stdout=log, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        async with aiohttp.ClientSession() as http:
            while True:
                assert node.process.returncode is None, (
                    f"{node.name} exited {node.process.returncode}:\n{node.log()[-4000:]}")
                try:
                    async with http.get(f"{node.url}/", timeout=aiohttp.ClientTimeout(2)):
                        return
                except (aiohttp.ClientError, TimeoutError):
                    if loop.time() > deadline:
                        raise AssertionError(f"{node.name} never answered:\n"
                                             f"{node.log()[-4000:]}") from None
                    await asyncio.sleep(0.2)

    async def start_control(self, name: str) -> ClusterProcess:
        return await self._start(name, "control")

    async def start_media(self, name: str, control: ClusterProcess, **env: str) -> ClusterProcess:
        """A media node asking `control` first, then the other control processes."""
        others = [p.url for p in self.processes if p.role == "control" and p is not control]
        return await self._start(name, "media",
                                 ACADEMIA_CONTROL_URL=",".join([control.url, *others]), **env)

    async def start_edge(self) -> NginxEdge:
        controls = [p for p in self.processes if p.role == "control"]
        media = [p for p in self.processes if p.role == "media"]
        env = {
            **self._env(ClusterProcess("edge-config", "control", 0, 0, self.base_dir / "e.log")),
            "ACADEMIA_EDGE_LISTEN": f"127.0.0.1:{self.edge_port}",
            "ACADEMIA_EDGE_CONTROL_URLS": ",".join(p.url for p in controls),
            "ACADEMIA_EDGE_MEDIA_NODES": ",".join(f"{p.name}={p.url}" for p in media),
        }
        prefix = self.base_dir / "edge"
        config = await self._run("edge-config", "--prefix", str(prefix), env=env)
        self.edge = NginxEdge(config, prefix, self.edge_port)
        await self.edge.start()
        return self.edge

    def kill(self, node: ClusterProcess, sig: int = signal.SIGKILL) -> None:
        assert node.process is not None and node.process.returncode is None
        node.process.send_signal(sig)

    async def stop(self, node: ClusterProcess) -> None:
        process, node.process = node.process, None
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def close(self) -> None:
        if self.edge is not None:
            await self.edge.stop()
        # Media nodes first: they finalise their classes through a control process.
        for node in sorted(self.processes, key=lambda p: p.role != "media"):
            with contextlib.suppress(ProcessLookupError):
                await self.stop(node)
