"""UploadQueue: strict order, retries without skipping ahead, the disk spool that survives a
storage outage and a restart, events, and callers never waiting on a slow storage.

Order and retries are checked against a fake storage that records every call; outages
against the real S3 backend talking to a moto server that is stopped and started again."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mediaserver.metrics import Metrics
from support.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, s3_server  # noqa: F401
from transcode.events import Event, SegmentStored, SpoolRefused, UploadFailed
from transcode.storage.backend import SizedKeys, Storage, StorageError
from transcode.storage.local import LocalStorage
from transcode.storage.s3 import S3Storage
from transcode.storage.spool_budget import SpoolBudget
from transcode.storage.upload_queue import MEMORY_MAX_BYTES, SpoolBusy, UploadQueue

Call = tuple[str, str, bytes]  # (operation, key or prefix, bytes of a put)
M3U8 = "application/vnd.apple.mpegurl"
TS = "video/mp2t"


@dataclass
class FakeStorage:
    """Records every attempt; `failures[key]` lists exceptions to raise, one per attempt."""

    attempts: list[Call] = field(default_factory=list)
    stored: list[Call] = field(default_factory=list)
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    gate: asyncio.Event | None = None  # when set up, puts wait until it opens

    async def _attempt(self, call: Call) -> None:
        self.attempts.append(call)
        if self.gate is not None and call[0] == "put":
            await self.gate.wait()
        pending = self.failures.get(call[1])
        if pending:
            raise pending.pop(0)
        self.stored.append(call)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._attempt(("put", key, data))

    async def put_file(self, key: str, path: str, content_type: str) -> None:
        raise AssertionError("the queue sends its spooled bytes with put")

    async def get(self, key: str) -> bytes | None:
        raise AssertionError("the queue never reads")

    async def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        raise AssertionError("the queue never reads")
        yield b""

    async def stream_range(
        self, key: str, start: int, length: int | None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        raise AssertionError("the queue never reads")
        yield b""

    async def size(self, key: str) -> int | None:
        raise AssertionError("the queue never reads")

    async def delete(self, key: str) -> None:
        await self._attempt(("delete", key, b""))

    async def delete_prefix(self, prefix: str) -> int:
        await self._attempt(("delete_prefix", prefix, b""))
        return 0

    async def list(self, prefix: str) -> list[str]:
        raise AssertionError("the queue never reads")

    async def list_sizes(self, prefix: str) -> SizedKeys:
        raise AssertionError("the queue never reads")

    async def close(self) -> None:
        pass


def spool_files(spool: Path, pattern: str = "*.op") -> list[str]:
    return sorted(p.name for p in spool.glob(pattern))


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until `condition` holds; a behaviour check, not a timing one. The
    bound is generous: a machine busy with other test runs can be slow to write files."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


async def test_operations_are_applied_in_order_and_retried_in_place(spool: Path) -> None:
    storage = FakeStorage(failures={
        "live/1/hd/00001.ts": [StorageError("down"), StorageError("still down")],
        "live/1/old.ts": [StorageError("down")],
        "live/1/hd/00002.ts": [RuntimeError("a bug, not an outage")],
    })
    events: list[Event] = []
    queue = UploadQueue(storage, spool, events=events.append, retry_initial=0.01, retry_max=0.02)
    await queue.start()
    queue.put("live/1/hd/00001.ts", b"seg1", TS)
    queue.put("live/1/hd/index.m3u8", b"v1", M3U8)
    queue.delete("live/1/old.ts")
    queue.put("live/1/hd/00002.ts", b"seg2", TS)
    queue.delete_prefix("live/9/")
    queue.put("live/1/hd/index.m3u8", b"v2", M3U8)
    assert queue.pending == 6
    assert await queue.flush(timeout=20)
    assert queue.pending == 0

    submitted: list[Call] = [
        ("put", "live/1/hd/00001.ts", b"seg1"),
        ("put", "live/1/hd/index.m3u8", b"v1"),
        ("delete", "live/1/old.ts", b""),
        ("put", "live/1/hd/00002.ts", b"seg2"),
        ("delete_prefix", "live/9/", b""),
        ("put", "live/1/hd/index.m3u8", b"v2"),
    ]
    assert storage.stored == submitted
    # A failing operation is retried before anything after it is even tried.
    assert storage.attempts == [
        submitted[0], submitted[0], submitted[0],
        submitted[1],
        submitted[2], submitted[2],
        submitted[3], submitted[3],
        submitted[4],
        submitted[5],
    ]
    failed = [e for e in events if isinstance(e, UploadFailed)]
    assert [e.key for e in failed] == [
        "live/1/hd/00001.ts", "live/1/hd/00001.ts", "live/1/old.ts", "live/1/hd/00002.ts"
    ]
    assert "still down" in failed[1].error
    assert "a bug, not an outage" in failed[3].error
    stored = [e for e in events if isinstance(e, SegmentStored)]
    assert [(e.key, e.size) for e in stored] == [
        ("live/1/hd/00001.ts", 4), ("live/1/hd/index.m3u8", 2),
        ("live/1/hd/00002.ts", 4), ("live/1/hd/index.m3u8", 2),
    ]
    assert all(e.seconds >= 0 for e in stored)
    assert spool_files(spool) == []
    assert await queue.close(timeout=5)


async def test_bad_keys_are_refused_at_submission(spool: Path) -> None:
    queue = UploadQueue(FakeStorage(), spool)
    await queue.start()
    for key in ["../x", "/abs", "a//b", ""]:
        with pytest.raises(ValueError):
            queue.put(key, b"x", TS)
        with pytest.raises(ValueError):
            queue.delete(key)
    with pytest.raises(ValueError):
        queue.delete_prefix("")  # would wipe the whole store
    assert queue.pending == 0
    await queue.close(timeout=5)


async def test_a_slow_storage_never_blocks_callers(spool: Path) -> None:
    storage = FakeStorage(gate=asyncio.Event())
    queue = UploadQueue(storage, spool)
    await queue.start()
    segment = bytes(100_000)
    for n in range(40):
        queue.put(f"live/2/hd/{n:05d}.ts", segment, TS)
    # Storage is stuck on the first put, yet every put returned and reached the spool.
    await eventually(lambda: len(spool_files(spool)) == 40, "all puts spooled")
    # A file is renamed into place before its batch is synced and handed to the sender.
    await eventually(lambda: bool(storage.attempts), "the first put tried")
    assert storage.attempts == [("put", "live/2/hd/00000.ts", segment)]
    assert queue.pending == 40
    assert not await queue.flush(timeout=0.05)
    assert storage.gate is not None
    storage.gate.set()
    assert await queue.flush(timeout=20)
    assert [c[1] for c in storage.stored] == [f"live/2/hd/{n:05d}.ts" for n in range(40)]
    assert spool_files(spool) == []
    await queue.close(timeout=5)


async def test_consecutive_puts_of_one_key_send_only_the_newest(spool: Path) -> None:
    storage = FakeStorage(gate=asyncio.Event())
    queue = UploadQueue(storage, spool)
    await queue.start()
    queue.put("live/3/hd/00001.ts", b"seg1", TS)
    queue.put("live/3/hd/index.m3u8", b"v1", M3U8)
    queue.put("live/3/hd/index.m3u8", b"v2", M3U8)
    queue.put("live/3/hd/index.m3u8", b"v3", M3U8)
    queue.put("live/3/hd/00002.ts", b"seg2", TS)
    queue.put("live/3/hd/index.m3u8", b"v4", M3U8)
    await eventually(lambda: len(spool_files(spool)) == 6, "all puts spooled")
    assert storage.gate is not None
    storage.gate.set()
    assert await queue.flush(timeout=20)
    # v1 and v2 are skipped; v4 is not merged into v3: the segment between stays between.
    assert storage.stored == [
        ("put", "live/3/hd/00001.ts", b"seg1"),
        ("put", "live/3/hd/index.m3u8", b"v3"),
        ("put", "live/3/hd/00002.ts", b"seg2"),
        ("put", "live/3/hd/index.m3u8", b"v4"),
    ]
    assert spool_files(spool) == []
    await queue.close(timeout=5)


async def test_a_failing_event_sink_does_not_stop_uploads(spool: Path) -> None:
    def broken_sink(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    storage = FakeStorage(failures={"live/4/a.ts": [StorageError("down")]})
    queue = UploadQueue(storage, spool, events=broken_sink, retry_initial=0.01)
    await queue.start()
    queue.put("live/4/a.ts", b"a", TS)
    queue.put("live/4/b.ts", b"b", TS)
    assert await queue.flush(timeout=20)
    assert [c[1] for c in storage.stored] == ["live/4/a.ts", "live/4/b.ts"]
    await queue.close(timeout=5)


@pytest.fixture
async def s3(s3_server: S3Server) -> AsyncIterator[S3Storage]:  # noqa: F811
    store = S3Storage(s3_server.endpoint, ACCESS_KEY, SECRET_KEY, "uploads", timeout=1.0)
    yield store
    await store.close()


async def test_an_outage_loses_nothing_and_keeps_order(
    s3_server: S3Server, s3: S3Storage, spool: Path  # noqa: F811
) -> None:
    events: list[Event] = []
    queue = UploadQueue(s3, spool, events=events.append, retry_initial=0.05, retry_max=0.2)
    await queue.start()
    queue.put("live/5/hd/00001.ts", b"seg1", TS)
    assert await queue.flush(timeout=20)
    assert await s3.get("live/5/hd/00001.ts") == b"seg1"

    s3_server.stop()
    try:
        queue.put("live/5/hd/00002.ts", b"seg2", TS)
        queue.put("live/5/hd/index.m3u8", b"v1", M3U8)
        queue.put("recordings/5/part1.ts", b"rec", TS)
        queue.put("live/5/hd/gone.ts", b"gone", TS)
        queue.delete("live/5/hd/gone.ts")
        queue.put("live/6/hd/00001.ts", b"other stream", TS)
        queue.delete_prefix("live/6/")
        queue.put("live/6/hd/00002.ts", b"after the cleanup", TS)
        queue.put("live/5/hd/00003.ts", b"seg3", TS)
        queue.put("live/5/hd/index.m3u8", b"v2", M3U8)
        await eventually(lambda: len(spool_files(spool)) == 10, "everything spooled")
        await eventually(
            lambda: any(isinstance(e, UploadFailed) for e in events), "a failure reported"
        )
        assert not await queue.flush(timeout=0.2)
        assert queue.pending == 10
    finally:
        s3_server.start()

    assert await queue.flush(timeout=30)
    # The restarted moto server forgot what it held before: only the queued work is there.
    assert await s3.list("") == [
        "live/5/hd/00002.ts", "live/5/hd/00003.ts", "live/5/hd/index.m3u8",
        "live/6/hd/00002.ts", "recordings/5/part1.ts",
    ]
    assert await s3.get("live/5/hd/index.m3u8") == b"v2"
    assert await s3.get("live/6/hd/00002.ts") == b"after the cleanup"
    assert await s3.get("live/5/hd/00003.ts") == b"seg3"
    stored = [e.key for e in events if isinstance(e, SegmentStored)]
    assert stored == [
        "live/5/hd/00001.ts", "live/5/hd/00002.ts", "live/5/hd/index.m3u8",
        "recordings/5/part1.ts", "live/5/hd/gone.ts", "live/6/hd/00001.ts",
        "live/6/hd/00002.ts", "live/5/hd/00003.ts", "live/5/hd/index.m3u8",
    ]
    assert spool_files(spool) == []
    assert await queue.close(timeout=5)


async def test_a_new_queue_resends_what_the_spool_holds(
    s3_server: S3Server, spool: Path  # noqa: F811
) -> None:
    first_storage = S3Storage(s3_server.endpoint, ACCESS_KEY, SECRET_KEY, "resend", timeout=1.0)
    s3_server.stop()
    try:
        first = UploadQueue(first_storage, spool, retry_initial=0.05, retry_max=0.2)
        await first.start()
        first.put("live/8/hd/00001.ts", b"seg1", TS)
        first.put("live/8/hd/index.m3u8", b"v1", M3U8)
        first.put("live/8/hd/00002.ts", b"seg2", TS)
        first.delete("live/8/hd/00001.ts")
        first.put("live/8/hd/index.m3u8", b"v2", M3U8)
        # Storage is down: close gives up waiting, and the work stays on disk.
        assert not await first.close(timeout=0.3)
        await first_storage.close()
    finally:
        s3_server.start()
    assert len(spool_files(spool)) == 5
    # A write cut short by a crash is not a queued operation.
    (spool / "000000000099.tmp").write_bytes(b'{"op": "put", "key": "live/8/half')

    storage = S3Storage(s3_server.endpoint, ACCESS_KEY, SECRET_KEY, "resend", timeout=1.0)
    events: list[Event] = []
    second = UploadQueue(storage, spool, events=events.append, retry_initial=0.05)
    # Queued before start: sent after what the spool holds.
    second.put("live/8/hd/00003.ts", b"seg3", TS)
    try:
        await second.start()
        assert second.pending == 6
        assert await second.flush(timeout=30)
        assert await storage.list("live/8/") == [
            "live/8/hd/00002.ts", "live/8/hd/00003.ts", "live/8/hd/index.m3u8"
        ]
        assert await storage.get("live/8/hd/index.m3u8") == b"v2"
        assert [e.key for e in events if isinstance(e, SegmentStored)] == [
            "live/8/hd/00001.ts", "live/8/hd/index.m3u8", "live/8/hd/00002.ts",
            "live/8/hd/index.m3u8", "live/8/hd/00003.ts",
        ]
        assert spool_files(spool, "*") == []  # the cut-short write is cleared away too
    finally:
        await second.close(timeout=5)
        await storage.close()


async def test_one_put_under_several_keys_is_spooled_once(spool: Path) -> None:
    """A live segment that is also part of the recording: one spool file, both keys
    stored in order, and a queue restarted on the spool still stores both."""
    storage = FakeStorage(gate=asyncio.Event())
    queue = UploadQueue(storage, spool)
    await queue.start()
    segment = bytes(50_000)
    queue.put("live/5/hd/000001.ts", segment, TS, also=("recordings/5/hd/000001.ts",))
    await eventually(lambda: len(spool_files(spool)) == 1, "one spool file")
    await queue.close(timeout=0.05)  # storage stuck: the operation stays spooled

    again = FakeStorage()
    queue = UploadQueue(again, spool)
    await queue.start()
    assert await queue.flush(timeout=20)
    assert again.stored == [("put", "live/5/hd/000001.ts", segment),
                            ("put", "recordings/5/hd/000001.ts", segment)]
    assert spool_files(spool) == []
    with pytest.raises(ValueError):
        queue.put("live/5/x.ts", b"", TS, also=("../escape",))
    await queue.close(timeout=5)


# -- a spool that fills up or cannot be written: bounded, refused, reported -----------------


class DownLocalStorage(LocalStorage):
    """A local store that cannot be written (its disk failed, say)."""

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        raise StorageError("disk failed")


@pytest.fixture(params=["local", "s3"])
async def down_storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Storage]:
    """A storage that is down: a failing local folder, or a stopped S3 (moto) server."""
    if request.param == "local":
        yield DownLocalStorage(tmp_path / "media")
        return
    server: S3Server = request.getfixturevalue("s3_server")
    store = S3Storage(server.endpoint, ACCESS_KEY, SECRET_KEY, "down", timeout=1.0)
    server.stop()
    try:
        yield store
    finally:
        await store.close()
        server.start()


def replace_with_file(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.write_bytes(b"not a folder")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


def held_in_memory(queue: UploadQueue) -> int:
    """Bytes of media the queue holds in memory (not RSS: what it keeps referenced)."""
    return sum(len(op.data or b"") for op in queue._unspooled)


def refusals(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("academia_spool_refusals_total",
                                              {"reason": reason})
    return value or 0.0


async def test_an_unwritable_spool_refuses_media_instead_of_holding_it(
    down_storage: Storage, spool: Path
) -> None:
    """The spool folder is gone (a file stands in its place) while storage is down: 200
    puts of 1 MB must not all stay in memory; they are refused, with an event and a metric."""
    events: list[Event] = []
    metrics = Metrics()

    def sink(event: Event) -> None:
        events.append(event)
        metrics.on_event(event)

    queue = UploadQueue(down_storage, spool, events=sink, retry_initial=0.01, retry_max=0.05)
    await queue.start()
    queue.put("live/9/hd/000000.ts", b"x", TS)
    await eventually(lambda: len(spool_files(spool)) == 1, "the first put spooled")
    replace_with_file(spool)  # the spool folder is gone for good
    queue.put("live/9/hd/000001.ts", b"y", TS)
    await eventually(lambda: any(isinstance(e, UploadFailed) and "spool" in e.error
                                 for e in events), "the spool write failed")
    segment = bytes(1024 * 1024)
    peak = 0
    for n in range(2, 202):
        queue.put(f"live/9/hd/{n:06d}.ts", segment, TS)
        peak = max(peak, held_in_memory(queue))
        if n % 20 == 0:
            await asyncio.sleep(0)
    assert peak <= MEMORY_MAX_BYTES  # not 200 MB
    refused = [e for e in events if isinstance(e, SpoolRefused)]
    assert refused and all(e.reason == "unwritable" for e in refused)
    assert refused[-1].key == "live/9/hd/000201.ts"
    assert refusals(metrics, "unwritable") == len(refused)
    await queue.close(timeout=0.1)


async def test_a_full_spool_refuses_media_and_never_passes_its_cap(
    down_storage: Storage, spool: Path
) -> None:
    """Storage is down and the spool has a small cap: what fits is kept on disk, the
    rest is refused and reported; nothing beyond the cap is held on disk or in memory."""
    events: list[Event] = []
    metrics = Metrics()

    def sink(event: Event) -> None:
        events.append(event)
        metrics.on_event(event)

    budget = SpoolBudget(5 * 1024 * 1024)
    queue = UploadQueue(down_storage, spool, events=sink, retry_initial=0.01,
                        retry_max=0.05, budget=budget)
    await queue.start()
    segment = bytes(1024 * 1024)
    accepted = [queue.put(f"live/9/hd/{n:06d}.ts", segment, TS) for n in range(20)]
    assert accepted == [True] * 4 + [False] * 16
    await eventually(lambda: held_in_memory(queue) == 0, "what fits is spooled")
    assert len(spool_files(spool)) == 4
    on_disk = folder_bytes(spool)
    assert on_disk <= budget.max_bytes and budget.used <= budget.max_bytes
    refused = [e for e in events if isinstance(e, SpoolRefused)]
    assert [e.key for e in refused] == [f"live/9/hd/{n:06d}.ts" for n in range(4, 20)]
    assert all(e.reason == "full" for e in refused)
    assert refusals(metrics, "full") == 16
    assert not await queue.close(timeout=0.1)
    assert len(spool_files(spool)) == 4  # kept for the next queue, nothing lost


async def test_spool_files_are_fsynced_before_they_are_sent(
    spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spooled operation counts as written only once its file and the folder holding
    it are on disk (fsync), not just in the page cache."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    seen_at_put: list[list[str]] = []

    class Checking(FakeStorage):
        async def put(self, key: str, data: bytes, content_type: str) -> None:
            seen_at_put.append(list(synced))
            await super().put(key, data, content_type)

    queue = UploadQueue(Checking(), spool)
    await queue.start()
    queue.put("live/1/hd/000000.ts", b"seg", TS)
    assert await queue.flush(timeout=20)
    await queue.close(timeout=5)
    assert len(seen_at_put) == 1
    folder = str(spool)  # tmp_path is already absolute and resolved
    assert f"{folder}/000000000001.tmp" in seen_at_put[0]  # the file's bytes, before its rename
    assert folder in seen_at_put[0]  # the rename itself


async def test_one_spool_is_sent_by_one_queue_at_a_time(spool: Path) -> None:
    """Two queues on one spool folder (a restart's pending-uploads pass and the session's
    new live queue): the second waits for the first to hand over; nothing is sent twice."""
    stuck = FakeStorage(gate=asyncio.Event())
    left = UploadQueue(stuck, spool)
    await left.start()
    for n in range(5):
        left.put(f"live/1/hd/{n:06d}.ts", b"x", TS)
    await eventually(lambda: len(spool_files(spool)) == 5, "all spooled")
    assert not await left.close(timeout=0.05)  # storage stuck: left in the spool

    storage = FakeStorage(gate=asyncio.Event())
    first, second = UploadQueue(storage, spool), UploadQueue(storage, spool)
    await first.start()
    second.put("live/1/hd/000005.ts", b"y", TS)  # the live queue's own, after the old ones
    starting = asyncio.create_task(second.start())
    await asyncio.sleep(0.5)
    assert not starting.done()  # the spool is not its own yet
    with pytest.raises(SpoolBusy):
        await UploadQueue(storage, spool).start(wait=False)
    assert storage.gate is not None
    storage.gate.set()
    assert await first.close(timeout=20)
    await asyncio.wait_for(starting, 20)
    assert await second.flush(timeout=20)
    assert [c[1] for c in storage.stored] == [f"live/1/hd/{n:06d}.ts" for n in range(6)]
    await second.close(timeout=5)
def _spool_with_a_damaged_file(spool: Path, header: bytes) -> None:
    spool.mkdir(parents=True)
    (spool / "000000000001.op").write_bytes(header + b"\nlost")
    (spool / "000000000002.op").write_bytes(
        b'{"op": "put", "key": "live/6/hd/000002.ts", "content_type": "video/mp2t"}\nkept')


@pytest.mark.parametrize("header", [
    b'{"key": "live/6/hd/000001.ts"}',  # found by scripts/fuzz (storage_keys): KeyError
    b'["put", "live/6/hd/000001.ts"]',
    b'{"op": ["put"], "key": "live/6/hd/000001.ts"}',
    b'{"op": "put", "key": "live/6/hd/000001.ts", "also": [7]}',
    b"[" * 100_000,
])
async def test_a_damaged_spool_header_is_set_aside_not_fatal(spool: Path, header: bytes) -> None:
    """Whatever JSON a damaged spool file starts with, a new queue keeps it aside as .bad
    and still sends the rest (before: TypeError/KeyError/RecursionError out of start)."""
    _spool_with_a_damaged_file(spool, header)
    storage = FakeStorage()
    queue = UploadQueue(storage, spool)
    await queue.start()
    assert await queue.flush(timeout=20)
    assert storage.stored == [("put", "live/6/hd/000002.ts", b"kept")]
    assert spool_files(spool, "*.bad") == ["000000000001.bad"]
    await queue.close(timeout=5)
