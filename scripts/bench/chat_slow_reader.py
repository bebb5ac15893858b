"""Chat benchmark: how long a post takes while a reader that never reads is connected.

An anonymous reader joins a public class's chat and stops reading (a 4 KiB receive
buffer, nothing read), a signed-in student reads normally, and the teacher posts
`--posts` messages of `--size` characters, waiting for each one's echo. Prints the echo
latency (p50, max) before the stuck reader fills its buffers and after, and whether the
poster hung (no echo within `--hang` seconds) or the stuck reader was dropped.

In-process (aiohttp's test server, SQLite in a temporary folder), loopback only:

    .venv/bin/python scripts/bench/chat_slow_reader.py [--posts 200] [--size 60000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aiohttp import ClientSession, ClientWebSocketResponse  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402

from config.loading import load_settings  # noqa: E402
from control.accounts.auth_tokens import issue_token  # noqa: E402
from control.accounts.passwords import Passwords  # noqa: E402
from control.accounts.user_accounts import create_user  # noqa: E402
from control.app import build_app  # noqa: E402
from control.chat.hub import CHAT_HUB  # noqa: E402
from control.db.database import Database  # noqa: E402
from control.models import Role  # noqa: E402


async def _chat(http: ClientSession, base: str, sid: int, token: str | None,
                **kw: Any) -> ClientWebSocketResponse:
    """Opens the chat with a ticket; falls back to the old `?token=` address."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(f"{base}/sessions/{sid}/chat-ticket", headers=headers) as answer:
        if answer.status in (404, 405):
            query = f"?token={token}" if token else ""
        else:
            query = f"?ticket={(await answer.json())['ticket']}"
    ws: ClientWebSocketResponse = await http.ws_connect(f"{base}/sessions/{sid}/chat{query}",
                                                        **kw)
    return ws


async def run(posts: int, size: int, hang: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base_settings = load_settings(environ={})
        settings = dataclasses.replace(
            base_settings,
            server=dataclasses.replace(base_settings.server, data_dir=Path(tmp)),
            auth=dataclasses.replace(base_settings.auth, password_time_cost=1,
                                     password_memory_cost_kib=64),
            courses=dataclasses.replace(base_settings.courses, chat_max_length=size),
        )
        database = Database(f"sqlite+aiosqlite:///{tmp}/bench.sqlite3")
        await database.create_all()
        passwords = Passwords(settings.auth)
        tokens = {}
        async with database.transaction(write=True) as db:
            for name, role in (("admin", Role.ADMIN), ("teacher", Role.TEACHER),
                               ("student", Role.STUDENT)):
                user = await create_user(db, passwords, username=name,
                                         password="pw-" + name + "-secret", role=role)
                tokens[name], _ = await issue_token(db, user, 3600)
        server = TestServer(build_app(settings, database), host="127.0.0.1")
        await server.start_server()
        base = str(server.make_url("")).rstrip("/")

        def auth(name: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {tokens[name]}"}

        async with ClientSession() as http:
            async with http.post(f"{base}/categories/", json={"name": "Maths"},
                                 headers=auth("admin")) as r:
                category = (await r.json())["id"]
            async with http.post(f"{base}/courses/", headers=auth("teacher"), json={
                "title": "Algebra", "category_id": category, "access_level": "public",
            }) as r:
                course = (await r.json())["id"]
            async with http.post(f"{base}/courses/{course}/start-live",
                                 headers=auth("teacher")) as r:
                sid = (await r.json())["session_id"]

            stuck = await _chat(http, base, sid, None, max_msg_size=0)
            sock = stuck.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader = await _chat(http, base, sid, tokens["student"], max_msg_size=0)
            got = 0

            async def read() -> None:
                nonlocal got
                async for _message in reader:
                    got += 1

            reading = asyncio.create_task(read())
            teacher = await _chat(http, base, sid, tokens["teacher"], max_msg_size=0)
            latencies: list[float] = []
            hung_after = None
            for i in range(posts):
                started = time.perf_counter()

                async def post(i: int = i) -> None:
                    # The send itself can block too: a stalled handler stops reading.
                    await teacher.send_json({"type": "message",
                                             "text": f"{i:06d}" + "x" * (size - 6)})
                    while True:
                        frame = await teacher.receive_json()
                        if frame.get("text", "").startswith(f"{i:06d}"):
                            return

                try:
                    await asyncio.wait_for(post(), hang)
                except TimeoutError:
                    hung_after = i
                    break
                latencies.append(time.perf_counter() - started)
            await asyncio.sleep(1)
            print(f"posts answered: {len(latencies)} of {posts} ({size} characters each)")
            if latencies:
                ms = sorted(x * 1000 for x in latencies)
                print(f"echo latency: p50 {statistics.median(ms):.1f} ms, "
                      f"p99 {ms[int(len(ms) * 0.99) - 1]:.1f} ms, max {ms[-1]:.1f} ms")
            if hung_after is not None:
                print(f"HUNG: post {hung_after} had no echo after waiting {hang:.0f} s")
            print(f"the reading student got {got} frames")
            hub = server.app[CHAT_HUB]
            # Dropped when its queue fills or one send outlasts chat_send_timeout_seconds.
            waited = time.perf_counter()
            limit = settings.courses.chat_send_timeout_seconds + 5
            while [c for c in hub.connections(sid) if c.user_id is None]:
                if time.perf_counter() - waited > limit:
                    print(f"stuck reader: still connected {limit} s after the last post")
                    break
                await asyncio.sleep(0.1)
            else:
                print("stuck reader: dropped by the server "
                      f"({time.perf_counter() - waited:.1f} s after the last post)")
            reading.cancel()
            for ws in (teacher, reader, stuck):
                ws._response.close()  # a stuck socket would wait to close
        await server.close()
        await database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--size", type=int, default=60_000, help="characters per message")
    parser.add_argument("--hang", type=float, default=30.0,
                        help="seconds without an echo that count as hung")
    args = parser.parse_args()
    asyncio.run(run(args.posts, args.size, args.hang))


if __name__ == "__main__":
    main()
