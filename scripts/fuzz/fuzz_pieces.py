"""How the stream targets cut one input into reads: as a socket would deliver it.

The cut depends on the input's length, not on a prefix byte, so a seed is the real bytes
as captured and every length explores a different way of splitting them across reads. At
most `MAX_READS` reads per input: byte-by-byte feeding of a long input would cost seconds
of interpreted time per input and only repeat what the short inputs already cover.
"""

from __future__ import annotations

from collections.abc import Iterator

# One byte at a time, odd sizes that split headers, and whole 64 KiB reads.
_SIZES = (1, 2, 3, 5, 11, 64, 129, 1000, 1537, 4096, 65536)
MAX_READS = 64


def pieces(data: bytes) -> Iterator[bytes]:
    """`data` cut into reads of one size chosen by its length (the last may be short)."""
    size = max(_SIZES[len(data) % len(_SIZES)], -(-len(data) // MAX_READS))
    for start in range(0, len(data), size):
        yield data[start : start + size]
