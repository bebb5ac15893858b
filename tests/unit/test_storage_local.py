"""LocalStorage against the storage behaviour table (support/storage_behaviours.py), plus what
only a folder has: objects are plain files under the root, replaced atomically."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.storage_behaviours import BEHAVIOURS, Behaviour
from transcode.storage.backend import StorageError
from transcode.storage.local import LocalStorage


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[LocalStorage]:
    store = LocalStorage(tmp_path / "media")
    yield store
    await store.close()


@pytest.mark.parametrize("behaviour", BEHAVIOURS, ids=lambda b: b.__name__)
async def test_behaviour(storage: LocalStorage, tmp_path: Path, behaviour: Behaviour) -> None:
    await behaviour(storage, tmp_path)


async def test_objects_are_files_under_the_root(storage: LocalStorage) -> None:
    await storage.put("live/4/hd/00001.ts", b"seg", "video/mp2t")
    assert (storage.root / "live" / "4" / "hd" / "00001.ts").read_bytes() == b"seg"
    # A file dropped in by hand (ffmpeg writing straight to the folder) is an object too.
    (storage.root / "live" / "4" / "hd" / "00002.ts").write_bytes(b"seg2")
    assert await storage.get("live/4/hd/00002.ts") == b"seg2"


async def test_replace_is_atomic_for_readers(storage: LocalStorage, tmp_path: Path) -> None:
    await storage.put("live/5/index.m3u8", b"version 1", "application/vnd.apple.mpegurl")
    path = storage.root / "live" / "5" / "index.m3u8"
    with path.open("rb") as reader:
        # A reader that opened the old object keeps reading it whole: the new one is a
        # new file renamed over the name, never the old file rewritten in place.
        await storage.put("live/5/index.m3u8", b"version 2!", "application/vnd.apple.mpegurl")
        source = tmp_path / "v3"
        source.write_bytes(b"version 3")
        assert reader.read() == b"version 1"
    with path.open("rb") as reader:
        await storage.put_file("live/5/index.m3u8", str(source), "application/vnd.apple.mpegurl")
        assert reader.read() == b"version 2!"
    assert path.read_bytes() == b"version 3"
    # No temporary file is left beside it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.m3u8"]


async def test_a_failed_write_leaves_no_partial_file(storage: LocalStorage) -> None:
    with pytest.raises(StorageError):
        await storage.put_file("live/6/a.ts", "/nonexistent/source.ts", "video/mp2t")
    assert await storage.list("") == []
    assert [p.name for p in (storage.root / "live" / "6").iterdir()] == []


async def test_os_failures_are_storage_errors(tmp_path: Path) -> None:
    root = tmp_path / "not-a-folder"
    root.write_bytes(b"a file where the media folder should be")
    store = LocalStorage(root)
    with pytest.raises(StorageError):
        await store.put("live/1/a.ts", b"x", "video/mp2t")
    with pytest.raises(StorageError):
        await store.put_file("live/1/a.ts", str(root), "video/mp2t")


async def test_deleting_a_live_window_leaves_no_empty_folders(storage: LocalStorage) -> None:
    for key in ("live/4/hd/000001.ts", "live/4/sd/000001.ts", "recordings/4/hd/000001.ts"):
        await storage.put(key, b"x", "video/mp2t")
    await storage.delete_prefix("live/4/")
    assert not (storage.root / "live" / "4").exists()
    assert (storage.root / "recordings" / "4" / "hd" / "000001.ts").exists()
