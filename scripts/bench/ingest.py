"""Ingest benchmark: Academia Live's RTMP -> HLS pipeline against nginx-rtmp and bare ffmpeg.

One pre-encoded FLV (720p30 H.264 + AAC, ~2.5 Mbit/s, a keyframe every 2 s) is published
in real time by the same client to every server (`ffmpeg -re -stream_loop -1 -i input.flv
-c copy -f flv rtmp://...`, N at once), on loopback. Every figure is a ratio to a
reference measured in the same run:

  1. passthrough (ACADEMIA_TRANSCODE_MODE=passthrough): server CPU seconds per stream per
     second of media, ours (`academia serve` and all its ffmpeg workers) vs the
     nginx-rtmp worker (HLS remux in-process), at 1, 10 and 50 simultaneous streams;
  2. ladder (ACADEMIA_TRANSCODE_MODE=ladder): our CPU vs bare ffmpeg running the same
     ladder command (transcode.command.ladder_command, HLS to a local folder, reading the
     FLV itself), and how many simultaneous 720p30 ladders this machine keeps in real time
     (1, 2, 3 ... until a stream falls behind);
  3. time from publish to the first playable segment, and the live-edge delay, ours vs
     nginx-rtmp (medians over ~30 s).

Everything it starts is stopped at the end, also on Ctrl-C or an error.

    .venv/bin/python scripts/bench/ingest.py [--quick] [--counts 1,10,50] [--duration 20]
        [--parts passthrough,ladder,latency]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for _path in (HERE, REPO):  # our helpers, the project
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from child_processes import Children  # noqa: E402
from hls_watch import LiveWatch, median, parse_media_playlist  # noqa: E402
from ingest_servers import Academia, NginxRtmp  # noqa: E402
from rtmp_publishers import (  # noqa: E402
    Publisher,
    make_input,
    progress_args,
    progress_seconds,
    start_publisher,
)
from tree_cpu import machine_busy_seconds, process_cpu, tree_cpu_total  # noqa: E402

from config.loading import load_settings  # noqa: E402
from transcode.command import STREAM_NAME, ladder_command  # noqa: E402
from transcode.ladder import SOURCE_NAME, plan_ladder  # noqa: E402
from transcode.probe import probe_flv  # noqa: E402

REAL_TIME = 0.97  # a stream keeps up if its media grows at least this fast as wall time
# Appearance times are known to a poll (250 ms) each side: the lag's growth gets this slack.
POLL_SLACK_S = 0.5
MAX_DELAY_SEGMENTS = 4  # ... and its live edge is no further behind than this at the end
OVERFLOW_METRIC = "academia_buffer_overflow_bytes_total"
RESTART_METRIC = "academia_worker_restarts_total"
NGINX = "nginx-rtmp"
OURS = "Academia Live"
BARE = "bare ffmpeg"

Server = NginxRtmp | Academia


@dataclass
class StreamFigures:
    publisher_rate: float  # media seconds sent per wall second during the window
    produced_s: float  # media seconds the live playlist gained during the window
    playlist_rate: float | None = None  # from the watcher's segment appearances
    # Live-edge delay when the window's last segment appeared: a stream catching up fast
    # (rate > 1) may still be far behind.
    end_delay: float | None = None
    # How much the live-edge delay grew over the window (first to last appearance).
    lag_growth: float | None = None


@dataclass
class Step:
    """One measured window: a server, a mode, N streams."""

    server: str
    mode: str
    streams: int
    wall_s: float = 0.0
    cpu_s: float = 0.0  # the server's CPU seconds over the window
    main_cpu_s: float = 0.0  # of which the server's main process (ours: Python, no ffmpeg)
    media_s: float = 0.0  # media seconds published (all streams) over the window
    per_stream: list[StreamFigures] = field(default_factory=list)
    overflow_bytes: float = 0.0
    worker_restarts: float = 0.0
    load_1min: float = 0.0  # /proc/loadavg just before the window
    others_busy: float = 0.0  # share of all CPUs used by processes not ours, in the window
    segment_s: float = 2.0
    watched: bool = False  # the streams' playlists were polled through the window
    note: str = ""

    @property
    def cpu_per_media(self) -> float | None:
        """CPU seconds per stream per second of media (= cores per stream)."""
        return self.cpu_s / self.media_s if self.media_s > 0 else None

    def streams_ok(self) -> int:
        """Streams whose playlist grew by about the window's length (2 segments' slack)."""
        return sum(1 for s in self.per_stream
                   if s.produced_s >= REAL_TIME * self.wall_s - 2 * self.segment_s)

    @property
    def real_time(self) -> bool:
        if not self.per_stream or self.overflow_bytes > 0 or self.note:
            return False
        return all(s.publisher_rate >= REAL_TIME
                   # Watched, fewer than two new segments in the window: far behind.
                   and (not self.watched or s.playlist_rate is not None)
                   and (s.lag_growth is None
                        or s.lag_growth <= (1 - REAL_TIME) * self.wall_s + POLL_SLACK_S)
                   and (s.end_delay is None or s.end_delay <= MAX_DELAY_SEGMENTS * self.segment_s)
                   for s in self.per_stream) and self.streams_ok() == len(self.per_stream)


@dataclass
class Latency:
    server: str
    mode: str
    first_playable_s: float | None
    delay_median_s: float | None
    delay_min_s: float | None
    delay_max_s: float | None
    segments: int
    missed: int
    load_1min: float = 0.0
    others_busy: float = 0.0
    note: str = ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: counts 1,5, 8 s windows, ladders up to 2, 12 s latency")
    p.add_argument("--counts", help="simultaneous streams of the passthrough runs (1,10,50)")
    p.add_argument("--duration", type=float, help="seconds of each measured window (20)")
    p.add_argument("--warmup", type=float, help="seconds after the publish before a window (8)")
    p.add_argument("--ladder-max", type=int, help="most simultaneous ladders to try (4)")
    p.add_argument("--latency-seconds", type=float, help="length of each latency run (30)")
    p.add_argument("--parts", default="passthrough,ladder,latency")
    p.add_argument("--segment-seconds", type=int, default=2)
    p.add_argument("--input", type=Path, default=REPO / "var/bench/ingest-input.flv",
                   help="the FLV published (made once when missing)")
    p.add_argument("--nginx-run", type=Path,
                   default=REPO.parent / "shared/baselines/nginx-rtmp/run.sh")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = p.parse_args(argv)
    quick = args.quick
    args.counts = [int(c) for c in (args.counts or ("1,5" if quick else "1,10,50")).split(",")
                   if c.strip()]
    args.duration = args.duration or (8.0 if quick else 20.0)
    args.warmup = args.warmup or (5.0 if quick else 8.0)
    args.ladder_max = args.ladder_max or (2 if quick else 4)
    args.latency_seconds = args.latency_seconds or (12.0 if quick else 30.0)
    args.parts = {x.strip() for x in args.parts.split(",") if x.strip()}
    if args.parts - {"passthrough", "ladder", "latency"}:
        p.error(f"unknown parts: {sorted(args.parts - {'passthrough', 'ladder', 'latency'})}")
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.children = Children()
        self.nginx: list[NginxRtmp] = []
        self.steps: list[Step] = []
        self.latencies: list[Latency] = []
        self.capacity: int | None = None
        self._runs = 0
        self._window = (0.0, 0.0)  # the last measured window's monotonic bounds

    def folder(self, name: str) -> Path:
        self._runs += 1
        path = self.work / f"{self._runs:02d}-{name}"
        path.mkdir(parents=True)
        return path

    # -- servers -------------------------------------------------------------------------
    @contextlib.contextmanager
    def server(self, kind: str, mode: str, streams: int) -> Iterator[Server]:
        a = self.args
        folder = self.folder(f"{'nginx' if kind == NGINX else 'academia'}-{mode}-{streams}")
        if kind == NGINX:
            nginx = NginxRtmp(a.nginx_run, folder, a.segment_seconds)
            self.nginx.append(nginx)
            try:
                yield nginx
            finally:
                nginx.close()
                self.nginx.remove(nginx)
        else:
            ours = Academia(self.children, folder, mode=mode, segment_seconds=a.segment_seconds,
                            max_streams=max(streams, 1) + 5)
            try:
                yield ours
            finally:
                ours.close()

    def stop_publishers(self, publishers: list[Publisher]) -> None:
        for pub in publishers:  # all at once, then wait for each
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pub.proc.pid, signal.SIGTERM)
        for pub in publishers:
            self.children.stop(pub.proc, grace_s=5)

    def everything_ours(self) -> float:
        """CPU seconds of all we started (nginx detached itself: counted apart)."""
        return tree_cpu_total([os.getpid(), *[n.worker_pid for n in self.nginx]])

    # -- one measured window -------------------------------------------------------------
    def measure(self, kind: str, mode: str, streams: int, *, watch: bool = False) -> Step:
        a = self.args
        print(f"  {kind} / {mode} / {streams} stream(s) ...", flush=True)
        step = Step(kind, mode, streams, watched=watch)
        with self.server(kind, mode, streams) as server:
            urls = server.setup_streams(streams)
            folder = self.work / f"{self._runs:02d}-publishers"
            folder.mkdir(exist_ok=True)
            publishers = [start_publisher(self.children, a.input, url, folder, f"p{i}")
                          for i, url in enumerate(urls)]
            watchers: list[LiveWatch] = []
            try:
                if watch:
                    watchers = [LiveWatch(pub.started, resolve=_resolver(server, i),
                                          interval_s=0.25, check_playable=False).start()
                                for i, pub in enumerate(publishers)]
                missing = self.wait_live(server, publishers)
                if missing:
                    step.note = f"{missing} stream(s) never listed a segment"
                    print(f"    {step.note}", flush=True)
                    if isinstance(server, Academia):
                        print(_log_tail(server.log), flush=True)
                    self.steps.append(step)
                    return step
                self.window(step, server, publishers)
                for figures, watcher in zip(step.per_stream, watchers, strict=False):
                    figures.playlist_rate = watcher.media_rate(*self._window)
                    delays = watcher.delays(until=self._window[1])
                    figures.end_delay = delays[-1] if delays else None
                    inside = watcher.delays(since=self._window[0], until=self._window[1])
                    figures.lag_growth = inside[-1] - inside[0] if len(inside) > 1 else None
                if watchers:
                    # A server that falls behind turns less media into HLS than it was
                    # sent: its cost is per second of media it actually made playable.
                    step.media_s = sum(
                        step.wall_s * min(f.publisher_rate, f.playlist_rate or f.publisher_rate)
                        for f in step.per_stream)
            finally:
                for watcher in watchers:
                    watcher.stop()
                self.stop_publishers(publishers)
        self.steps.append(step)
        self.print_step(step)
        return step

    def wait_live(self, server: Server, publishers: list[Publisher]) -> int:
        """Waits the warm-up, and until every stream's playlist lists a segment (bounded);
        returns how many never did."""
        a = self.args
        start = time.monotonic()
        deadline = start + a.warmup + 30 + len(publishers) * 0.5
        live = 0
        while time.monotonic() < deadline:
            live = sum(1 for n in self.positions(server).values() if n > 0)
            dead = [p for p in publishers if not p.alive()]
            if dead:
                raise RuntimeError(f"{len(dead)} publisher(s) exited early; see {dead[0].progress}"
                                   f" and its log beside it")
            if live >= len(publishers) and time.monotonic() - start >= a.warmup:
                return 0
            time.sleep(0.5)
        return len(publishers) - live

    def positions(self, server: Server) -> dict[Path, int]:
        """Per live playlist on disk (ours: per rendition folder), the sequence number
        after the last segment listed (stored)."""
        out = {}
        for path in server.disk_playlists():
            if path.is_dir():
                # Our segments, stored as they close and numbered from 0.
                out[path] = sum(1 for _ in path.glob("[0-9]*.m4s"))
                continue
            try:
                segments = parse_media_playlist(path.read_text(errors="replace"))
            except OSError:
                segments = []
            out[path] = segments[-1].sequence + 1 if segments else 0
        return out

    def window(self, step: Step, server: Server, publishers: list[Publisher]) -> None:
        a = self.args
        ours = isinstance(server, Academia)
        before = self.positions(server)
        overflow = server.metric(OVERFLOW_METRIC) if isinstance(server, Academia) else 0.0
        restarts = server.metric(RESTART_METRIC) if isinstance(server, Academia) else 0.0
        step.load_1min = float(Path("/proc/loadavg").read_text().split()[0])
        media0 = [p.media_seconds() for p in publishers]
        busy0, all0 = machine_busy_seconds()
        mine0 = self.everything_ours()
        cpu0 = tree_cpu_total(server.cpu_roots)
        main0 = process_cpu(server.cpu_roots[0])
        t0 = time.monotonic()
        end = t0 + a.duration
        while time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
            if ours and isinstance(server, Academia) and server.proc.poll() is not None:
                step.note = "academia exited during the window"
                break
        cpu1 = tree_cpu_total(server.cpu_roots)
        step.main_cpu_s = process_cpu(server.cpu_roots[0]) - main0
        t1 = time.monotonic()
        mine1 = self.everything_ours()
        busy1, all1 = machine_busy_seconds()
        media1 = [p.media_seconds() for p in publishers]
        self._window = (t0, t1)
        step.wall_s = t1 - t0
        step.cpu_s = cpu1 - cpu0
        step.media_s = sum(m1 - m0 for m0, m1 in zip(media0, media1, strict=True))
        if all1 > all0:
            step.others_busy = max(0.0, (busy1 - busy0) - (mine1 - mine0)) / (all1 - all0)
        after = self.positions(server)
        seg = a.segment_seconds
        # Playlists are matched to publishers by order: only the count of healthy ones
        # matters, and the watchers (when any) follow each stream by its own URL.
        grown = sorted(((n - before.get(path, 0)) * seg for path, n in after.items()),
                       reverse=True)
        grown += [0.0] * (len(publishers) - len(grown))
        step.per_stream = [
            StreamFigures((m1 - m0) / step.wall_s, produced)
            for m0, m1, produced in zip(media0, media1, grown[:len(publishers)], strict=True)
        ]
        if isinstance(server, Academia):
            step.overflow_bytes = server.metric(OVERFLOW_METRIC) - overflow
            step.worker_restarts = server.metric(RESTART_METRIC) - restarts
        step.segment_s = seg

    def print_step(self, step: Step) -> None:
        main = f" (main process {step.main_cpu_s:.1f})" if step.server == OURS else ""
        print(f"    {step.cpu_s:.1f} CPU s{main} over {step.wall_s:.1f} s,"
              f" {step.media_s:.1f} media s;"
              f" {_fmt(step.cpu_per_media, '.4f')} CPU s per stream-second; "
              f"{step.streams_ok()}/{step.streams} playlists grew with the window; "
              f"load {step.load_1min:.1f}, others {step.others_busy:.0%} of the CPUs",
              flush=True)

    # -- the parts -----------------------------------------------------------------------
    def passthrough(self) -> None:
        print("\n1. Passthrough: server CPU per stream, ours vs nginx-rtmp", flush=True)
        for count in self.args.counts:
            # Neighbours in time: the machine's other load changes from minute to minute.
            self.measure(NGINX, "passthrough", count)
            self.measure(OURS, "passthrough", count)

    def ladder(self) -> None:
        a = self.args
        print("\n2. Ladder: ours vs bare ffmpeg (same command); simultaneous ladders",
              flush=True)
        self.bare_ladder()
        for count in range(1, a.ladder_max + 1):
            step = self.measure(OURS, "ladder", count, watch=True)
            rates = ", ".join(
                f"pub {s.publisher_rate:.2f}/hls {_fmt(s.playlist_rate, '.2f')}"
                f" delay {_fmt(s.end_delay, '.1f')} s (+{_fmt(s.lag_growth, '.1f')} s)"
                for s in step.per_stream)
            verdict = "real time" if step.real_time else "FALLS BEHIND"
            print(f"    {count} ladder(s): {verdict} ({rates}; overflow "
                  f"{step.overflow_bytes:.0f} B, restarts {step.worker_restarts:.0f})",
                  flush=True)
            if not step.real_time:
                break
            self.capacity = count

    def bare_ladder(self) -> None:
        """The ladder command our worker runs, alone: reading the FLV in real time itself
        and writing HLS to a local folder."""
        a = self.args
        print(f"  {BARE} / ladder / 1 stream ...", flush=True)
        folder = self.folder("bare-ladder")
        settings = load_settings(environ={**os.environ, "ACADEMIA_DATA_DIR": str(folder)})
        with a.input.open("rb") as f:
            head = f.read(1 << 20)
        source = asyncio.run(probe_flv(head))
        renditions = plan_ladder(settings.streaming.ladder, source)
        out = folder / "hls"
        argv = ladder_command(renditions, source, base_url=str(out), run=0,
                              segment_seconds=a.segment_seconds,
                              preset=settings.streaming.x264_preset)
        for name in [r.name for r in renditions] + [SOURCE_NAME]:
            (out / "0" / name).mkdir(parents=True, exist_ok=True)
        # The same command, reading the file in real time instead of a pipe.
        at = argv.index("pipe:0")
        progress = folder / "bare.progress"
        argv = [argv[0], *progress_args(progress), *argv[1:at - 3],
                "-re", "-stream_loop", "-1", *argv[at - 3:at], str(a.input), *argv[at + 1:]]
        step = Step(BARE, "ladder", 1)
        proc = self.children.start("bare ffmpeg ladder", argv, log=folder / "ffmpeg.log")
        try:
            playlist = out / "0" / renditions[0].name / STREAM_NAME
            start = time.monotonic()
            while time.monotonic() < start + a.warmup + 30:
                if proc.poll() is not None:
                    raise RuntimeError(f"bare ffmpeg exited: {_log_tail(folder / 'ffmpeg.log')}")
                if playlist.exists() and time.monotonic() >= start + a.warmup:
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError("bare ffmpeg wrote no playlist: "
                                   f"{_log_tail(folder / 'ffmpeg.log')}")
            step.load_1min = float(Path("/proc/loadavg").read_text().split()[0])
            busy0, all0 = machine_busy_seconds()
            mine0 = self.everything_ours()
            cpu0, media0, t0 = tree_cpu_total([proc.pid]), progress_seconds(progress), \
                time.monotonic()
            time.sleep(a.duration)
            cpu1, media1, t1 = tree_cpu_total([proc.pid]), progress_seconds(progress), \
                time.monotonic()
            mine1 = self.everything_ours()
            busy1, all1 = machine_busy_seconds()
            step.wall_s, step.cpu_s, step.media_s = t1 - t0, cpu1 - cpu0, media1 - media0
            if all1 > all0:
                step.others_busy = max(0.0, (busy1 - busy0) - (mine1 - mine0)) / (all1 - all0)
            step.per_stream = [StreamFigures(step.media_s / step.wall_s, step.media_s)]
        finally:
            self.children.stop(proc, grace_s=5)
        self.steps.append(step)
        self.print_step(step)

    def latency(self) -> None:
        print("\n3. Publish -> first playable segment, and live-edge delay", flush=True)
        for kind, mode in ((NGINX, "passthrough"), (OURS, "passthrough"), (OURS, "ladder")):
            self.latency_run(kind, mode)

    def latency_run(self, kind: str, mode: str) -> None:
        a = self.args
        print(f"  {kind} / {mode} ...", flush=True)
        with self.server(kind, mode, 1) as server:
            url = server.setup_streams(1)[0]
            folder = self.work / f"{self._runs:02d}-publishers"
            folder.mkdir(exist_ok=True)
            load = float(Path("/proc/loadavg").read_text().split()[0])
            busy0, all0 = machine_busy_seconds()
            mine0 = self.everything_ours()
            pub = start_publisher(self.children, a.input, url, folder, "latency")
            watcher = LiveWatch(pub.started, resolve=_resolver(server, 0)).start()
            try:
                end = pub.started + a.latency_seconds
                while time.monotonic() < end and pub.alive():
                    time.sleep(0.2)
                mine1 = self.everything_ours()
                busy1, all1 = machine_busy_seconds()
            finally:
                watcher.stop()
                self.stop_publishers([pub])
        delays = watcher.delays()
        result = Latency(kind, mode, watcher.first_playable, median(delays),
                         min(delays) if delays else None, max(delays) if delays else None,
                         len(watcher.appearances), watcher.missed, load,
                         max(0.0, (busy1 - busy0) - (mine1 - mine0)) / max(all1 - all0, 1e-9))
        if watcher.first_playable is None:
            result.note = "no segment played"
        self.latencies.append(result)
        print(f"    first playable {_fmt(result.first_playable_s, '.2f')} s; delay median "
              f"{_fmt(result.delay_median_s, '.2f')} s (min {_fmt(result.delay_min_s, '.2f')},"
              f" max {_fmt(result.delay_max_s, '.2f')}) over {result.segments} segments;"
              f" load {load:.1f}, others {result.others_busy:.0%}", flush=True)

    def close(self) -> None:
        self.children.stop_all()
        for nginx in list(self.nginx):
            nginx.close()
        self.nginx.clear()


def _resolver(server: Server, index: int) -> Callable[[], str | None]:
    return lambda: server.playlist_url(index)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(ours: float | None, ref: float | None) -> str:
    return f"{ours / ref:.2f}x" if ours is not None and ref else "-"


def report(bench: Bench, args: argparse.Namespace) -> None:
    steps = bench.steps
    print("\n" + "=" * 78)
    cores = os.cpu_count() or 0
    print(f"Machine: {cores} cores; {platform.python_implementation()} "
          f"{platform.python_version()}; {_ffmpeg_version()}; publishers, servers and other "
          "people's work share the cores.")
    pass_rows = [s for s in steps if s.mode == "passthrough"]
    if pass_rows:
        print("\nPassthrough: server CPU seconds per stream per second of media "
              "(= share of one core per stream)")
        print(f"  {'streams':>7}  {'nginx-rtmp':>11}  {'ours':>11}  {'ours/nginx':>10}  "
              f"{'ours ok':>8}  {'load':>5}  {'others':>6}")
        for count in args.counts:
            ng = next((s for s in pass_rows if s.server == NGINX and s.streams == count), None)
            us = next((s for s in pass_rows if s.server == OURS and s.streams == count), None)
            n_per = ng.cpu_per_media if ng else None
            o_per = us.cpu_per_media if us else None
            ok = f"{us.streams_ok()}/{count}" if us else "-"
            load = f"{us.load_1min:.1f}" if us else "-"
            others = f"{us.others_busy:.0%}" if us else "-"
            print(f"  {count:>7}  {_fmt(n_per, '.4f'):>11}  {_fmt(o_per, '.4f'):>11}  "
                  f"{_ratio(o_per, n_per):>10}  {ok:>8}  {load:>5}  {others:>6}")
    bare = next((s for s in steps if s.server == BARE), None)
    ladders = [s for s in steps if s.server == OURS and s.mode == "ladder"]
    if bare or ladders:
        print("\nLadder (720p30 source -> hd 720p, sd 480p, mobile 360p, audio + source copy)")
        one = next((s for s in ladders if s.streams == 1), None)
        b_per = bare.cpu_per_media if bare else None
        o_per = one.cpu_per_media if one else None
        print(f"  bare ffmpeg: {_fmt(b_per, '.3f')} CPU s per media second; ours (1 stream): "
              f"{_fmt(o_per, '.3f')}; overhead ours/bare = {_ratio(o_per, b_per)}")
        for s in ladders:
            verdict = "real time" if s.real_time else f"falls behind {s.note}".strip()
            rates = " ".join(f"{f.publisher_rate:.2f}/{_fmt(f.playlist_rate, '.2f')}"
                             f"/{_fmt(f.end_delay, '.1f')}s" for f in s.per_stream)
            print(f"  {s.streams} ladder(s): {verdict}; {_fmt(s.cpu_per_media, '.3f')} CPU s"
                  f" per stream-second; publisher/playlist rates/end delay {rates}; overflow "
                  f"{s.overflow_bytes:.0f} B; load {s.load_1min:.1f}, others {s.others_busy:.0%}")
        if ladders:
            tried = max(s.streams for s in ladders)
            capacity = bench.capacity or 0
            more = "" if capacity < tried else f" (the most tried: --ladder-max {tried})"
            print(f"  simultaneous 720p30 ladders kept in real time: {capacity}{more}")
    if bench.latencies:
        print("\nLatency (single stream, from the publisher's start; playlist polled every"
              " 100 ms)")
        print(f"  {'server / mode':<28} {'first playable':>14} {'delay median':>12} "
              f"{'min':>6} {'max':>6} {'segments':>8} {'load':>5} {'others':>6}")
        for r in bench.latencies:
            print(f"  {r.server + ' / ' + r.mode:<28} {_fmt(r.first_playable_s, '.2f'):>13}s"
                  f" {_fmt(r.delay_median_s, '.2f'):>11}s {_fmt(r.delay_min_s, '.2f'):>5}s"
                  f" {_fmt(r.delay_max_s, '.2f'):>5}s {r.segments:>8} {r.load_1min:>5.1f}"
                  f" {r.others_busy:>6.0%}  {r.note}")
        ref = next((r for r in bench.latencies if r.server == NGINX), None)
        for r in bench.latencies:
            if r.server == OURS and ref:
                print(f"  ours ({r.mode}) / nginx: first playable "
                      f"{_ratio(r.first_playable_s, ref.first_playable_s)}, delay "
                      f"{_ratio(r.delay_median_s, ref.delay_median_s)}")
    print("\nNotes: ours = `academia serve` and all its children (ffmpeg workers), utime+stime"
          " with reaped children's; nginx = its worker process; bare = the ladder ffmpeg.")
    print("  media seconds = what the publishers sent during the window (-progress out_time);"
          " 'others' = share of all cores busy with processes this benchmark did not start.")
    print(f"  A ladder keeps real time when every publisher sends >= {REAL_TIME} media s per"
          f" wall s, its HD playlist's live-edge delay grows by at most {1 - REAL_TIME:.0%} of"
          f" the window (+{POLL_SLACK_S} s for polling), its live edge is at most"
          f" {MAX_DELAY_SEGMENTS} segments behind at the end, and no input was dropped"
          " (buffer overflow).")
    if args.json:
        args.json.write_text(json.dumps({
            "steps": [{**asdict(s), "cpu_per_media": s.cpu_per_media,
                       "real_time": s.real_time} for s in steps],
            "latency": [asdict(r) for r in bench.latencies],
            "ladder_capacity": bench.capacity,
        }, indent=2))


def _ffmpeg_version() -> str:
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=10)
        return " ".join(out.stdout.split()[:3])
    except (OSError, subprocess.SubprocessError):
        return "ffmpeg ?"


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("ffmpeg", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is missing (apt-get install ffmpeg nginx libnginx-mod-rtmp)",
                  file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _raise_exit)
    # Ctrl-C stops everything cleanly even when started from a script (which ignores it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args.input = make_input(args.input)
    work = Path(tempfile.mkdtemp(prefix="academia-ingest-"))
    work.chmod(0o755)  # nginx's worker may run as another user (nginx started by root)
    bench = Bench(args, work)
    print(f"Ingest benchmark: input {args.input}; work folder {work}; "
          f"load average {Path('/proc/loadavg').read_text().split()[0]}", flush=True)
    began = time.monotonic()
    interrupted = False
    failed: BaseException | None = None
    try:
        for part in ("passthrough", "ladder", "latency"):
            if part in args.parts:
                try:
                    getattr(bench, part)()
                except Exception as exc:  # one part failing leaves the others' figures
                    failed = exc
                    print(f"  {part} FAILED:\n{traceback.format_exc()}", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping what was started", file=sys.stderr)
    finally:
        bench.close()
        if args.keep or failed is not None:
            print(f"kept {work} (logs)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        return 130
    report(bench, args)
    print(f"  Run time {time.monotonic() - began:.0f} s.")
    return 1 if failed is not None else 0


if __name__ == "__main__":
    sys.exit(main())
