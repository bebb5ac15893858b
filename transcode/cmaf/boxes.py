"""ISO-BMFF box framing: an incremental splitter of a live stream's top-level boxes, and a
walker of the child boxes inside a container's payload.

ffmpeg's fragmented MP4 reaches us as one long chunked upload, cut anywhere: a box may be
split across chunks and one chunk may hold several boxes. `BoxSplitter` buffers just the
box being assembled, so its memory is bounded by `max_box_bytes` (plus the chunk being
fed), whatever bytes arrive; any framing it cannot accept raises `CmafError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_BOX_BYTES", "Box", "BoxSplitter", "CmafError", "iter_children"]

# A 200 ms fragment of a 1080p rung is a few hundred KiB; 32 MiB leaves room for a
# passthrough source's huge keyframes while still bounding what one upload can pin.
DEFAULT_MAX_BOX_BYTES = 32 * 1024 * 1024

_HEADER = 8  # 32-bit size + 4-character type
_LARGE_HEADER = 16  # ... + 64-bit largesize when size == 1
_SIZE_IS_LARGE = 1
_SIZE_TO_END = 0


class CmafError(ValueError):
    """The bytes are not a fragmented MP4 stream this package can accept."""


@dataclass(frozen=True, slots=True)
class Box:
    """One whole box: `type` is its 4-character type, `data` the box with its header."""

    type: str
    data: bytes

    @property
    def header_size(self) -> int:
        return _LARGE_HEADER if self.data[:4] == b"\x00\x00\x00\x01" else _HEADER

    @property
    def payload(self) -> bytes:
        """The box's content after its header (a copy: boxes we parse are small)."""
        return self.data[self.header_size :]


def _box_type(raw: bytes | bytearray) -> str:
    # latin-1 maps every byte to one character, so any 4 bytes make a 4-character type
    # (real types are printable ASCII; hostile ones must not raise UnicodeDecodeError).
    return bytes(raw).decode("latin-1")


def _box_extent(
    buffer: bytes | bytearray, offset: int, available: int, max_box_bytes: int
) -> tuple[str, int] | None:
    """(type, total size) of the box whose header starts at `offset`, or None until enough
    of the header is there. `available` is how many bytes follow `offset`."""
    if available < _HEADER:
        return None
    size, raw_type = struct.unpack_from(">I4s", buffer, offset)
    header = _HEADER
    if size == _SIZE_IS_LARGE:
        if available < _LARGE_HEADER:
            return None
        (size,) = struct.unpack_from(">Q", buffer, offset + _HEADER)
        header = _LARGE_HEADER
    box_type = _box_type(raw_type)
    if size == _SIZE_TO_END:
        # "Extends to the end of the file": a live stream has no end to extend to.
        raise CmafError(f"box {box_type!r} has size 0 (to end of file)")
    if size < header:
        raise CmafError(f"box {box_type!r} size {size} is smaller than its header")
    if size > max_box_bytes:
        raise CmafError(f"box {box_type!r} size {size} is over the limit of {max_box_bytes}")
    return box_type, size


class BoxSplitter:
    """Cuts a byte stream fed in arbitrary chunks into whole top-level boxes.

    After a `CmafError` the stream is unusable (framing is lost), so every later `feed`
    raises again rather than guessing where the next box starts.
    """

    def __init__(self, max_box_bytes: int = DEFAULT_MAX_BOX_BYTES) -> None:
        if max_box_bytes < _LARGE_HEADER:
            raise ValueError("max_box_bytes must hold at least a box header")
        self.max_box_bytes = max_box_bytes
        self._buffer = bytearray()
        self._failed: CmafError | None = None
        self.bytes_fed = 0

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete box held, waiting for the rest of it."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Box]:
        """The boxes completed by `data`, in stream order."""
        if self._failed is not None:
            raise CmafError(f"stream already failed: {self._failed}")
        self.bytes_fed += len(data)
        buffer = self._buffer
        buffer += data
        boxes: list[Box] = []
        offset = 0
        end = len(buffer)
        try:
            # One copy per box, out of a view (slicing the bytearray would copy twice).
            with memoryview(buffer) as view:
                while True:
                    extent = _box_extent(buffer, offset, end - offset, self.max_box_bytes)
                    if extent is None:
                        break
                    box_type, size = extent
                    if end - offset < size:
                        break
                    boxes.append(Box(box_type, bytes(view[offset : offset + size])))
                    offset += size
        except CmafError as error:
            self._failed = error
            self._buffer = bytearray()
            raise
        if offset:
            # Only the incomplete box's bytes stay: each fed byte is moved at most once
            # here, so feeding is linear in the stream, never a rescan of the buffer.
            del buffer[:offset]
        return boxes


def iter_children(payload: bytes, max_box_bytes: int = DEFAULT_MAX_BOX_BYTES) -> Iterator[Box]:
    """The boxes filling a container's payload (moov, trak, mdia, minf, stbl, mvex, moof,
    traf...), with the splitter's checks; a child running past the payload's end, or bytes
    left over too short for a header, raise `CmafError`."""
    offset = 0
    end = len(payload)
    while offset < end:
        extent = _box_extent(payload, offset, end - offset, max_box_bytes)
        if extent is None:
            raise CmafError(f"{end - offset} stray bytes after the last child box")
        box_type, size = extent
        if size > end - offset:
            raise CmafError(f"child box {box_type!r} runs past its container")
        yield Box(box_type, payload[offset : offset + size])
        offset += size
