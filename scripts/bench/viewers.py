"""How many students one live class holds: simulated LL-HLS players, 10 to 2,000, each
with its own playback token, through the nginx edge, straight to the media node, and
against a plain nginx serving the same files (the reference).

    PYTHONPATH=$PWD .venv/bin/python scripts/bench/viewers.py [--quick] \
        [--viewers 10,100,500,1000,2000] [--window 15] [--targets edge,direct,static] \
        [--stall-parts 1] [--json FILE] [--keep]

One cluster of real processes (viewer_cluster.py: PostgreSQL, Redis, moto S3, one
control process, one media node in passthrough mode, the edge from `academia
edge-config`), one ffmpeg publishing. For each viewer count, each target in turn:
player_load.py's players (blocking reloads after the last EXT-X-PART and a GET of every
new part; the reference's players poll every PART-TARGET, as a static server cannot
block) ramp up, settle, then a window measures:

- origin requests/s: /play/ requests the media node counted (its /metrics), and the
  control process's requests (the edge's and the node's playback checks);
- CPU, utime + stime over the window (tree_cpu.py): the edge's nginx (master and
  workers), the static nginx, the media node with its ffmpeg, the control process, and
  this process (the players); per viewer: share of one core, idle cost taken out; per
  request the players made (the ratio to the reference is taken on this: players that
  fell behind made fewer requests, not cheaper ones);
- part lag: from the moment the part was listed at the origin (live_probe.py: one player
  of its own, straight on the media node, in a thread; for the reference, the moment
  its playlist file was in place) to the moment a player had all its bytes; and each
  part GET's time from request to last byte;
- stalls: a part a player got more than --stall-parts PART-TARGETs after it was listed
  (the player fell that far behind the live edge; the reference's polling players are
  allowed one PART-TARGET more, their polling interval), any failed or timed-out
  request, or fewer than 95% of the listed parts delivered.

Everything started is stopped at the end, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for _path in (HERE, REPO, REPO / "tests"):  # our helpers, the project, the test helpers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import aiohttp  # noqa: E402
from live_probe import LiveProbe  # noqa: E402
from player_load import LoadFigures, PartTimes, run_players  # noqa: E402
from static_nginx import static_config  # noqa: E402
from tree_cpu import machine_busy_seconds, tree_cpu_total  # noqa: E402
from viewer_cluster import METRICS_TOKEN, LiveClass, live_class  # noqa: E402

from support.cluster_processes import free_port  # noqa: E402
from support.nginx_edge import NginxEdge, nginx_binary  # noqa: E402

TARGETS = ("edge", "direct", "static")
SETTLE_S = 3.0
IDLE_S = 5.0
DELIVERED_MIN = 0.95
# PART-HOLD-BACK in PART-TARGETs (transcode.hls_playlist): where a player sits behind the
# live edge; a part later than that after its listing would find its buffer empty.
HOLD_BACK_PARTS = 3
# A route label holds braces itself ("/play/{session_id}/..."): split the line, not {}.
_COUNTER = re.compile(r'^academia_http_requests_total\{.*route="([^"]*)".*\} (\S+)$',
                      re.MULTILINE)


@dataclass
class Run:
    target: str
    viewers: int
    window_s: float
    requests: int  # the players' requests (playlists + parts) in the window
    origin_requests: float  # /play/ requests that reached the media node (not the probe's)
    control_requests: float  # requests that reached the control process
    server_cpu_s: float  # the edge's nginx, the static nginx, or (direct) the media node
    server_idle_s: float  # the same over a window of the same length with no player
    media_cpu_s: float
    control_cpu_s: float
    clients_cpu_s: float  # this process: the players (and the probe's thread)
    machine_busy: float  # share of all cores busy, whoever used them
    others: float  # share of all cores used by processes this benchmark did not start
    load1: float  # the 1-minute load average when the window opened
    lag_p50_ms: float
    lag_p99_ms: float
    fetch_p99_ms: float
    parts: int  # parts fetched in the window
    late_parts: int
    late_players: int  # players with a part later than --stall-parts PART-TARGETs
    dry_players: int  # ... later than PART-HOLD-BACK: a player at its target ran dry
    expected_parts: int
    errors: int
    error_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def per_viewer_pct(self) -> float:
        """Share of one core (%) each viewer costs the server, idle cost taken out."""
        return 100 * max(0.0, self.server_cpu_s - self.server_idle_s) / self.window_s \
            / self.viewers

    @property
    def per_request_us(self) -> float:
        """The server's CPU per request the players made (µs), idle cost taken out: a
        run whose players fell behind made fewer requests, and this stays comparable."""
        busy = max(0.0, self.server_cpu_s - self.server_idle_s)
        return 1e6 * busy / self.requests if self.requests else math.nan

    @property
    def delivered(self) -> float:
        return self.parts / self.expected_parts if self.expected_parts else 0.0

    @property
    def stalled(self) -> bool:
        return bool(self.late_players or self.errors or self.delivered < DELIVERED_MIN)

    @property
    def ran_dry(self) -> bool:
        return bool(self.dry_players or self.errors or self.delivered < DELIVERED_MIN)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--viewers", default="10,100,500,1000,2000")
    p.add_argument("--window", type=float, default=15.0, help="measured seconds per run")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--stall-parts", type=float, default=1.0,
                   help="a part later than this many PART-TARGETs after its listing stalls")
    p.add_argument("--quick", action="store_true",
                   help="10, 100 and 500 viewers, 8 s windows (about 3 minutes)")
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.viewers, args.window = "10,100,500", 8.0
    args.counts = sorted({int(n) for n in args.viewers.split(",") if n.strip()})
    args.targets = [t for t in args.targets.split(",") if t]
    if not args.counts or min(args.counts) < 1 or set(args.targets) - set(TARGETS):
        p.error(f"--viewers: positive counts; --targets: some of {','.join(TARGETS)}")
    return args


async def _requests(http: aiohttp.ClientSession, base: str, route_prefix: str) -> float:
    """The process's count of HTTP requests whose route starts with `route_prefix`
    (its /metrics), /metrics itself left out."""
    async with http.get(f"{base}/metrics",
                        headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as answer:
        text = await answer.text()
    total = 0.0
    for name, value in _COUNTER.findall(text):
        if name.startswith(route_prefix) and name != "/metrics":
            total += float(value)
    return total


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.runs: list[Run] = []
        self.idle_cpu: dict[str, float] = {}  # server CPU per second with no player
        self.load_at_start = os.getloadavg()
        self.part_target_s = 0.2

    def _servers(self, live: LiveClass, static: NginxEdge | None) -> dict[str, float]:
        def tree(pid: int | None) -> float:
            return tree_cpu_total([pid]) if pid else 0.0

        control = live.control.process
        media = live.media.process
        return {
            "edge": tree(live.edge.pid),
            "static": tree(static.pid if static else None),
            "direct": tree(media.pid if media else None),
            "control": tree(control.pid if control else None),
        }

    async def idle(self, live: LiveClass, static: NginxEdge | None) -> None:
        before = self._servers(live, static)
        await asyncio.sleep(IDLE_S)
        after = self._servers(live, static)
        self.idle_cpu = {k: (after[k] - before[k]) / IDLE_S for k in before}
        print("no player: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in
                                        self.idle_cpu.items()) + " of a core", flush=True)

    async def measure(self, live: LiveClass, static: NginxEdge | None, target: str,
                      count: int, probe: LiveProbe, mirror: LiveProbe) -> Run:
        a = self.args
        base = {"edge": live.cluster.edge_url, "direct": live.media.url,
                "static": static.url if static else ""}[target]
        urls = live.at(base)
        ramp = max(2.0, min(10.0, count / 200))
        window = a.window
        # Nothing recorded until the window opens (the ramp's parts are not measured).
        figures = LoadFigures(parts=PartTimes(record_from=math.inf))
        task = asyncio.create_task(run_players(urls, count, ramp + SETTLE_S + window + 0.5,
                                               ramp_s=ramp, figures=figures))
        async with aiohttp.ClientSession() as http:
            try:
                await asyncio.sleep(ramp + SETTLE_S)
                t0 = time.monotonic()
                assert figures.parts is not None
                figures.parts.record_from, figures.parts.record_until = t0, t0 + window
                load1 = os.getloadavg()[0]
                cpu0, mine0, busy0 = (self._servers(live, static), time.process_time(),
                                      machine_busy_seconds())
                # Everything started from here: the cluster, nginx, Redis, moto, ffmpeg
                # (PostgreSQL daemonises: it counts as others).
                ours0 = tree_cpu_total([os.getpid()])
                # The probe's and the mirror's own requests are left out.
                origin0 = (await _requests(http, live.media.url, "/play/")
                           - probe.requests - mirror.requests)
                control0 = await _requests(http, live.control.url, "/")
                requests0 = figures.playlist_requests + figures.media_requests
                errors0, kinds0 = figures.errors, dict(figures.error_kinds)
                await asyncio.sleep(window - (time.monotonic() - t0))
                cpu1, mine1, busy1 = (self._servers(live, static), time.process_time(),
                                      machine_busy_seconds())
                ours1 = tree_cpu_total([os.getpid()])
                elapsed = time.monotonic() - t0
                requests1 = figures.playlist_requests + figures.media_requests
                errors1, kinds1 = figures.errors, dict(figures.error_kinds)
                origin1 = (await _requests(http, live.media.url, "/play/")
                           - probe.requests - mirror.requests)
                control1 = await _requests(http, live.control.url, "/")
            finally:
                await task
        listed = mirror.listed if target == "static" else probe.listed
        parts = figures.parts
        lags: list[float] = []
        late_players: set[int] = set()
        dry_players: set[int] = set()
        late = 0
        # The reference's players poll every PART-TARGET: they learn of a part up to one
        # PART-TARGET after it exists, whatever the server does; that much is allowed them.
        polling = 1 if target == "static" else 0
        limit = (a.stall_parts + polling) * self.part_target_s
        dry = (HOLD_BACK_PARTS + polling) * self.part_target_s
        for uri, done in parts.done.items():
            at = listed.get(uri)
            if at is None:
                continue
            for when, player in zip(done, parts.players[uri], strict=True):
                lag = max(0.0, when - at)
                lags.append(lag)
                if lag > limit:
                    late += 1
                    late_players.add(player)
                if lag > dry:
                    dry_players.add(player)
        expected = count * (mirror if target == "static" else probe).listed_between(
            t0, t0 + window)
        server = "edge" if target == "edge" else target
        run = Run(
            target=target, viewers=count, window_s=elapsed,
            requests=requests1 - requests0,
            # Sampled a moment apart from the probe's counters: may dip below zero.
            origin_requests=max(0.0, origin1 - origin0), control_requests=control1 - control0,
            server_cpu_s=cpu1[server] - cpu0[server],
            server_idle_s=self.idle_cpu.get(server, 0.0) * elapsed,
            media_cpu_s=cpu1["direct"] - cpu0["direct"],
            control_cpu_s=cpu1["control"] - cpu0["control"],
            clients_cpu_s=mine1 - mine0,
            machine_busy=(busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1e-9),
            others=max(0.0, (busy1[0] - busy0[0]) - (ours1 - ours0))
            / max(busy1[1] - busy0[1], 1e-9),
            load1=load1,
            lag_p50_ms=1000 * _percentile(lags, 0.5), lag_p99_ms=1000 * _percentile(lags, 0.99),
            fetch_p99_ms=1000 * _percentile(list(parts.fetch_s), 0.99),
            parts=len(lags), late_parts=late, late_players=len(late_players),
            dry_players=len(dry_players),
            expected_parts=expected, errors=errors1 - errors0,
            error_kinds={k: v - kinds0.get(k, 0) for k, v in kinds1.items()
                         if v - kinds0.get(k, 0)},
        )
        self.runs.append(run)
        origin, control = run.origin_requests / elapsed, run.control_requests / elapsed
        print(f"  {target:<6} {count:>5} viewers: {run.requests / elapsed:7.0f} req/s, origin "
              f"{origin:6.1f}/s, control {control:6.1f}/s; server "
              f"{100 * run.server_cpu_s / elapsed:5.1f}% ({run.per_viewer_pct:.3f}%/viewer),"
              f" players {100 * run.clients_cpu_s / elapsed:.0f}%; lag p50/p99 "
              f"{run.lag_p50_ms:.0f}/{run.lag_p99_ms:.0f} ms, GET p99 {run.fetch_p99_ms:.0f} ms;"
              f" {100 * run.delivered:.0f}% delivered, {run.late_players} late players, "
              f"{run.errors} errors {run.error_kinds or ''}"
              f"{' STALL' if run.stalled else ''}", flush=True)
        return run


async def run(bench: Bench) -> None:
    a = bench.args
    runs = len(a.counts) * len(a.targets)
    budget = runs * (10 + SETTLE_S + a.window + 5) + 600
    async with live_class(bench.work, max(a.counts), publish_seconds=budget) as live:
        print(f"cluster up: session {live.session_id}, {len(live.playlists)} playback tokens",
              flush=True)
        direct = live.at(live.media.url)
        probe = LiveProbe(direct[0])
        mirror_root = bench.work / "static-root"
        mirror = LiveProbe(direct[0], master_url=direct[0].rsplit("/", 2)[0] + "/master.m3u8",
                           mirror=mirror_root)
        static: NginxEdge | None = None
        probe.start()
        mirror.start()
        try:
            if "static" in a.targets:
                port = free_port()
                prefix = bench.work / "static-nginx"
                static = NginxEdge(static_config(mirror_root, prefix, port), prefix, port)
                await static.start()
            deadline = time.monotonic() + 30
            while len(probe.listed) < 10 or len(mirror.listed) < 10:
                if time.monotonic() > deadline:
                    raise RuntimeError("the probe saw no parts within 30 s")
                await asyncio.sleep(0.5)
            bench.part_target_s = probe.part_target_s or bench.part_target_s
            print(f"PART-TARGET {bench.part_target_s:.3f} s", flush=True)
            await bench.idle(live, static)
            for count in a.counts:
                for target in a.targets:
                    await bench.measure(live, static, target, count, probe, mirror)
        finally:
            probe.stop()
            mirror.stop()
            if static is not None:
                await static.stop()


def _held(runs: list[Run], verdict: str) -> str:
    """The largest count below the first that failed `verdict` ('none' if the first)."""
    held = 0
    for r in sorted(runs, key=lambda r: r.viewers):
        if getattr(r, verdict):
            return f"{held or 'none'} (first stall at {r.viewers})"
        held = r.viewers
    return f"{held} (no stall)"


def _ratio(x: float, reference: float | None) -> str:
    return f"{x / reference:.2f}x" if reference else "-"


def report(bench: Bench) -> None:
    a = bench.args
    load = bench.load_at_start
    print(f"\nViewers of one live class ({os.cpu_count()} cores; load average at start "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; PART-TARGET "
          f"{1000 * bench.part_target_s:.0f} ms; stall: a part later than "
          f"{a.stall_parts:g} PART-TARGET, an error, or < {100 * DELIVERED_MIN:.0f}% delivered)")
    print(f"  {'target':<7}{'viewers':>7} {'req/s':>7} {'origin/s':>8} {'ctl/s':>6} "
          f"{'server%':>7} {'media%':>6} {'ctl%':>5} {'%/viewer':>8} {'us/req':>6} "
          f"{'vs static':>9} "
          f"{'lag p50':>7} {'lag p99':>7} "
          f"{'GET p99':>7} {'deliv':>5} {'late':>5} {'dry':>4} {'err':>4} {'players%':>8} "
          f"{'others':>6} {'load':>5}")
    for r in bench.runs:
        ref = next((s for s in bench.runs if s.target == "static" and s.viewers == r.viewers),
                   None)
        ratio = _ratio(r.per_request_us, ref.per_request_us if ref else None) \
            if r.target != "static" else ""
        print(f"  {r.target:<7}{r.viewers:>7} {r.requests / r.window_s:>7.0f} "
              f"{r.origin_requests / r.window_s:>8.1f} {r.control_requests / r.window_s:>6.1f} "
              f"{100 * r.server_cpu_s / r.window_s:>6.1f}% "
              f"{100 * r.media_cpu_s / r.window_s:>5.1f}% "
              f"{100 * r.control_cpu_s / r.window_s:>4.1f}% "
              f"{r.per_viewer_pct:>7.3f}% {r.per_request_us:>6.0f} "
              f"{ratio:>9} {r.lag_p50_ms:>5.0f}ms {r.lag_p99_ms:>5.0f}ms "
              f"{r.fetch_p99_ms:>5.0f}ms {100 * r.delivered:>4.0f}% {r.late_players:>5} "
              f"{r.dry_players:>4} {r.errors:>4} {100 * r.clients_cpu_s / r.window_s:>7.0f}% "
              f"{100 * r.others:>5.0f}% {r.load1:>5.1f}")
    print("  server: the edge's nginx (edge), the media node with its ffmpeg (direct), the"
          " plain nginx (static);"
          "\n  media%/ctl%: the media node (with ffmpeg), the control process;"
          "\n  %/viewer: share of one core, idle taken out; us/req: CPU per player request;"
          " vs static:\n  us/req against the reference's at the same count; late:"
          " players with a part later than the stall limit; dry: later than\n  PART-HOLD-BACK"
          " (the reference's polling players are allowed a PART-TARGET more); others:"
          " share of\n  both cores used by processes this benchmark did not start; load:"
          " 1-minute load average at the window's start.")
    for target in a.targets:
        tried = [r for r in bench.runs if r.target == target]
        if not tried:
            continue
        print(f"  {target}: largest count with no stall: {_held(tried, 'stalled')} (a part"
              f" {a.stall_parts:g} PART-TARGET late), {_held(tried, 'ran_dry')} (a part"
              " PART-HOLD-BACK late)")
    # Per request, from the busiest edge window without errors (the most requests: idle
    # and sampling noise weigh least): a viewer at the live edge makes two requests a
    # part (a blocking reload, the part). A window whose players fell behind made fewer
    # requests, not cheaper ones.
    clean = [r for r in bench.runs if r.target == "edge" and not r.errors and r.requests]
    if clean:
        top = max(clean, key=lambda r: r.requests)
        per_viewer_s = 2 / bench.part_target_s * top.per_request_us / 1e6
        print(f"  one core of edge nginx serves ~{1 / per_viewer_s:.0f} viewers at full "
              f"cadence ({top.per_request_us:.0f} us per request x {2 / bench.part_target_s:.0f}"
              f" requests/s each; from {top.viewers} viewers); the control process answered"
              f" {top.control_requests / top.window_s:.0f} checks/s for them with "
              f"{100 * top.control_cpu_s / top.window_s:.0f}% of a core")


def _as_interrupt(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM stops the run as Ctrl-C does (asyncio cancels the run, which cleans up)."""
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("ffmpeg", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing (apt-get install ffmpeg redis-server nginx postgresql)",
                  file=sys.stderr)
            return 2
    if nginx_binary() is None:
        print("nginx is missing (apt-get install nginx)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _as_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="academia-viewers-"))
    work.chmod(0o755)  # PostgreSQL and nginx's workers may run as other users
    bench = Bench(args, work)
    began = time.monotonic()
    failed = False
    try:
        asyncio.run(run(bench))
    except KeyboardInterrupt:
        print("\ninterrupted: stopped what was started", file=sys.stderr)
        failed = True
    except Exception:
        failed = True
        raise
    finally:
        if args.keep or failed:
            print(f"kept {work} (logs)")
        else:
            shutil.rmtree(work, ignore_errors=True)
        report(bench)
        if args.json:
            args.json.write_text(json.dumps(
                {"load_at_start": bench.load_at_start, "part_target_s": bench.part_target_s,
                 "runs": [{**asdict(r), "per_viewer_pct": r.per_viewer_pct,
                           "per_request_us": r.per_request_us,
                           "delivered": r.delivered, "stalled": r.stalled,
                           "ran_dry": r.ran_dry}
                          for r in bench.runs]}, indent=1))
        print(f"Run time {time.monotonic() - began:.0f} s.")
    return 130 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
