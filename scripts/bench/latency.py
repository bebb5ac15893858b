"""Latency benchmark: glass-to-glass on the course page, ours against nginx-rtmp + hls.js,
and the server CPU that N players in blocking reload cost.

1. Glass-to-glass. A publisher process (clock_publisher.py) paints the wall clock into
   every frame (clock_frames.py: a band of big black/white blocks) and publishes it as
   OBS would (x264 veryfast 720p30 CBR 2500 kbit/s, keyframe every 2 s, B-frames, AAC).
   Headless chromium (Debian's) watches: our course page as a signed-in enrolled student
   (player.js, the vendored hls.js as the page sets it up), or, for the reference, a
   minimal page playing nginx-rtmp's HLS with the same vendored hls.js and its defaults.
   For every presented frame the page reads the painted time back and records
   Date.now() - painted (glass_viewer.py). After `--warmup` s of playing, `--seconds` s of
   frames give the median and p90. Parts: ours in ladder mode, ours in passthrough,
   nginx-rtmp (`hls on; hls_fragment 2s`, ../shared/baselines/nginx-rtmp), each on a
   fresh server, then printed side by side with the ratio ours / nginx.
2. Players (`--players 50,200`): N aiohttp clients (player_load.py) on one media playlist,
   sharing one playback token: blocking playlist reloads (`_HLS_msn`/`_HLS_part`) and
   every new part when the server advertises CAN-BLOCK-RELOAD=YES, else polling every half
   target duration and every new segment. CPU seconds of the server's own process (ours:
   `academia serve` without its ffmpeg workers; nginx: its worker) over `--players-seconds`,
   minus the same window with no player, per player; ours against nginx.

The decoder is checked first (clock_frames.self_check: 720p and 360p through x264).
Everything it starts is stopped at the end, also on Ctrl-C or an error.

    PYTHONPATH=$PWD .venv/bin/python scripts/bench/latency.py \
        [--parts ladder,passthrough,nginx] [--seconds 25] [--warmup 10] [--rounds 1] \
        [--players 50,200] [--players-on passthrough,nginx] [--players-seconds 20] \
        [--nginx-run ../shared/baselines/nginx-rtmp/run.sh] [--json FILE] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for _path in (HERE, REPO, REPO / "tests"):  # our helpers, the project, the test helpers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from child_processes import Children  # noqa: E402
from clock_frames import self_check  # noqa: E402
from glass_viewer import GlassFigures, measure, open_course, open_reference  # noqa: E402
from hls_watch import fetch, parse_media_playlist  # noqa: E402
from ingest_servers import Academia, NginxRtmp  # noqa: E402
from player_load import LoadFigures, run_players  # noqa: E402
from playwright.async_api import Browser, async_playwright  # noqa: E402
from tree_cpu import machine_busy_seconds, process_cpu  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
HLS_JS = REPO / "control/web/static/vendor/hls.light.min.js"
STUDENT, STUDENT_PASSWORD = "bench_student", "bench-student-password"
NGINX = "nginx"
MODES = ("ladder", "passthrough")
Server = Academia | NginxRtmp


@dataclass
class PlayersRun:
    players: int
    seconds: float
    cpu_s: float  # the server process's CPU seconds over the window
    idle_cpu_s: float  # ... over the same window with no player
    figures: LoadFigures
    client_cpu_s: float  # this benchmark's own CPU (the clients) over the window
    others_busy: float  # share of all cores busy with anything but the server, in the window
    clients_s: float  # how long the clients ran (ramp and tail included)

    @property
    def per_player_pct(self) -> float:
        """Share of one core (%) each player costs the server, idle cost taken out."""
        return 100 * max(0.0, self.cpu_s - self.idle_cpu_s) / self.seconds / self.players


@dataclass
class PartResult:
    part: str
    glass: GlassFigures | None = None
    players: list[PlayersRun] = field(default_factory=list)
    publisher: dict[str, float] = field(default_factory=dict)
    load_1min: float = 0.0
    note: str = ""
    round: int = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="ladder,passthrough,nginx",
                   help="which servers to measure: ladder, passthrough (ours), nginx")
    p.add_argument("--seconds", type=float, default=25, help="glass-to-glass window (0: none)")
    p.add_argument("--warmup", type=float, default=10, help="playing, unmeasured, before it")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure the parts this many times, interleaved (players: once)")
    p.add_argument("--players", default="", help="player counts for the CPU load, e.g. 50,200")
    p.add_argument("--players-on", default="passthrough,nginx",
                   help="the parts on which the players run")
    p.add_argument("--players-seconds", type=float, default=20)
    p.add_argument("--nginx-run", type=Path,
                   default=REPO.parent / "shared/baselines/nginx-rtmp/run.sh")
    p.add_argument("--no-self-check", action="store_true")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = p.parse_args(argv)
    args.parts = [x for x in args.parts.split(",") if x]
    unknown = set(args.parts) - {*MODES, NGINX}
    if unknown:
        p.error(f"unknown parts: {', '.join(sorted(unknown))}")
    # 0 (or nothing) measures no players.
    args.players = [int(n) for n in args.players.split(",") if n and int(n) > 0]
    args.players_on = [x for x in args.players_on.split(",") if x]
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.children = Children()
        self.nginx: list[NginxRtmp] = []
        self.results: list[PartResult] = []
        self.hls_js = HLS_JS.read_bytes()  # the reference page's, the same as ours

    @asynccontextmanager
    async def server(self, part: str, folder: Path) -> AsyncIterator[tuple[Server, str]]:
        """A fresh server with one stream; yields it and the RTMP URL to publish to."""
        os.makedirs(folder)
        if part == NGINX:
            nginx = NginxRtmp(self.args.nginx_run, folder, 2)
            self.nginx.append(nginx)
            try:
                yield nginx, nginx.setup_streams(1)[0]
            finally:
                nginx.close()
                self.nginx.remove(nginx)
            return
        # The server's own segment length (no override): what students get.
        ours = Academia(self.children, folder, mode=part, segment_seconds=None, max_streams=4)
        try:
            url = ours.setup_streams(1)[0]
            student = ours.call("POST", "/users/", {
                "username": STUDENT, "password": STUDENT_PASSWORD, "role": "student"})
            ours.call("POST", f"/courses/{ours.course_ids[0]}/enroll-student",
                      {"student_id": student["id"]})
            yield ours, url
        finally:
            ours.close()

    def start_publisher(self, url: str, folder: Path) -> tuple[Path, subprocess.Popen[bytes]]:
        stats = folder / "publisher.json"
        proc = self.children.start(
            "clock publisher",
            [sys.executable, HERE / "clock_publisher.py", url, "--seconds", "900",
             "--stats", stats],
            log=folder / "publisher.log", env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        return stats, proc

    async def wait_live(self, server: Server, timeout_s: float = 90) -> str:
        """The first variant's playlist URL once it lists two segments."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            url = await asyncio.to_thread(server.playlist_url, 0)
            body = await asyncio.to_thread(fetch, url) if url else None
            if url and body and len(parse_media_playlist(body.decode(errors="replace"))) >= 2:
                return url
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the stream did not go live within {timeout_s:.0f} s")

    async def run_part(self, part: str, browser: Browser | None, round_: int = 1
                       ) -> PartResult:
        a = self.args
        result = PartResult(part, load_1min=_load_average(), round=round_)
        self.results.append(result)
        print(f"\n== {part} (round {round_}) ==", flush=True)
        folder = self.work / f"{part}-{round_}"
        async with self.server(part, folder) as (server, rtmp_url):
            stats, publisher = self.start_publisher(rtmp_url, folder)
            try:
                playlist = await self.wait_live(server)
                print(f"  live: {playlist}", flush=True)
                if browser is not None:
                    result.glass = await self.glass(server, playlist, browser)
                    print(f"  glass-to-glass: {result.glass.describe()}", flush=True)
                if a.players and part in a.players_on and round_ == 1:
                    await self.players(server, playlist, result)
                try:
                    result.publisher = json.loads(stats.read_text())
                except (OSError, ValueError):
                    result.note = "no publisher stats"
            finally:
                self.children.stop(publisher, grace_s=5)
        return result

    async def glass(self, server: Server, playlist: str, browser: Browser) -> GlassFigures:
        a = self.args
        if isinstance(server, Academia):
            page = await open_course(browser, server.base, server.course_ids[0], STUDENT,
                                     STUDENT_PASSWORD)
        else:
            page = await open_reference(browser, playlist, self.hls_js)
        try:
            return await measure(page, warmup_s=a.warmup, seconds=a.seconds)
        finally:
            await page.context.close()

    def server_cpu(self, server: Server) -> float:
        pid = server.proc.pid if isinstance(server, Academia) else server.worker_pid
        return process_cpu(pid)

    async def players(self, server: Server, playlist: str, result: PartResult) -> None:
        a = self.args
        seconds = a.players_seconds
        cpu0 = self.server_cpu(server)
        await asyncio.sleep(seconds)
        idle = self.server_cpu(server) - cpu0
        print(f"  no player: server {100 * idle / seconds:.1f}% of a core", flush=True)
        for count in a.players:
            ramp = 3.0
            clients_s = ramp + seconds + 2
            task = asyncio.create_task(run_players(playlist, count, clients_s, ramp_s=ramp))
            await asyncio.sleep(ramp)
            cpu0, mine0 = self.server_cpu(server), time.process_time()
            busy0, all0 = machine_busy_seconds()
            await asyncio.sleep(seconds)
            cpu = self.server_cpu(server) - cpu0
            mine = time.process_time() - mine0
            busy1, all1 = machine_busy_seconds()
            figures = await task
            others = max(0.0, (busy1 - busy0) - cpu) / max(all1 - all0, 1e-9)
            run = PlayersRun(count, seconds, cpu, idle, figures, mine, others, clients_s)
            result.players.append(run)
            mode = "blocking reload" if figures.blocking else "polling (no CAN-BLOCK-RELOAD)"
            print(f"  {count} players ({mode}): server {100 * cpu / seconds:.1f}% of a core,"
                  f" {run.per_player_pct:.3f}% per player; {figures.playlist_requests} "
                  f"playlist + {figures.media_requests} media requests "
                  f"({figures.media_bytes / 1e6:.0f} MB), {figures.errors} errors "
                  f"{figures.error_kinds or ''}; clients {100 * mine / seconds:.0f}% of a core",
                  flush=True)

    def close(self) -> None:
        self.children.stop_all()
        for nginx in list(self.nginx):
            nginx.close()
        self.nginx.clear()


