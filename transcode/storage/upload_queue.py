"""The ordered, durable upload queue: the one way live media reaches storage.

`put`, `delete` and `delete_prefix` return at once (they are plain functions, callable from
sync code on the loop). Each operation is then:

1. written to the spool folder as one file, `<12-digit sequence>.op`: a JSON header line
   (operation, key, content type) followed by the object's bytes. Only this short step keeps
   the bytes in memory, so a storage outage costs disk, not RAM, and loses nothing. A file
   appears under its final name only once complete (written as `.tmp`, fsynced, renamed,
   and the folder fsynced): only then does the operation count as written.
2. applied to the storage strictly in submission order, one at a time: a segment is stored
   before the playlist that names it, a delete after the put before it. A failure retries
   the SAME operation with capped exponential backoff (nothing overtakes it), emitting
   `UploadFailed` per attempt; success emits `SegmentStored` (puts) and removes the file.

A put may name more keys for the same bytes (`also`): a segment that is both live and
part of the recording is spooled once and stored under each key, in order.

Playlists are rewritten every segment, so consecutive puts of the same key are coalesced:
only the newest is sent. That never lets an operation on another key overtake.

A queue started on a spool folder that still holds files (a crash, or `close` during an
outage) sends them first, in order. One spool folder belongs to one queue at a time: `start`
takes an exclusive lock on the folder (flock, so a crashed process never holds it) and
`close` hands it over; a second queue waits for it, or with `wait=False` gets SpoolBusy.

Nothing grows without bound. The bytes waiting (in memory or in the spool) are reserved
from a `SpoolBudget` shared by the node's queues; memory holds at most `memory_max_bytes`
not yet on disk. A put that does not fit, or that comes while the spool cannot be written,
is refused: `put` returns False and emits `SpoolRefused`, and its media is lost rather than
the whole node's memory or disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from transcode.events import Event, EventSink, SegmentStored, SpoolRefused, UploadFailed
from transcode.storage.backend import Storage, StorageError, check_key
from transcode.storage.spool_budget import SpoolBudget

__all__ = ["MEMORY_MAX_BYTES", "SpoolBusy", "UploadQueue"]

log = logging.getLogger(__name__)

OpKind = Literal["put", "delete", "delete_prefix"]
_KINDS: frozenset[str] = frozenset({"put", "delete", "delete_prefix"})
_SUFFIX = ".op"
_TEMP_SUFFIX = ".tmp"
_BAD_SUFFIX = ".bad"
# Repeated warnings for one ongoing outage are summarised at most this often.
WARN_INTERVAL_S = 10.0
# How long `close` lets the spool writer put what is still in memory on disk.
SPOOL_DRAIN_TIMEOUT_S = 10.0
# Bytes of operations a queue keeps in memory before the spool has them (a few seconds of
# a ladder's segments; more means the disk cannot keep up, and more puts are refused).
MEMORY_MAX_BYTES = 32 * 1024 * 1024
# What an operation costs beyond its bytes (header, key, bookkeeping), so that even puts
# of nothing and deletes are bounded.
_OP_OVERHEAD = 512
# How often a queue waiting for another one's spool folder looks again.
LOCK_POLL_S = 0.2


@dataclass
class _Op:
    seq: int
    kind: OpKind
    key: str
    content_type: str = ""
    # The bytes of a put, held only until its spool file is written.
    data: bytes | None = None
    # More keys a put stores the same bytes under, after `key`.
    also: tuple[str, ...] = ()
    # The bytes reserved from the budget for this operation, released once it is done.
    size: int = 0


class SpoolBusy(Exception):
    """Another queue (in this process or another) owns the spool folder."""


class _SpoolFileLost(Exception):
    """A spool file vanished or is corrupt: its operation can never be sent."""


def _check_prefix(prefix: str) -> str:
    if not prefix:
        # An empty prefix would wipe the whole store; nothing live needs that.
        raise ValueError("delete_prefix needs a non-empty prefix")
    check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


class UploadQueue:
    """Sends puts and deletes to `storage` in submission order, spooling them to disk first."""

    def __init__(
        self,
        storage: Storage,
        spool_dir: Path,
        *,
        events: EventSink | None = None,
        retry_initial: float = 0.5,
        retry_max: float = 10.0,
        budget: SpoolBudget | None = None,
        memory_max_bytes: int = MEMORY_MAX_BYTES,
    ) -> None:
        self.storage = storage
        self.spool_dir = Path(spool_dir)
        self._events = events
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._unspooled: deque[_Op] = deque()  # submitted, not yet on disk
        self._spooled: deque[_Op] = deque()  # on disk, not yet stored
        self._next_seq = 1
        self._done_seq = 0  # every operation with seq <= this one is finished
        self._spool_wake = asyncio.Event()
        self._upload_wake = asyncio.Event()
        self._done = asyncio.Condition()
        self._start_called = False
        self._started = asyncio.Event()  # set once the spool is recovered and seqs are valid
        self._spooler: asyncio.Task[None] | None = None
        self._uploader: asyncio.Task[None] | None = None
        self._closing = False
        self._last_warning = -WARN_INTERVAL_S
        self._suppressed_warnings = 0
        self._budget = budget if budget is not None else SpoolBudget(0)
        self._memory_max = memory_max_bytes
        self._held_bytes = 0  # bytes of operations not yet on disk
        self._spool_failing = False  # the last spool write failed
        self._lock_fd: int | None = None

    # -- the public interface ------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Create the spool folder, lock it, take over what it holds, start sending.

        Operations queued before (or while) this runs are sent after what the spool held.
        While another queue owns the folder this waits for it; with `wait=False` it raises
        SpoolBusy instead."""
        if self._start_called:
            raise RuntimeError("UploadQueue already started")
        self._start_called = True
        try:
            await self._lock_spool(wait)
        except BaseException:
            self._start_called = False
            raise
        recovered = await asyncio.to_thread(self._recover)
        if recovered:
            log.info("upload queue: re-sending %d operations left in %s", len(recovered),
                     self.spool_dir)
            self._spooled.extend(recovered)
            self._next_seq = recovered[-1].seq + 1
            self._done_seq = recovered[0].seq - 1
        for op in self._unspooled:  # numbered now, to follow the recovered ones
            op.seq = self._next_seq
            self._next_seq += 1
        self._started.set()
        if self._closing:
            # Closed while we were recovering: keep what was queued, for the next queue.
            await asyncio.to_thread(self._write_spool, list(self._unspooled))
            self._unspooled.clear()
            self._unlock_spool()
            return
        self._spooler = asyncio.create_task(self._spool_loop(), name="upload-queue-spool")
        self._uploader = asyncio.create_task(self._upload_loop(), name="upload-queue-upload")
        self._upload_wake.set()

    def put(self, key: str, data: bytes, content_type: str, *, also: tuple[str, ...] = ()
            ) -> bool:
        """Queue `data` for `key`, and for each key in `also` after it (returns at once;
        ValueError for a bad key). False when refused (see the module docstring)."""
        extra = tuple(check_key(k) for k in also)
        return self._submit(_Op(0, "put", check_key(key), content_type, bytes(data), extra))

    def delete(self, key: str) -> bool:
        """Queue the removal of `key`, after everything queued before it."""
        return self._submit(_Op(0, "delete", check_key(key)))

    def delete_prefix(self, prefix: str) -> bool:
        """Queue the removal of every key under `prefix` (e.g. "live/7/")."""
        return self._submit(_Op(0, "delete_prefix", _check_prefix(prefix)))

    def queued_keys(self) -> list[str]:
        """The keys the puts not yet stored will write (those the spool held at start too)."""
        return [key for op in (*self._spooled, *self._unspooled) if op.kind == "put"
                for key in (op.key, *op.also)]

    @property
    def held_bytes(self) -> int:
        """Bytes of operations held in memory, not yet written to the spool."""
        return self._held_bytes

    @property
    def pending(self) -> int:
        """Operations submitted (or recovered) and not yet finished."""
        return len(self._unspooled) + len(self._spooled)

    # A timeout parameter, not asyncio.timeout around the call: running out is an answer
    # (False), not an error, and `close` passes it on.
    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until everything queued so far is stored; False if `timeout` ran out first.

        Before `start` has run, this waits for it too."""
        try:
            async with asyncio.timeout(timeout):
                await self._started.wait()
                target = self._next_seq - 1
                async with self._done:
                    await self._done.wait_for(lambda: self._done_seq >= target)
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Flush (up to `timeout`), then stop. What was not stored stays in the spool for
        the next queue on this folder. True when everything was stored. The storage itself
        is not closed: it belongs to the caller."""
        if self._closing:
            return self.pending == 0
        if not self._start_called:
            if not self._unspooled:
                self._closing = True
                return True
            await self.start()  # Never started, yet given work: it must not be lost.
        stored = await self.flush(timeout)
        self._closing = True
        if self._uploader is not None:
            self._uploader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._uploader
        if self._spooler is not None:
            # Let the writer put what is still in memory on disk; nothing may be lost.
            self._spool_wake.set()
            done, _ = await asyncio.wait({self._spooler}, timeout=SPOOL_DRAIN_TIMEOUT_S)
            if not done:
                self._spooler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._spooler
                log.error("upload queue: %d operations never reached the spool %s",
                          len(self._unspooled), self.spool_dir)
        self._unlock_spool()
        return stored

    # -- submission and the spool ----------------------------------------------------------

    def _submit(self, op: _Op) -> bool:
        if self._closing:
            raise RuntimeError("UploadQueue is closed")
        size = _OP_OVERHEAD + len(op.data or b"") + sum(len(k) for k in (op.key, *op.also))
        reason = None
        if self._spool_failing or self._held_bytes + size > self._memory_max:
            reason = "unwritable"
        elif not self._budget.reserve(size):
            reason = "full"
        if reason is not None:
            self._warn(f"spool {self.spool_dir} {reason}: refusing {op.kind} {op.key} "
                       f"({size} bytes); its media is lost")
            self._emit(SpoolRefused(op.key, size, reason))
            return False
        op.size = size
        self._held_bytes += size
        if self._started.is_set():
            op.seq = self._next_seq
            self._next_seq += 1
        # Else `start` numbers it, after what the spool already holds.
        self._unspooled.append(op)
        self._spool_wake.set()
        return True

    # -- the folder lock -------------------------------------------------------------------

    def _try_lock(self) -> bool:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.spool_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    async def _lock_spool(self, wait: bool) -> None:
        logged = False
        while not await asyncio.to_thread(self._try_lock):
            if not wait:
                raise SpoolBusy(f"spool {self.spool_dir} belongs to another queue")
            if not logged:
                log.info("upload queue: waiting for %s to be handed over", self.spool_dir)
                logged = True
            await asyncio.sleep(LOCK_POLL_S)

    def _unlock_spool(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            # Closing the descriptor releases the flock.
            os.close(fd)

    def _path(self, op: _Op) -> Path:
        return self.spool_dir / f"{op.seq:012d}{_SUFFIX}"

    def _recover(self) -> list[_Op]:
        """Read the headers of the spool files left by an earlier queue, oldest first."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        ops: list[_Op] = []
        for path in sorted(self.spool_dir.iterdir()):
            if path.suffix == _TEMP_SUFFIX:
                path.unlink(missing_ok=True)  # Never completed: never accepted either.
            elif path.suffix == _SUFFIX:
                try:
                    with path.open("rb") as handle:
                        op = self._parse_header(int(path.stem), handle.readline())
                        op.size = os.fstat(handle.fileno()).st_size
                        # Already on disk: counted, whatever the budget says.
                        self._budget.reserve(op.size, force=True)
                        ops.append(op)
                except (ValueError, OSError) as exc:
                    log.error("upload queue: unreadable spool file %s kept as %s: %s",
                              path, _BAD_SUFFIX, exc)
                    path.replace(path.with_suffix(_BAD_SUFFIX))
        return ops

    @staticmethod
    def _parse_header(seq: int, line: bytes) -> _Op:
        try:
            header = json.loads(line)
        except RecursionError as exc:  # nested deeper than the JSON reader goes
            raise ValueError("bad spool header: nested too deep") from exc
        # Any JSON may sit in a damaged file: every shape but ours is a ValueError, so
        # `_recover` sets the file aside instead of failing the whole queue.
        if not isinstance(header, dict):
            raise ValueError(f"bad spool header {header!r}")
        kind, key, also_keys = header.get("op"), header.get("key"), header.get("also", [])
        if (not isinstance(kind, str) or kind not in _KINDS or not isinstance(key, str)
                or not isinstance(also_keys, list)
                or not all(isinstance(k, str) for k in also_keys)):
            raise ValueError(f"bad spool header {header!r}")
        check_key(key.rstrip("/"))
        also = tuple(check_key(k) for k in also_keys)
        return _Op(seq, cast(OpKind, kind), key, str(header.get("content_type", "")), also=also)

    def _write_spool(self, ops: list[_Op]) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for op in ops:
            header: dict[str, object] = {
                "op": op.kind, "key": op.key, "content_type": op.content_type}
            if op.also:
                header["also"] = list(op.also)
            path = self._path(op)
            temp = path.with_suffix(_TEMP_SUFFIX)
            with temp.open("wb") as handle:
                handle.write(json.dumps(header).encode() + b"\n")
                if op.data:
                    handle.write(op.data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        # The renames are durable only once the folder itself is synced.
        fd = os.open(self.spool_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read_spooled(self, op: _Op) -> bytes:
        try:
            with self._path(op).open("rb") as handle:
                handle.readline()
                return handle.read()
        except OSError as exc:
            raise _SpoolFileLost(f"spool file {self._path(op)}: {exc}") from exc

    def _remove_spooled(self, ops: list[_Op]) -> None:
        for op in ops:
            try:
                self._path(op).unlink(missing_ok=True)
            except OSError as exc:
                # Left behind, it would be sent again after a restart: harmless, not silent.
                log.warning("upload queue: cannot remove spool file %s: %s", self._path(op), exc)

    async def _spool_loop(self) -> None:
        failures = 0
        while True:
            if not self._unspooled:
                if self._closing:
                    return
                self._spool_wake.clear()
                await self._spool_wake.wait()
                continue
            batch = list(self._unspooled)
            try:
                await asyncio.to_thread(self._write_spool, batch)
            except Exception as exc:
                failures += 1
                # Until a write succeeds, new operations are refused, not kept in memory.
                self._spool_failing = True
                self._warn(f"cannot write to spool {self.spool_dir}: {exc}")
                for op in batch:
                    self._emit(UploadFailed(op.key, f"spool: {exc}"))
                await asyncio.sleep(self._backoff(failures))
                continue
            failures = 0
            self._spool_failing = False
            for op in batch:
                self._unspooled.popleft()
                op.data = None
                self._held_bytes -= op.size
                self._spooled.append(op)
            self._upload_wake.set()

    # -- sending -------------------------------------------------------------------------

    def _backoff(self, failures: int) -> float:
        return float(min(self._retry_initial * 2 ** min(failures - 1, 30), self._retry_max))

    async def _coalesced_head(self) -> _Op:
        """The first operation, after dropping puts overwritten by the put right after."""
        superseded: list[_Op] = []
        while (
            len(self._spooled) > 1
            and self._spooled[0].kind == "put"
            and self._spooled[1].kind == "put"
            and self._spooled[0].key == self._spooled[1].key
            and self._spooled[0].also == self._spooled[1].also
        ):
            superseded.append(self._spooled.popleft())
        if superseded:
            await asyncio.to_thread(self._remove_spooled, superseded)
            for op in superseded:
                self._budget.release(op.size)
        return self._spooled[0]

    async def _apply(self, op: _Op, data: bytes | None) -> None:
        if op.kind == "put":
            assert data is not None
            for key in (op.key, *op.also):
                await self.storage.put(key, data, op.content_type)
        elif op.kind == "delete":
            await self.storage.delete(op.key)
        else:
            await self.storage.delete_prefix(op.key)

    async def _upload_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._spooled:
                self._upload_wake.clear()
                await self._upload_wake.wait()
                continue
            op = await self._coalesced_head()
            data: bytes | None = None
            failures = 0
            while True:
                try:
                    if op.kind == "put" and data is None:
                        data = await asyncio.to_thread(self._read_spooled, op)
                    started = loop.time()
                    await self._apply(op, data)
                    seconds = loop.time() - started
                except _SpoolFileLost as exc:
                    # The bytes are gone: retrying cannot help, and would stall everything.
                    log.error("upload queue: dropping %s %s: %s", op.kind, op.key, exc)
                    self._emit(UploadFailed(op.key, str(exc)))
                    seconds = -1.0
                    break
                except Exception as exc:
                    failures += 1
                    delay = self._backoff(failures)
                    self._warn(
                        f"{op.kind} {op.key} failed (attempt {failures}, retry in "
                        f"{delay:.1f}s): {type(exc).__name__}: {exc}",
                        unexpected=not isinstance(exc, StorageError),
                    )
                    self._emit(UploadFailed(op.key, f"{type(exc).__name__}: {exc}"))
                    await asyncio.sleep(delay)
                    newest = await self._coalesced_head()
                    if newest is not op:
                        op, data = newest, None  # A newer version of the same key came.
                    continue
                break
            await asyncio.to_thread(self._remove_spooled, [op])
            self._spooled.popleft()
            self._budget.release(op.size)
            if seconds >= 0 and op.kind == "put":
                self._emit(SegmentStored(op.key, len(data or b""), seconds))
            async with self._done:
                self._done_seq = op.seq
                self._done.notify_all()

    # -- reporting -----------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        if self._events is None:
            return
        try:
            self._events(event)
        except Exception:
            # A broken subscriber must not stop the uploads.
            log.exception("upload queue: event sink failed on %r", event)

    def _warn(self, message: str, *, unexpected: bool = False) -> None:
        """Log a failure, at most once per WARN_INTERVAL_S while they keep coming."""
        now = time.monotonic()
        if now - self._last_warning < WARN_INTERVAL_S:
            self._suppressed_warnings += 1
            return
        more = (
            f" ({self._suppressed_warnings} similar failures not logged)"
            if self._suppressed_warnings else ""
        )
        self._last_warning, self._suppressed_warnings = now, 0
        if unexpected:
            log.error("upload queue: %s%s", message, more, exc_info=True)
        else:
            log.warning("upload queue: %s%s", message, more)
