"""Latency of a cheap request while RTMP clients flood the node with unauthenticated chunks.

A whole node (tests/support/live_stack.py: the `academia serve` composition, SQLite) runs on this
process's event loop. In the same run it measures `GET /categories/` (sequential requests
from another thread, over HTTP) first with no attack, then while `--attackers` clients
(tests/support/rtmp_attacker.py, each in its own thread) finish the RTMP handshake, send Set Chunk
Size `--chunk-size` and stream audio nobody asked for, with no `connect` and no key,
reconnecting at once whenever the node closes them. It prints median and p99 of both and
their ratio (attack / quiet), and how often the node closed an attacker.

    .venv/bin/python scripts/bench/rtmp_attack.py [--requests 200] [--chunk-size 1]
        [--attackers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO, REPO / "tests"):  # the project, and the test helpers it reuses
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from support.live_stack import LiveStack, stack_settings  # noqa: E402
from support.rtmp_attacker import Attacker  # noqa: E402


def measure(port: int, path: str, count: int) -> list[float]:
    """Latencies in ms of `count` sequential GETs, one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status}")
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return latencies


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rtmp-attack-") as folder:
        async with LiveStack(stack_settings(Path(folder))) as stack:
            port = stack.settings.server.http_port
            rtmp_port = stack.settings.streaming.rtmp_port
            await asyncio.to_thread(measure, port, args.path, 20)  # warm-up
            quiet = await asyncio.to_thread(measure, port, args.path, args.requests)
            attackers = [Attacker("127.0.0.1", rtmp_port, chunk_size=args.chunk_size,
                                  reconnect=True) for _ in range(args.attackers)]
            for attacker in attackers:
                attacker.start()
            await asyncio.sleep(0.5)  # let the attack reach its steady state
            try:
                attacked = await asyncio.to_thread(measure, port, args.path, args.requests)
            finally:
                await asyncio.gather(*(asyncio.to_thread(a.stop) for a in attackers))
    print(f"GET {args.path}, {args.requests} sequential requests; attack: {args.attackers} "
          f"client(s) at chunk size {args.chunk_size}, no connect, no key")
    print(f"{'':10} {'median ms':>10} {'p99 ms':>10}")
    for name, values in (("quiet", quiet), ("attack", attacked)):
        print(f"{name:10} {statistics.median(values):10.2f} {p99(values):10.2f}")
    print(f"{'ratio':10} {statistics.median(attacked) / statistics.median(quiet):9.1f}x "
          f"{p99(attacked) / p99(quiet):9.1f}x")
    connections = sum(a.connections for a in attackers)
    closed = sum(a.closed_by_server for a in attackers)
    sent = sum(a.bytes_sent for a in attackers)
    print(f"attackers: {connections} connection(s) past the handshake, {closed} closed by the "
          f"node, {sent / 1e6:.1f} MB sent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=1)
    parser.add_argument("--attackers", type=int, default=1)
    parser.add_argument("--path", default="/categories/")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
