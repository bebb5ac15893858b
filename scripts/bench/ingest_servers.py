"""The two RTMP -> HLS servers the ingest benchmark compares, started and set up for N
streams: the nginx-rtmp reference (../shared/baselines/nginx-rtmp/run.sh) and
`academia serve` in a temporary data folder, with one course and stream key per stream.

Each gives, per stream, the RTMP URL to publish to and a way to find the live media
playlist a viewer would play, and the process ids whose CPU time is the server's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from child_processes import Children, free_port, log_tail
from hls_watch import fetch, first_variant

ADMIN_PASSWORD = "bench-admin-password"
TEACHER_PASSWORD = "bench-teacher-password"


class NginxRtmp:
    """nginx-rtmp with HLS, started by the reference's run.sh (which daemonises it)."""

    def __init__(self, run_sh: Path, folder: Path, segment_seconds: int) -> None:
        self.folder = folder
        self.rtmp_port = free_port()
        self.http_port = free_port()
        # nginx's worker runs as another user when started by root: it must reach and
        # write these folders (a temporary folder is private to its owner).
        for sub in ("hls", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            (folder / sub).chmod(0o777)
        folder.chmod(0o755)  # its parents: the caller's (ingest.py opens its work folder)
        started = subprocess.run(
            ["bash", str(run_sh), str(folder), str(self.rtmp_port), str(self.http_port),
             str(segment_seconds)],
            capture_output=True, text=True, timeout=30,
        )
        self.master_pid = self._master_pid()
        if started.returncode != 0 or not started.stdout.strip().isdigit():
            self.close()
            raise RuntimeError(f"nginx-rtmp did not start: {started.stdout}{started.stderr}\n"
                               f"{log_tail(folder / 'error.log')}")
        self.worker_pid = int(started.stdout.strip().splitlines()[0])

    def _master_pid(self) -> int | None:
        try:
            return int((self.folder / "nginx.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def cpu_roots(self) -> list[int]:
        return [self.worker_pid]

    def setup_streams(self, count: int) -> list[str]:
        return [f"rtmp://127.0.0.1:{self.rtmp_port}/live/s{i}" for i in range(count)]

    def disk_playlists(self) -> list[Path]:
        """Each live stream's playlist as written to disk (read without asking the server)."""
        return sorted((self.folder / "hls").glob("*.m3u8"))

    def playlist_url(self, index: int) -> str | None:
        return f"http://127.0.0.1:{self.http_port}/hls/s{index}.m3u8"

    def close(self) -> None:
        """nginx detached itself from us: stop it by the pids it wrote and printed."""
        pids = [p for p in (self.master_pid or self._master_pid(),
                            getattr(self, "worker_pid", None)) if p]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        for pid in pids:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Academia:
    """`academia serve` on free ports in `folder`; every stream gets its own course."""

    def __init__(self, children: Children, folder: Path, *, mode: str,
                 segment_seconds: int | None, max_streams: int, preset: str | None = None,
                 command: list[str] | None = None) -> None:
        self.children = children
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.rtmp_port = free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        # /metrics is not on the public port: an admin address of its own, as Prometheus uses.
        self.metrics_base = f"http://127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "ACADEMIA_HOST": "127.0.0.1",
            "ACADEMIA_HTTP_PORT": str(self.http_port),
            "ACADEMIA_RTMP_PORT": str(self.rtmp_port),
            "ACADEMIA_DATA_DIR": str(folder / "var"),
            "ACADEMIA_DATABASE_URL": "",
            "ACADEMIA_PUBLIC_URL": "",
            "ACADEMIA_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # Sign-ins are not measured: the cheapest password hashing.
            "ACADEMIA_PASSWORD_TIME_COST": "1",
            "ACADEMIA_PASSWORD_MEMORY_COST_KIB": "64",
            "ACADEMIA_TRANSCODE_MODE": mode,
            "ACADEMIA_MAX_STREAMS": str(max_streams),
            "ACADEMIA_METRICS_LISTEN": self.metrics_base.removeprefix("http://"),
        }
        if segment_seconds is not None:  # None: the server's own default
            env["ACADEMIA_SEGMENT_SECONDS"] = str(segment_seconds)
        if preset:
            env["ACADEMIA_X264_PRESET"] = preset
        argv = command or academia_command()
        self.log = folder / "academia.log"
        self.proc = children.start("academia serve", [*argv, "serve"], log=self.log, env=env,
                                   cwd=folder)
        children.wait_http(self.proc, self.base + "/openapi.json")
        self.token = self.call("POST", "/auth/login",
                               {"username": "admin", "password": ADMIN_PASSWORD})["token"]
        self.course_ids: list[int] = []
        self._playlists: dict[int, str] = {}

    @property
    def cpu_roots(self) -> list[int]:
        return [self.proc.pid]

    def call(self, method: str, path: str, payload: Any = None, auth: bool = True) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.base + path, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/json")
        if auth and getattr(self, "token", None):
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            raise RuntimeError(f"{method} {path} answered {exc.code}: {text[:300]}") from exc

    def setup_streams(self, count: int) -> list[str]:
        """One course and stream key per stream, made through the API as an admin would."""
        teacher = self.call("POST", "/users/", {
            "username": "bench_teacher", "password": TEACHER_PASSWORD, "role": "teacher"})
        category = self.call("POST", "/categories/", {"name": "Benchmark"})
        urls = []
        for i in range(count):
            course = self.call("POST", "/courses/", {
                "title": f"Ingest {i}", "category_id": category["id"],
                "teacher_id": teacher["id"]})
            key = self.call("POST", f"/courses/{course['id']}/stream-keys", {})
            self.course_ids.append(course["id"])
            urls.append(f"{key['rtmp_url'].rstrip('/')}/{key['key']}")
        return urls

    def disk_playlists(self) -> list[Path]:
        """Each live session's first video rendition folder in local storage, where its
        segments are stored as they close (live playlists are served from memory and
        never stored; read without asking the server, which a saturated server answers
        slowly)."""
        found = []
        for session in sorted((self.folder / "var/media/recordings").glob("*")):
            folders = sorted((p for p in session.iterdir() if p.is_dir()),
                             key=lambda p: (p.name in ("audio", "source"), p.name))
            if folders:
                found.append(folders[0])
        return found

    def playlist_url(self, index: int) -> str | None:
        """The first variant's live playlist, found as a viewer would: live-status, then
        a playback grant, then the master playlist. None until the stream is live."""
        if index in self._playlists:
            return self._playlists[index]
        course = self.course_ids[index]
        try:
            status = self.call("GET", f"/courses/{course}/live-status", auth=False)
            session = status.get("session_id")
            if not session:
                return None
            master = self.call("GET", f"/sessions/{session}/playback")["url"]
        except (RuntimeError, OSError):
            return None
        body = fetch(master)
        variant = first_variant(master, body.decode(errors="replace")) if body else None
        if variant:
            self._playlists[index] = variant
        return variant

    def metric(self, name: str) -> float:
        """A counter's value from /metrics (summed over its labels); 0 if absent."""
        body = fetch(self.metrics_base + "/metrics")
        total = 0.0
        for line in (body or b"").decode(errors="replace").splitlines():
            if line.startswith(name) and not line.startswith("#"):
                head = line.split(" ", 1)[0]
                if head == name or head.startswith(name + "{"):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def close(self) -> None:
        # Shutting down finalises recordings (not measured): a short grace, then killed.
        self.children.stop(self.proc, grace_s=5)


def academia_command() -> list[str]:
    script = Path(sys.executable).parent / "academia"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mediaserver.cli"]
