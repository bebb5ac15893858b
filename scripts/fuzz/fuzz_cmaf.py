"""Fuzz target: ffmpeg's fragmented MP4 as one rendition's upload delivers it
(transcode/cmaf: the box splitter, moov/moof reading, the packager).

The input goes through `CmafPackager.feed` in upload-sized pieces (`fuzz_pieces.py`), with
a small box limit so that inputs of a few KiB reach it. Allowed error: `CmafError`. For any
bytes: the splitter accounts for every byte fed and holds less than one box limit; each
Init and Part is within the limits; times are finite, durations non-negative; a segment
starts only on an independent part, except the first part after an Init.
"""

from __future__ import annotations

import math

from fuzz_pieces import pieces
from transcode.cmaf.boxes import BoxSplitter, CmafError
from transcode.cmaf.packager import CmafPackager, Init, Part

_LIMIT = 4096
# Short segments, so that the few fragments an 8 KiB input holds cross segment boundaries.
_SEGMENT_SECONDS = 0.5


def check(data: bytes) -> None:
    packager = CmafPackager(_SEGMENT_SECONDS, max_box_bytes=_LIMIT)
    splitter = BoxSplitter(_LIMIT)
    after_init = False
    try:
        for piece in pieces(data):
            boxes = splitter.feed(piece)
            assert all(8 <= len(b.data) <= _LIMIT and len(b.type) == 4 for b in boxes)
            assert splitter.buffered < _LIMIT
            for item in packager.feed(piece):
                assert len(item.data) <= 2 * _LIMIT  # ftyp+moov, or moof+mdat
                if isinstance(item, Init):
                    after_init = True
                    continue
                assert isinstance(item, Part)
                assert math.isfinite(item.start) and item.start >= 0
                assert math.isfinite(item.duration) and item.duration >= 0
                assert item.independent or not item.new_segment or after_init
                after_init = False
    except CmafError:
        return
    assert packager.close() == []
