"""Storage in a local folder: object `key` is the file `root/key`.

Writes go to a temporary file beside the target and are renamed over it, so a reader
(the HLS server, another process) sees the old object or the new one, never a partial
file. Temporary names contain '~', which no valid key does, so listings skip them.
Every file operation runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from transcode.storage.backend import SizedKeys, StorageError, check_key

__all__ = ["LocalStorage"]

_T = TypeVar("_T")


def _check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key or the start of one (a trailing '/' allowed)."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _raise_unless_missing(error: OSError) -> None:
    # A folder that is not there holds no keys; any other failure (permissions) is real.
    if not isinstance(error, (FileNotFoundError, NotADirectoryError)):
        raise error


class LocalStorage:
    """The `Storage` protocol over a folder of the local file system."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    async def _run(self, func: Callable[[], _T]) -> _T:
        """Run blocking file work in a thread; OS failures become StorageError."""
        try:
            return await asyncio.to_thread(func)
        except OSError as exc:
            raise StorageError(f"local storage under {self.root}: {exc}") from exc

    @staticmethod
    def _replace_with(path: Path, write: Callable[[Path], object]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{path.name}~{uuid.uuid4().hex}~tmp")
        try:
            write(temp)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        await self._run(lambda: self._replace_with(path, lambda tmp: tmp.write_bytes(data)))

    async def put_file(self, key: str, path: str, content_type: str) -> None:
        target = self._path(key)

        def copy(tmp: Path) -> None:
            shutil.copyfile(path, tmp)

        await self._run(lambda: self._replace_with(target, copy))

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)

        def read() -> bytes | None:
            try:
                return path.read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None

        return await self._run(read)

    def stream(self, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        return self.stream_range(key, 0, None, chunk_size)

    async def stream_range(
        self, key: str, start: int, length: int | None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        path = self._path(key)

        def open_file() -> BinaryIO | None:
            try:
                handle = path.open("rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
            handle.seek(start)
            return handle

        handle = await self._run(open_file)
        if handle is None:
            raise KeyError(key)
        left = length
        try:
            while left is None or left > 0:
                want = chunk_size if left is None else min(chunk_size, left)
                chunk = await self._run(functools.partial(handle.read, want))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def size(self, key: str) -> int | None:
        path = self._path(key)

        def stat() -> int | None:
            try:
                if not path.is_file():
                    return None
                return path.stat().st_size
            except (FileNotFoundError, NotADirectoryError):
                return None

        return await self._run(stat)

    async def delete(self, key: str) -> None:
        path = self._path(key)

        def remove() -> None:
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                pass

        await self._run(remove)

    def _keys(self, prefix: str) -> list[str]:
        # Walk only the deepest folder the prefix names, not the whole tree.
        folder, _, _ = _check_prefix(prefix).rpartition("/")
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        keys: list[str] = []
        for dirpath, _dirs, files in os.walk(start, onerror=_raise_unless_missing):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and "~" not in name:
                    keys.append(key)
        keys.sort()
        return keys

    def _prune_empty_folders(self, prefix: str) -> None:
        # A finished session's live/ folders would otherwise pile up, empty, forever.
        folder = prefix.rstrip("/").rpartition("/")[0] if not prefix.endswith("/") else prefix
        top = self.root.joinpath(*folder.strip("/").split("/")) if folder.strip("/") else None
        if top is None or not top.is_dir():
            return
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            with contextlib.suppress(OSError):  # not empty, or removed meanwhile
                os.rmdir(dirpath)

    async def list(self, prefix: str) -> list[str]:
        return await self._run(lambda: self._keys(prefix))

    async def list_sizes(self, prefix: str) -> SizedKeys:
        def measure() -> SizedKeys:
            sized: SizedKeys = []
            for key in self._keys(prefix):
                try:
                    sized.append((key, self._path(key).stat().st_size))
                except FileNotFoundError:
                    pass  # Deleted since the walk saw it: it holds no bytes now.
            return sized

        return await self._run(measure)

    async def delete_prefix(self, prefix: str) -> int:
        def remove_all() -> int:
            removed = 0
            for key in self._keys(prefix):
                try:
                    self._path(key).unlink()
                    removed += 1
                except FileNotFoundError:
                    pass  # Deleted meanwhile by someone else: already gone is fine.
            self._prune_empty_folders(prefix)
            return removed

        return await self._run(remove_all)

    async def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""
