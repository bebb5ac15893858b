"""The CMAF packager (transcode/cmaf/packager.py) on hand-built streams: one Init, parts as
moof+mdat, parts held until their mdat, and the segment grid (cuts only on independent
parts, at the first one reaching each boundary, boundaries passed by a long GOP skipped)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.mp4_boxes import NON_SYNC, SYNC, Sample, Traf, box, ftyp, mdat, moof, moov
from transcode.cmaf.boxes import CmafError
from transcode.cmaf.packager import CmafPackager, Init, Part

VIDEO = [(1, "vide", 1000)]  # a 1 ms timescale keeps the expected numbers readable
AUDIO = [(1, "soun", 48000)]


def video_stream(keyframes: set[int], count: int, part_ms: int = 200) -> bytes:
    """`count` parts of `part_ms` each; part n starts with a keyframe when n is in the set."""
    body = b""
    for n in range(count):
        flags = SYNC if n in keyframes else NON_SYNC
        samples = [Sample(part_ms // 5, flags)] + [Sample(part_ms // 5, NON_SYNC)] * 4
        body += moof(n + 1, Traf(1, n * part_ms, samples)) + mdat(20)
    return ftyp() + moov(VIDEO) + body


def parts(items: list[Init | Part]) -> list[Part]:
    return [item for item in items if isinstance(item, Part)]


def cuts(items: list[Init | Part]) -> list[float]:
    return [round(p.start, 3) for p in parts(items) if p.new_segment]


def test_one_init_then_a_part_per_moof_and_mdat() -> None:
    data = ftyp() + moov(VIDEO)
    fragment = moof(1, Traf(1, 500, [Sample(40, SYNC)] * 5)) + mdat(64)
    packager = CmafPackager(2.0)
    out = packager.feed(data + box("styp", b"msdh") + box("prft", bytes(16)) + fragment
                        + box("free") + box("sidx", bytes(20)))
    assert out == [Init(data), Part(fragment, 0.5, 0.2, True, True)]
    assert packager.init_info is not None and packager.init_info.has_video


def test_a_moof_waits_for_its_mdat() -> None:
    packager = CmafPackager(2.0)
    head = moof(1, Traf(1, 0, [Sample(40, SYNC)]))
    assert packager.feed(ftyp() + moov(VIDEO) + head + box("free")) == [
        Init(ftyp() + moov(VIDEO))]
    (part,) = packager.feed(mdat(8))
    assert isinstance(part, Part) and part.data == head + mdat(8)


def test_close_drops_what_is_incomplete() -> None:
    packager = CmafPackager(2.0)
    packager.feed(ftyp() + moov(VIDEO) + moof(1, Traf(1, 0, [Sample(40, SYNC)])) + mdat()[:5])
    assert packager.close() == []
    with pytest.raises(CmafError, match="closed"):
        packager.feed(mdat())


def test_forced_keyframes_on_the_grid_cut_every_segment() -> None:
    out = CmafPackager(2.0).feed(video_stream({0, 10, 20, 30}, 35))
    assert cuts(out) == [0.0, 2.0, 4.0, 6.0]
    assert all(p.independent for p in parts(out) if p.new_segment)


def test_a_gop_longer_than_a_segment_cuts_at_each_keyframe_after_the_boundary() -> None:
    # keyframes every 3 s on a 2 s grid: 0, 3 (boundary 2 passed), 6 (4 passed), 9 (8)...
    out = CmafPackager(2.0).feed(video_stream({0, 15, 30, 45, 60}, 65))
    assert cuts(out) == [0.0, 3.0, 6.0, 9.0, 12.0]
    # 4 s GOPs on a 2 s grid: every keyframe, with boundaries 2, 6, 10 skipped, not owed
    out = CmafPackager(2.0).feed(video_stream({0, 20, 40}, 50))
    assert cuts(out) == [0.0, 4.0, 8.0]


def test_extra_keyframes_inside_a_segment_do_not_cut() -> None:
    # a scene-cut keyframe at 0.8 s and one at 1.8 s (0.2 s early: outside the 0.1 s
    # tolerance), then the forced one at 2 s
    out = CmafPackager(2.0).feed(video_stream({0, 4, 9, 10}, 15))
    assert cuts(out) == [0.0, 2.0]


def test_a_keyframe_within_the_tolerance_before_a_boundary_cuts() -> None:
    # 60 ms parts: keyframe at 1.92 s is within 0.1 s of the 2 s boundary
    out = CmafPackager(2.0).feed(video_stream({0, 32}, 40, part_ms=60))
    assert cuts(out) == [0.0, 1.92]


def test_audio_cuts_on_the_grid_within_a_part() -> None:
    frames = [Sample(1024)] * 9  # 192 ms, as ffmpeg's -frag_duration 183000 makes them
    body = b"".join(moof(n + 1, Traf(1, n * 9 * 1024, frames)) + mdat(10) for n in range(40))
    out = CmafPackager(2.0).feed(ftyp() + moov(AUDIO) + body)
    assert all(p.independent for p in parts(out))
    assert cuts(out) == [0.0, 1.92, 4.032, 5.952]  # each within one part of 2 k


def test_the_grid_starts_at_the_first_part_not_at_zero() -> None:
    body = b"".join(
        moof(n + 1, Traf(1, 7_000 + n * 200, [Sample(200, SYNC if n % 10 == 0 else NON_SYNC)]))
        + mdat() for n in range(25))
    out = CmafPackager(2.0).feed(ftyp() + moov(VIDEO) + body)
    assert cuts(out) == [7.0, 9.0, 11.0]


def test_a_first_part_that_is_not_independent_still_starts_the_first_segment() -> None:
    out = CmafPackager(2.0).feed(video_stream({5, 10}, 12))
    assert [(p.start, p.new_segment) for p in parts(out) if p.independent or p.new_segment] == [
        (0.0, True), (1.0, False), (2.0, True)]


def test_a_second_moov_gives_a_new_init_and_a_new_grid() -> None:
    packager = CmafPackager(2.0)
    first = packager.feed(video_stream({0, 10}, 12))
    again = packager.feed(video_stream({0, 10}, 12))  # a restarted muxer, clock from 0
    assert [type(i).__name__ for i in first][:2] == ["Init", "Part"]
    assert isinstance(again[0], Init)
    assert cuts(first) == cuts(again) == [0.0, 2.0]


@pytest.mark.parametrize(("data", "message"), [
    (moov(VIDEO), "moov before any ftyp"),
    (ftyp() + moof(1, Traf(1, 0, [Sample(1)])), "moof before any moov"),
    (ftyp() + moov(VIDEO) + moof(1, Traf(2, 0, [Sample(1)])), "track 2"),
])
def test_streams_out_of_order_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(CmafError, match=message):
        CmafPackager(2.0).feed(data)


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_segment_length_must_be_positive(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        CmafPackager(seconds)


STREAM = video_stream({0, 7, 10, 16, 20}, 24)
WHOLE = CmafPackager(2.0).feed(STREAM)


@settings(max_examples=200, deadline=None)
@given(cuts_at=st.lists(st.integers(0, len(STREAM)), max_size=40))
def test_any_chunking_gives_the_same_output(cuts_at: list[int]) -> None:
    packager = CmafPackager(2.0)
    out: list[Init | Part] = []
    previous = 0
    for cut in [*sorted(cuts_at), len(STREAM)]:
        out += packager.feed(STREAM[previous:cut])
        previous = cut
    assert out == WHOLE


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1024), chunk=st.integers(1, 300))
def test_random_bytes_only_raise_cmaf_error(data: bytes, chunk: int) -> None:
    packager = CmafPackager(2.0, max_box_bytes=512)
    try:
        for start in range(0, len(data), chunk):
            for item in packager.feed(data[start : start + chunk]):
                assert len(item.data) <= 2 * 512
    except CmafError:
        pass
