"""One open chat socket: a bounded queue of outgoing frames drained by its own writer task.

Nobody ever waits on a reader. `send` only queues (it is not a coroutine); the writer
task alone awaits the socket. A reader that falls behind (its queue full, or one send
taking longer than the send timeout) is dropped: closed with a close code and reason if
the peer takes the close frame within a moment, its connection aborted otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass
from socket import SO_LINGER, SOL_SOCKET
from typing import Any

from aiohttp import WSCloseCode, web

from control.http.responses import dumps
from control.models import Role

# Close codes the chat uses beyond the standard ones (4000-4999 are the application's).
CLOSE_TOO_SLOW = int(WSCloseCode.POLICY_VIOLATION)  # 1008: reconnecting is fine
CLOSE_ACCESS_GONE = 4403  # access was withdrawn: reconnecting will be refused
# How long a dropped peer gets to take the close frame before its connection is cut.
CLOSE_GRACE_SECONDS = 2.0
TOO_SLOW = "too slow: the chat moved on without you; reconnect"
_LINGER_OFF = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets at once


@dataclass(frozen=True)
class Grant:
    """What the socket was opened with, checked again while it stays open."""

    user_id: int | None  # None: an anonymous reader
    token_id: int | None  # the sign-in token the ticket was issued under
    role: Role | None


@dataclass(frozen=True)
class Outgoing:
    message_id: int | None  # set for "message" frames: a joiner skips repeats by it
    text: str


def outgoing(frame: dict[str, Any]) -> Outgoing:
    """A frame serialised once, however many sockets it goes to."""
    message_id = frame["id"] if frame.get("type") == "message" else None
    return Outgoing(message_id, dumps(frame))


class ChatConnection:
    def __init__(
        self,
        socket: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        session_id: int,
        course_id: int,
        grant: Grant,
        username: str,
        *,
        queue_frames: int,
        send_timeout: float,
    ) -> None:
        self.socket = socket
        self.transport = transport
        self.session_id = session_id
        self.course_id = course_id
        self.grant = grant
        self.username = username
        self._send_timeout = send_timeout
        # Frames broadcast while the history is still being sent wait here too, so a new
        # joiner sees every message once and in order.
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(maxsize=max(1, queue_frames))
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.dropped: str | None = None  # why the server closed it, once it has

    @property
    def user_id(self) -> int | None:
        return self.grant.user_id

    def send(self, frame: dict[str, Any] | Outgoing) -> None:
        """Queue a frame; drop the socket if its queue is full. Never waits."""
        if self.dropped is not None:
            return
        item = frame if isinstance(frame, Outgoing) else outgoing(frame)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.drop(CLOSE_TOO_SLOW, TOO_SLOW)

    def start(self, history: list[dict[str, Any]]) -> None:
        """Write the history, then what was queued meanwhile (minus repeats), then live."""
        self._writer = asyncio.create_task(self._write_all(history))

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def _write_all(self, history: list[dict[str, Any]]) -> None:
        for frame in history:
            if not await self._write(dumps(frame)):
                return
        seen = max((f["id"] for f in history), default=0)
        while True:
            item = await self._queue.get()
            if item.message_id is not None and item.message_id <= seen:
                continue
            if not await self._write(item.text):
                return

    async def _write(self, text: str) -> bool:
        if self.dropped is not None or self.socket.closed:
            return False
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that races a finished send, and stop() would wait forever.
            async with asyncio.timeout(self._send_timeout):
                await self.socket.send_str(text)
        except TimeoutError:
            self.drop(CLOSE_TOO_SLOW, TOO_SLOW)
            return False
        except (ConnectionError, RuntimeError):
            # The peer vanished mid-send: its own handler notices and leaves.
            return False
        return True

    def drop(self, code: int, reason: str) -> None:
        """Stop sending and close the socket, without waiting for the peer."""
        if self.dropped is not None:
            return
        self.dropped = reason
        while not self._queue.empty():  # what it would have been sent is freed now
            self._queue.get_nowait()
        # The writer is left alone: it sends nothing more, and a send it is stuck in
        # ends when the connection is cut. (Cancelling it mid-send would cancel the
        # drain future aiohttp shares between all writers of a connection.)
        self._closer = asyncio.create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        # A reader that took nothing for a while will not take the close frame either:
        # give it a moment, then cut the connection (the handler then ends and leaves).
        closed = False
        try:
            async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                await self.socket.close(code=code, message=reason.encode()[:120])
            closed = True
        except asyncio.CancelledError:
            # Also what a send cancelled elsewhere leaves in aiohttp's shared drain
            # future; only a cancellation of this task itself stops the cut below.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
        except Exception:  # the peer is gone or broken: cut it all the same
            pass
        self._cut(hard=not closed)

    def _cut(self, *, hard: bool) -> None:
        transport = self.transport
        if transport is None:
            return
        if hard:
            # A reset, not a FIN: otherwise the kernel keeps the unsent megabytes of a
            # peer that reads nothing, trickling them out for minutes.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(SOL_SOCKET, SO_LINGER, _LINGER_OFF)
        transport.abort()

    async def closed(self) -> None:
        """Wait until a drop has finished closing (at most about CLOSE_GRACE_SECONDS)."""
        if self._closer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._closer)

    async def stop(self) -> None:
        """The handler is ending: the writer stops; a close under way completes."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.closed()
