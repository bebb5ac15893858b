"""The storage behaviour table: what every Storage backend must do, one coroutine per
behaviour, run by test_storage_local against LocalStorage and by test_storage_s3 against S3."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from transcode.storage.backend import Storage

Behaviour = Callable[[Storage, Path], Awaitable[None]]
# "live/4\n" was accepted before (found by scripts/fuzz, storage_keys target).
BAD_KEYS = ["../x", "/abs", "a//b", "", "a/../b", "./a", "a/", "a b", "a\\b", "live/\n",
            "live/4\n"]
FIVE_MB = 5 * 1024 * 1024


async def _read_stream(storage: Storage, key: str, chunk_size: int = 1 << 20) -> list[bytes]:
    return [chunk async for chunk in storage.stream(key, chunk_size)]


async def put_get_size(storage: Storage, tmp_path: Path) -> None:
    await storage.put("live/1/hd/00001.ts", b"segment one", "video/mp2t")
    assert await storage.get("live/1/hd/00001.ts") == b"segment one"
    assert await storage.size("live/1/hd/00001.ts") == len(b"segment one")
    assert await storage.get("live/1/hd/00002.ts") is None
    assert await storage.size("live/1/hd/00002.ts") is None
    # A "folder" is not an object.
    assert await storage.get("live/1") is None
    assert await storage.size("live/1") is None


async def put_replaces(storage: Storage, tmp_path: Path) -> None:
    await storage.put("live/1/index.m3u8", b"#EXTM3U\nold\n", "application/vnd.apple.mpegurl")
    await storage.put("live/1/index.m3u8", b"#EXTM3U\n", "application/vnd.apple.mpegurl")
    assert await storage.get("live/1/index.m3u8") == b"#EXTM3U\n"
    assert await storage.size("live/1/index.m3u8") == len(b"#EXTM3U\n")
    assert await storage.list("live/1/") == ["live/1/index.m3u8"]


async def empty_object(storage: Storage, tmp_path: Path) -> None:
    await storage.put("live/1/empty.ts", b"", "video/mp2t")
    assert await storage.get("live/1/empty.ts") == b""
    assert await storage.size("live/1/empty.ts") == 0
    assert await _read_stream(storage, "live/1/empty.ts") == []


async def stream_in_chunks(storage: Storage, tmp_path: Path) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    await storage.put("recordings/3/source.flv", data, "video/x-flv")
    chunks = await _read_stream(storage, "recordings/3/source.flv", chunk_size=4096)
    assert b"".join(chunks) == data
    assert len(chunks) == 3
    with pytest.raises(KeyError):
        await _read_stream(storage, "recordings/3/missing.flv")


async def list_is_sorted_and_by_prefix(storage: Storage, tmp_path: Path) -> None:
    keys = ["live/1/sd/00002.ts", "live/1/hd/00001.ts", "live/10/hd/00001.ts",
            "live/1/master.m3u8", "recordings/1/source.flv"]
    for key in keys:
        await storage.put(key, key.encode(), "application/octet-stream")
    assert await storage.list("live/1/") == sorted(k for k in keys if k.startswith("live/1/"))
    assert await storage.list("live/1") == sorted(k for k in keys if k.startswith("live/1"))
    assert await storage.list("live/1/hd/0000") == ["live/1/hd/00001.ts"]
    assert await storage.list("") == sorted(keys)
    assert await storage.list("nothing/") == []


async def delete_one(storage: Storage, tmp_path: Path) -> None:
    await storage.put("live/2/a.ts", b"a", "video/mp2t")
    await storage.put("live/2/b.ts", b"b", "video/mp2t")
    await storage.delete("live/2/a.ts")
    assert await storage.get("live/2/a.ts") is None
    assert await storage.list("live/2/") == ["live/2/b.ts"]
    await storage.delete("live/2/a.ts")  # already gone: not an error
    await storage.delete("never/was.ts")


async def delete_prefix_keeps_recordings(storage: Storage, tmp_path: Path) -> None:
    live = ["live/7/master.m3u8", "live/7/hd/00001.ts", "live/7/hd/00002.ts"]
    kept = ["recordings/7/hd/00001.ts", "recordings/7/source.flv", "live/70/hd/00001.ts"]
    for key in live + kept:
        await storage.put(key, b"x", "application/octet-stream")
    assert await storage.delete_prefix("live/7/") == len(live)
    assert await storage.list("live/7/") == []
    assert await storage.list("") == sorted(kept)
    assert await storage.delete_prefix("live/7/") == 0


async def bad_keys_refused(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "bad-key-source.bin"
    source.write_bytes(b"x")
    for key in BAD_KEYS:
        with pytest.raises(ValueError):
            await storage.put(key, b"x", "text/plain")
        with pytest.raises(ValueError):
            await storage.put_file(key, str(source), "text/plain")
        with pytest.raises(ValueError):
            await storage.get(key)
        with pytest.raises(ValueError):
            await storage.size(key)
        with pytest.raises(ValueError):
            await storage.delete(key)
        with pytest.raises(ValueError):
            await _read_stream(storage, key)
    for prefix in ["../", "/abs/", "a//", "a/../"]:
        with pytest.raises(ValueError):
            await storage.list(prefix)
        with pytest.raises(ValueError):
            await storage.delete_prefix(prefix)
    assert await storage.list("") == []


async def large_file_put_and_stream(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "recording.mp4"
    data = os.urandom(FIVE_MB)
    source.write_bytes(data)
    await storage.put_file("recordings/9/recording.mp4", str(source), "video/mp4")
    assert await storage.size("recordings/9/recording.mp4") == FIVE_MB
    digest = hashlib.sha256()
    count = 0
    async for chunk in storage.stream("recordings/9/recording.mp4", chunk_size=1 << 20):
        assert 0 < len(chunk) <= 1 << 20
        digest.update(chunk)
        count += 1
    assert digest.digest() == hashlib.sha256(data).digest()
    assert count >= 5


async def byte_ranges(storage: Storage, tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    await storage.put("recordings/3/recording.mp4", data, "video/mp4")

    async def read(start: int, length: int | None, chunk_size: int = 1000) -> bytes:
        return b"".join([chunk async for chunk in storage.stream_range(
            "recordings/3/recording.mp4", start, length, chunk_size)])

    assert await read(0, 10) == data[:10]
    assert await read(5000, 2500) == data[5000:7500]
    assert await read(10_000, None) == data[10_000:]
    assert await read(len(data) - 3, 100) == data[-3:]
    with pytest.raises(KeyError):
        [c async for c in storage.stream_range(
            "recordings/3/missing.mp4", 0, 10)]


async def sizes_by_prefix(storage: Storage, tmp_path: Path) -> None:
    """One listing gives every object's size: what GET /storage and retention measure."""
    await storage.put("recordings/5/hd/000001.m4s", b"x" * 1000, "video/iso.segment")
    await storage.put("recordings/5/recording.mp4", b"m" * 2500, "video/mp4")
    await storage.put("recordings/50/sd/000001.m4s", b"", "video/iso.segment")
    await storage.put("live/5/x.ts", b"abc", "video/mp2t")
    assert await storage.list_sizes("recordings/5/") == [
        ("recordings/5/hd/000001.m4s", 1000), ("recordings/5/recording.mp4", 2500)]
    assert await storage.list_sizes("") == [
        ("live/5/x.ts", 3), ("recordings/5/hd/000001.m4s", 1000),
        ("recordings/5/recording.mp4", 2500), ("recordings/50/sd/000001.m4s", 0)]
    assert await storage.list_sizes("resources/") == []
    await storage.delete_prefix("recordings/5/")
    assert [k for k, _ in await storage.list_sizes("recordings/")] == [
        "recordings/50/sd/000001.m4s"]


BEHAVIOURS: list[Behaviour] = [
    put_get_size,
    put_replaces,
    empty_object,
    stream_in_chunks,
    list_is_sorted_and_by_prefix,
    delete_one,
    delete_prefix_keeps_recordings,
    bad_keys_refused,
    large_file_put_and_stream,
    byte_ranges,
    sizes_by_prefix,
]
