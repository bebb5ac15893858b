"""`ControlPort` over HTTP: a media node asking remote control processes, like nginx-rtmp's
`on_publish` callback.

Each question is one POST to the control plane's internal API (control/node_api/), with
the node secret as a bearer token and the key or token in the body, never in a URL. One
aiohttp session serves every question. An attempt that cannot connect, times out or gets
a 5xx (the control plane's database is down, a load balancer has no control process) is
tried again after a short backoff, a bounded number of times; then the question raises
`ControlUnavailable`, which RTMP and WHIP turn into "try again later" and HLS delivery
into a 503, as for the in-process adapter's database errors. The bound stays well under
the RTMP auth timeout, so an encoder hears the refusal rather than a dropped connection.
A wrong node secret (401) or a refused body (4xx) is not retried: asking again cannot help.
`control_url` may list several control processes (comma-separated): a failed attempt moves
on to the next, and the node stays with whichever answers, so one control process going
away costs a node one failed attempt, not its classes' playback.

The node's heartbeat (mediaserver/node_heartbeat.py) goes through the same session, as
`heartbeat`, with one attempt: the heartbeat loop itself is the retry. Going live and
ending name this node (its cluster name), so the control plane records it as the
session's carrier and ignores an end from a node the class has moved away from.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import aiohttp

from config.settings import Settings
from control.nodes.node_secret import bearer_header
from mediaserver.control_port import (
    CarriedElsewhere,
    ControlUnavailable,
    PlaybackAllowed,
    PlaybackDecision,
    PlaybackRefused,
    PublishAllowed,
    PublishDecision,
    PublishDenied,
)
from mediaserver.node_heartbeat import node_identity

__all__ = ["HttpControl"]

log = logging.getLogger(__name__)

# The control plane's internal routes (control/node_api/routing.py).
_PREFIX = "/internal/control"


class HttpControl:
    """See the module docstring. `attempt_timeout` bounds one attempt (s); `attempts`
    attempts are made, `backoff` seconds apart, doubling: by default a question gets an
    answer or ControlUnavailable within about 6.6 s, 0.6 s when nothing listens."""

    def __init__(
        self,
        settings: Settings,
        *,
        attempt_timeout: float = 2.0,
        attempts: int = 3,
        backoff: float = 0.2,
        node_name: str | None = None,
    ) -> None:
        cluster = settings.cluster
        self._node = node_name or node_identity(settings)[0]
        if not cluster.control_url or not cluster.node_secret:
            raise ValueError("a media node needs cluster.control_url and cluster.node_secret")
        self._bases = [url.strip().rstrip("/") + _PREFIX
                       for url in cluster.control_url.split(",") if url.strip()]
        self._current = 0  # the control process asked first: the last that answered
        self._headers = bearer_header(cluster.node_secret)
        self._timeout = aiohttp.ClientTimeout(total=attempt_timeout)
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> HttpControl:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ the port

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        answer = await self._ask("authorize-publish", {"app": app, "key": key})
        try:
            if answer["allowed"] is True:
                return PublishAllowed(course_id=int(answer["course_id"]),
                                      key_id=_optional_int(answer.get("key_id")))
            return PublishDenied(reason=str(answer["reason"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlUnavailable("the control plane's key check answer is malformed") from exc

    async def session_goes_live(self, course_id: int) -> int:
        answer = await self._ask("session-goes-live",
                                 {"course_id": course_id, "node": self._node})
        try:
            return int(answer["session_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlUnavailable("the control plane's go-live answer is malformed") from exc

    async def end_session(self, course_id: int, session_id: int | None) -> None:
        answer = await self._ask("end-session", {"course_id": course_id,
                                                 "session_id": session_id, "node": self._node})
        if isinstance(answer, dict) and answer.get("outcome") == "carried_elsewhere":
            raise CarriedElsewhere(f"session {session_id} is carried by another node")

    async def authorize_playback(self, session_id: int, token: str) -> PlaybackDecision:
        answer = await self._ask("authorize-playback", {"session_id": session_id, "token": token})
        try:
            if answer["allowed"] is True:
                return PlaybackAllowed(session_id=int(answer["session_id"]),
                                       live=bool(answer["live"]),
                                       expires_at=float(answer["expires_at"]))
            return PlaybackRefused(reason=str(answer["reason"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlUnavailable("the control plane's playback answer is malformed") from exc

    async def recording_ready(self, session_id: int) -> None:
        await self._ask("recording-ready", {"session_id": session_id})

    # ------------------------------------------------------------------ beyond the port

    async def heartbeat(self, name: str, url: str, session_ids: Iterable[int]) -> None:
        """This node is alive at `url` carrying `session_ids` (one attempt)."""
        await self._ask("heartbeat",
                        {"name": name, "url": url, "session_ids": sorted(session_ids)},
                        attempts=1)

    # ------------------------------------------------------------------ one question

    async def _ask(self, route: str, body: dict[str, Any], *,
                   attempts: int | None = None) -> Any:
        """The JSON answer (None for 204), or ControlUnavailable. Logs name the route,
        never the body (it may hold a stream key or a playback token)."""
        await self.start()
        assert self._http is not None
        # Every control process gets its turn before the question is given up.
        tries = max(attempts or self._attempts, len(self._bases))
        last = ""
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            base = self._bases[self._current]
            try:
                async with self._http.post(f"{base}/{route}", json=body,
                                           headers=self._headers) as response:
                    if response.status == 204:
                        return None
                    if response.status < 300:
                        return await response.json()
                    code = await _error_code(response)
                    if response.status < 500:
                        # The secret is wrong or the body refused: asking again cannot help.
                        raise ControlUnavailable(
                            f"the control plane refused {route}: {response.status} {code}")
                    last = f"{response.status} {code}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = type(exc).__name__
            self._current = (self._current + 1) % len(self._bases)
            log.debug("control plane: %s attempt %d of %d failed (%s)", route, attempt + 1,
                      tries, last)
        raise ControlUnavailable(
            f"the control plane did not answer {route} after {tries} attempt(s): {last}")


async def _error_code(response: aiohttp.ClientResponse) -> str:
    """The error code of an `{"error": {"code", ...}}` body, else ""."""
    try:
        body = await response.json()
        return str(body["error"]["code"])
    except (aiohttp.ClientError, ValueError, KeyError, TypeError):
        return ""


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)