def _load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _ratio(ours: float | None, ref: float | None) -> str:
    return f"{ours / ref:.2f}x" if ours is not None and ref else "-"


NAMES = {"ladder": "ours, ladder (course page)", "passthrough": "ours, passthrough (course page)",
         NGINX: "nginx-rtmp + hls.js defaults"}


def report(bench: Bench) -> None:
    ref = next((r for r in bench.results if r.part == NGINX and r.players), None) or next(
        (r for r in bench.results if r.part == NGINX), None)
    print("\n" + "=" * 78)
    print(f"Glass-to-glass (painted clock -> frame presented in headless chromium), "
          f"{os.cpu_count()} cores")
    print(f"  {'part':<34} {'median':>7} {'p90':>7} {'frames':>7} {'stalls':>6} "
          f"{'ratio median':>12} {'cam dropped':>11}")
    for r in bench.results:
        g = r.glass
        name = NAMES[r.part] + (f" #{r.round}" if bench.args.rounds > 1 else "")
        same_round = next((q for q in bench.results if q.part == NGINX and q.round == r.round),
                          None)
        ref_glass = same_round.glass if same_round else None
        painted = r.publisher.get("frames", 0)
        dropped = r.publisher.get("dropped", 0)
        late = f"{dropped / max(1, painted + dropped):.1%}"
        if g is None:
            print(f"  {name:<34} {'-':>7} {'-':>7} {'-':>7} {'-':>6} {'-':>12} {late:>11}")
            continue
        ratio = "1.00x" if r.part == NGINX else _ratio(
            g.median_s, ref_glass.median_s if ref_glass else None)
        print(f"  {name:<34} {_fmt(g.median_s):>6}s {_fmt(g.p90_s):>6}s "
              f"{len(g.samples_ms):>7} {g.stalls:>6} {ratio:>12} {late:>11}")
    if bench.args.rounds > 1:
        medians = {part: statistics.median(ms) for part in bench.args.parts
                   if (ms := [r.glass.median_s for r in bench.results
                              if r.part == part and r.glass and r.glass.median_s is not None])}
        print("  median over rounds: " + "; ".join(
            f"{part} {value:.2f} s ({_ratio(value, medians.get(NGINX))})"
            for part, value in medians.items()))
    player_rows = [(r.part, p) for r in bench.results for p in r.players]
    if player_rows:
        print("\nPlayers on one playlist, one shared playback token: server process CPU "
              "(idle window taken out)")
        print(f"  {'part':<12} {'players':>7} {'reload':>9} {'server %':>9} {'idle %':>7} "
              f"{'%/player':>9} {'%/100':>7} {'ratio':>7} {'req/s':>7} {'errors':>6} {'others':>6}")
        for part, p in player_rows:
            ref_run = next((q for q in (ref.players if ref else []) if q.players == p.players),
                           None)
            ratio = "1.00x" if part == NGINX else _ratio(
                p.per_player_pct, ref_run.per_player_pct if ref_run else None)
            reqs = (p.figures.playlist_requests + p.figures.media_requests) / p.clients_s
            reload = "blocking" if p.figures.blocking else "polling"
            print(f"  {part:<12} {p.players:>7} {reload:>9} "
                  f"{100 * p.cpu_s / p.seconds:>8.1f}% {100 * p.idle_cpu_s / p.seconds:>6.1f}% "
                  f"{p.per_player_pct:>8.3f}% {100 * p.per_player_pct:>6.1f}% {ratio:>7} "
                  f"{reqs:>7.0f} {p.figures.errors:>6} {p.others_busy:>6.0%}")
        print("  %/player: share of one core; %/100: per 100 players. ours = `academia serve`'s"
              " own process (not its ffmpeg workers);\n  nginx = its worker process; others:"
              " share of all cores busy with anything else (the clients too) in the window.")
    print("\nLoad average at each start: "
          + ", ".join(f"{r.part} {r.load_1min:.1f}" for r in bench.results))


