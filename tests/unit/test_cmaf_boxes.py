"""The ISO-BMFF box splitter and child walker (transcode/cmaf/boxes.py): framing of boxes
split across chunks, the size checks that keep memory bounded, and property tests over
random bytes and random chunkings."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.mp4_boxes import SYNC, Sample, Traf, box, ftyp, mdat, moof, moov
from transcode.cmaf.boxes import Box, BoxSplitter, CmafError, iter_children

VALID = (
    ftyp()
    + moov([(1, "vide", 15360)])
    + box("styp", b"msdh")
    + moof(1, Traf(1, 0, [Sample(512, SYNC)]))
    + mdat(300)
    + box("free", b"x" * 3, large=True)
    + moof(2, Traf(1, 512, [Sample(512, 0x01010000)]))
    + mdat(0)
)


def _split_all(data: bytes, cuts: list[int], limit: int = 1 << 20) -> list[Box]:
    splitter = BoxSplitter(limit)
    boxes: list[Box] = []
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        boxes += splitter.feed(data[previous:cut])
        previous = cut
    return boxes


def test_splits_boxes_with_their_headers() -> None:
    boxes = BoxSplitter().feed(VALID)
    assert [b.type for b in boxes] == ["ftyp", "moov", "styp", "moof", "mdat", "free",
                                       "moof", "mdat"]
    assert b"".join(b.data for b in boxes) == VALID
    assert boxes[0].payload.startswith(b"iso5")
    assert boxes[5].header_size == 16 and boxes[5].payload == b"xxx"
    assert boxes[7].payload == b""


def test_a_box_split_anywhere_comes_out_whole_once() -> None:
    expected = BoxSplitter().feed(VALID)
    for cut in range(len(VALID) + 1):
        assert _split_all(VALID, [cut]) == expected


def test_byte_by_byte_keeps_only_the_incomplete_box() -> None:
    splitter = BoxSplitter()
    boxes: list[Box] = []
    for index in range(len(VALID)):
        boxes += splitter.feed(VALID[index : index + 1])
        assert splitter.buffered == index + 1 - sum(len(b.data) for b in boxes)
    assert splitter.buffered == 0 and len(boxes) == 8
    assert splitter.bytes_fed == len(VALID)


def test_any_four_bytes_make_a_type() -> None:
    (found,) = BoxSplitter().feed(struct.pack(">I", 8) + b"\xff\x00\x80A")
    assert found.type == "\xff\x00\x80A"


@pytest.mark.parametrize(("header", "message"), [
    (struct.pack(">I4s", 0, b"mdat"), "size 0"),
    (struct.pack(">I4s", 7, b"mdat"), "smaller than its header"),
    (struct.pack(">I4sQ", 1, b"mdat", 15), "smaller than its header"),
    (struct.pack(">I4s", 1025, b"mdat"), "over the limit"),
    (struct.pack(">I4sQ", 1, b"mdat", 1 << 63), "over the limit"),
])
def test_refuses_sizes_it_cannot_or_will_not_buffer(header: bytes, message: str) -> None:
    splitter = BoxSplitter(max_box_bytes=1024)
    with pytest.raises(CmafError, match=message):
        splitter.feed(header)  # refused from the header alone, before any body is held
    assert splitter.buffered == 0
    with pytest.raises(CmafError, match="already failed"):
        splitter.feed(VALID)


def test_a_box_at_the_limit_is_accepted() -> None:
    data = box("mdat", bytes(1024 - 8))
    assert [b.data for b in BoxSplitter(1024).feed(data)] == [data]


def test_children_of_a_container() -> None:
    payload = box("tkhd", b"ab") + box("mdia", box("mdhd"), large=True)
    children = list(iter_children(payload))
    assert [c.type for c in children] == ["tkhd", "mdia"]
    assert [c.type for c in iter_children(children[1].payload)] == ["mdhd"]
    assert list(iter_children(b"")) == []


@pytest.mark.parametrize(("payload", "message"), [
    (box("tkhd", b"ab") + b"\x00\x00\x00", "stray bytes"),
    (box("tkhd", b"ab")[:-1], "runs past its container"),
    (struct.pack(">I4s", 0, b"tkhd"), "size 0"),
    (struct.pack(">I4s", 4, b"tkhd"), "smaller than its header"),
    (box("mdat", bytes(100)), "over the limit"),
])
def test_children_are_bounds_checked(payload: bytes, message: str) -> None:
    with pytest.raises(CmafError, match=message):
        list(iter_children(payload, max_box_bytes=64))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), cuts=st.lists(st.integers(0, 2048), max_size=20),
       limit=st.integers(16, 512))
def test_random_bytes_only_ever_raise_cmaf_error_and_stay_bounded(
    data: bytes, cuts: list[int], limit: int
) -> None:
    splitter = BoxSplitter(limit)
    previous = 0
    total = 0
    try:
        for cut in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
            for found in splitter.feed(data[previous:cut]):
                assert 8 <= len(found.data) <= limit and len(found.type) == 4
                total += len(found.data)
            previous = cut
            # Only the box being assembled is held, and it is never over the limit.
            assert splitter.buffered < limit
            assert total + splitter.buffered == splitter.bytes_fed
    except CmafError:
        pass


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, len(VALID)), max_size=30))
def test_every_chunking_of_a_valid_stream_gives_the_same_boxes(cuts: list[int]) -> None:
    assert _split_all(VALID, cuts) == BoxSplitter().feed(VALID)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=512))
def test_random_children_only_raise_cmaf_error(data: bytes) -> None:
    try:
        for child in iter_children(data, max_box_bytes=256):
            assert 8 <= len(child.data) <= 256
    except CmafError:
        pass
