"""Stand-ins around HlsDelivery for its tests: a control port answering playback per
token (counting its calls), a settable clock, and the real LocalStorage with a record
of every key it was asked to read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from mediaserver.control_port import (
    PlaybackAllowed,
    PlaybackDecision,
    PlaybackRefused,
    PublishDecision,
)
from transcode.storage.backend import StorageError
from transcode.storage.local import LocalStorage

__all__ = ["FakeClock", "FakeControl", "SpyStorage"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeControl:
    """Answers authorize_playback from a table of token -> answer, counting calls. An
    unknown token is refused as `bad_token`."""

    def __init__(self, answers: dict[str, PlaybackDecision | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[int, str]] = []
        self.gate: asyncio.Event | None = None

    async def authorize_playback(self, session_id: int, token: str) -> PlaybackDecision:
        self.calls.append((session_id, token))
        if self.gate is not None:
            await self.gate.wait()
        answer = self.answers.get(token, PlaybackRefused("bad_token"))
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, PlaybackAllowed) and answer.session_id != session_id:
            return PlaybackRefused("wrong_session")
        return answer

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        raise NotImplementedError

    async def session_goes_live(self, course_id: int) -> int:
        raise NotImplementedError

    async def end_session(self, course_id: int, session_id: int | None = None) -> None:
        raise NotImplementedError

    async def recording_ready(self, session_id: int) -> None:
        raise NotImplementedError


class SpyStorage(LocalStorage):
    """LocalStorage that remembers every key it was asked to read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read_keys: list[str] = []
        self.body_reads: list[str] = []
        self.fail = False

    def _touch(self, key: str) -> None:
        self.read_keys.append(key)
        if self.fail:
            raise StorageError("storage is down")

    async def get(self, key: str) -> bytes | None:
        self._touch(key)
        self.body_reads.append(key)
        return await super().get(key)

    async def size(self, key: str) -> int | None:
        self._touch(key)
        return await super().size(key)

    async def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        self._touch(key)
        self.body_reads.append(key)
        async for chunk in super().stream(key, chunk_size):
            yield chunk
