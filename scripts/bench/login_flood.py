"""Latency of a cheap request while clients fail sign-ins in a loop.

Starts `academia serve` (from this checkout, or from `--repo` to measure another one, e.g.
the code before a change) on free loopback ports in a temporary data folder, with the
production argon2 cost, and measures `GET /categories/` one request after another:

  1. with no other load (the reference, measured in the same run);
  2. while `--clients` clients POST /auth/login with a wrong password, each in a loop,
     as fast as the server answers them;

in `--rounds` alternating windows (idle, loaded, idle, ...) of `--duration` in all for each.

It prints the median and p99 of each, the ratios (loaded / idle), and how the sign-in
flood was answered (401 = argon2 ran, 429 = refused by a rate limit before any hashing).
`--no-limits` turns the sign-in rate limits off (to see the effect of hashing off the
event loop alone). Everything it starts is stopped at the end, also on Ctrl-C.

    .venv/bin/python scripts/bench/login_flood.py [--repo PATH] [--clients 4]
        [--duration 20] [--rounds 4] [--no-limits]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from child_processes import Children, free_port, log_tail  # noqa: E402

PROBE = "/categories/"
ADMIN_PASSWORD = "bench-admin-password"
LIMITS_OFF = {"ACADEMIA_LOGIN_IP_BURST": "0", "ACADEMIA_LOGIN_ACCOUNT_BURST": "0",
              "ACADEMIA_REGISTER_IP_BURST": "0"}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def probe(session: aiohttp.ClientSession, base: str, seconds: float) -> list[float]:
    """Latencies (ms) of the cheap request, one after another, for `seconds`."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        async with session.get(base + PROBE) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {PROBE}: {response.status}")
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def fail_logins(base: str, stop: asyncio.Event, statuses: Counter[int], n: int) -> None:
    # Each client its own connection, as separate attackers would have.
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.post(
                base + "/auth/login", json={"username": f"admin{n % 2 or ''}",
                                            "password": f"wrong-{n}"},
            ) as response:
                await response.read()
                statuses[response.status] += 1


async def measure(base: str, clients: int, seconds: float, rounds: int) -> None:
    idle: list[float] = []
    loaded: list[float] = []
    statuses: Counter[int] = Counter()
    flooded = 0.0
    async with aiohttp.ClientSession() as session:
        await probe(session, base, 1.0)  # warm-up, not counted
        # Idle and loaded windows alternate, so that other load on a shared machine, which
        # changes from minute to minute, weighs on both alike.
        for _ in range(rounds):
            idle += await probe(session, base, seconds / rounds)
            stop = asyncio.Event()
            flood = [asyncio.create_task(fail_logins(base, stop, statuses, n))
                     for n in range(clients)]
            await asyncio.sleep(0.5)  # let the flood get going
            started = time.monotonic()
            loaded += await probe(session, base, seconds / rounds)
            flooded += time.monotonic() - started
            stop.set()
            await asyncio.gather(*flood)
    elapsed = flooded

    def row(name: str, values: list[float]) -> str:
        return (f"{name:<28} n={len(values):>6}  median {statistics.median(values):8.2f} ms"
                f"  p99 {percentile(values, 0.99):8.2f} ms")

    print(row(f"GET {PROBE} idle", idle))
    print(row(f"GET {PROBE} {clients} failing", loaded))
    print(f"ratio loaded/idle: median x{statistics.median(loaded) / statistics.median(idle):.1f}"
          f", p99 x{percentile(loaded, 0.99) / percentile(idle, 0.99):.1f}")
    answered = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
    print(f"sign-in flood: {sum(statuses.values()) / elapsed:.0f} attempts/s ({answered})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to run the server from")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds measured idle, and as many loaded")
    parser.add_argument("--rounds", type=int, default=4, help="idle/loaded windows, alternated")
    parser.add_argument("--no-limits", action="store_true", help="turn sign-in limits off")
    args = parser.parse_args()

    children = Children()
    with tempfile.TemporaryDirectory(prefix="login-flood-") as work:
        folder = Path(work)
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(args.repo.resolve()),
            "ACADEMIA_DATA_DIR": str(folder / "var"),
            "ACADEMIA_HOST": "127.0.0.1",
            "ACADEMIA_HTTP_PORT": str(port),
            "ACADEMIA_RTMP_PORT": str(free_port()),
            "ACADEMIA_PUBLIC_URL": "",
            "ACADEMIA_DATABASE_URL": "",
            "ACADEMIA_REDIS_URL": "",
            "ACADEMIA_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **(LIMITS_OFF if args.no_limits else {}),
        }
        for name in ("ACADEMIA_PASSWORD_TIME_COST", "ACADEMIA_PASSWORD_MEMORY_COST_KIB"):
            env.pop(name, None)  # the production cost: that is what the flood costs
        base = f"http://127.0.0.1:{port}"
        try:
            proc = children.start(
                "academia serve", [sys.executable, "-m", "mediaserver.cli", "serve"],
                log=folder / "academia.log", env=env, cwd=folder,
            )
            children.wait_http(proc, base + "/openapi.json")
            limits = "limits off" if args.no_limits else "limits as configured"
            print(f"server: {args.repo.resolve()} ({limits}), {args.clients} clients, "
                  f"{args.duration:g} s per measurement", flush=True)
            asyncio.run(measure(base, args.clients, args.duration, args.rounds))
        except Exception:
            print(f"--- server log ---\n{log_tail(folder / 'academia.log')}", file=sys.stderr)
            raise
        finally:
            children.stop_all()


if __name__ == "__main__":
    main()
