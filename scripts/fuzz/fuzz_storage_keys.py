"""Fuzz target: the parsers between a URL or a spool file and a storage key.

The input is up to four fields separated by NUL: a playback URL's session id, its path
and a Range header (mediaserver/hls_delivery.py), then a storage key, which is also read as
a spool file's header line (transcode/storage/upload_queue.py) and as the name of a folder
or file left for pending uploads (mediaserver/pending_uploads.py).

Allowed errors: `ValueError` from `check_key` and from a spool header (the queue keeps such a
file aside), `RangeNotSatisfiable` from a Range header. What `check_key` accepts must be
made of its safe characters only, with no `.` or `..` part, and stay inside the storage
root; a playback path that passes the route's checks must make a valid key; a parsed range
lies inside the object.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from mediaserver import hls_delivery
from mediaserver.pending_uploads import _session_id
from transcode.storage.backend import LIVE_PREFIX, RECORDINGS_PREFIX, check_key
from transcode.storage.local import LocalStorage
from transcode.storage.upload_queue import UploadQueue

_SAFE = re.compile(r"[A-Za-z0-9_./-]+")
_ROOT = Path("/srv/media")
_LOCAL = LocalStorage(_ROOT)


def _checked_key(key: str) -> None:
    try:
        check_key(key)
    except ValueError:
        return
    assert _SAFE.fullmatch(key), key
    assert not any(part in ("", ".", "..") for part in key.split("/")), key
    path = _LOCAL._path(key)
    assert path.is_relative_to(_ROOT) and path != _ROOT, path


def _playback(raw_sid: str, path: str) -> None:
    if not (hls_delivery._SESSION_ID.fullmatch(raw_sid) and hls_delivery._PATH.fullmatch(path)):
        return
    for prefix in (LIVE_PREFIX, RECORDINGS_PREFIX):
        key = f"{prefix}{int(raw_sid)}/{path}"
        assert check_key(key) == key
    hls_delivery._content_type(path)


def _range(header: str, size: int) -> None:
    try:
        byte_range = hls_delivery.parse_range(header, size)
    except hls_delivery.RangeNotSatisfiable:
        return
    if byte_range is not None:
        assert 0 <= byte_range.start <= byte_range.end < size, (header, size, byte_range)
        assert byte_range.length >= 1


def _spool_header(line: bytes) -> None:
    try:
        op = UploadQueue._parse_header(1, line)
    except ValueError:
        return
    assert op.key.rstrip("/") == check_key(op.key.rstrip("/"))
    for key in op.also:
        assert check_key(key) == key


def check(data: bytes) -> None:
    fields = data.split(b"\x00", 3)
    fields += [b""] * (4 - len(fields))
    raw_sid, path, header, rest = (f.decode("utf-8", "replace") for f in fields)
    _playback(raw_sid, path)
    for size in (0, 1, 1000, len(data)):
        _range(header, size)
    _checked_key(rest)
    _spool_header(fields[3].split(b"\n", 1)[0])
    if rest and "\x00" not in rest:
        found = _session_id(Path(PurePosixPath(rest).name or "x"))
        assert found is None or found >= 0