def write_json(bench: Bench, path: Path) -> None:
    out = []
    for r in bench.results:
        entry = asdict(r)
        if r.glass:
            entry["glass"] = {"median_s": r.glass.median_s, "p90_s": r.glass.p90_s,
                              "samples": len(r.glass.samples_ms), "heights": r.glass.heights,
                              "stalls": r.glass.stalls, "unreadable": r.glass.unreadable}
        entry["players"] = [{**asdict(p), "per_player_pct": p.per_player_pct}
                            for p in r.players]
        out.append(entry)
    path.write_text(json.dumps(out, indent=2))


async def run(bench: Bench) -> None:
    a = bench.args
    if a.seconds <= 0:
        for part in a.parts:
            await bench.run_part(part, None)
        return
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--autoplay-policy=no-user-gesture-required"])
        try:
            for round_ in range(1, a.rounds + 1):
                for part in a.parts:
                    try:
                        await bench.run_part(part, browser, round_)
                    except Exception:  # one part failing leaves the others' figures
                        print(f"  {part} FAILED:\n{traceback.format_exc()}", flush=True)
                        bench.results[-1].note = "failed"
        finally:
            await browser.close()


def _as_interrupt(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM stops the run as Ctrl-C does (asyncio cancels the run, which cleans up)."""
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("ffmpeg", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is missing (apt-get install ffmpeg nginx libnginx-mod-rtmp)",
                  file=sys.stderr)
            return 2
    if not HLS_JS.exists():
        print(f"{HLS_JS} is missing: run `make assets`", file=sys.stderr)
        return 2
    if not args.no_self_check:
        problems = self_check()
        if problems:
            print("the clock code does not read back:", *problems, sep="\n  ", file=sys.stderr)
            return 1
        print("clock code self-check: every frame read back exactly (720p, 360p x264)")
    signal.signal(signal.SIGTERM, _as_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="academia-latency-"))
    work.chmod(0o755)  # nginx's worker may run as another user (nginx started by root)
    bench = Bench(args, work)
    began = time.monotonic()
    try:
        asyncio.run(run(bench))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping what was started", file=sys.stderr)
        return 130
    finally:
        bench.close()
        failed = any(r.note == "failed" for r in bench.results)
        if args.keep or failed:
            print(f"kept {work} (logs)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report(bench)
    if args.json:
        write_json(bench, args.json)
    print(f"Run time {time.monotonic() - began:.0f} s.")
    return 1 if any(r.note == "failed" for r in bench.results) else 0


if __name__ == "__main__":
    sys.exit(main())
