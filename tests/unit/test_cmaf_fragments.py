"""Reading init segments and fragments (transcode/cmaf/fragments.py): track kinds and
clocks, trex/tfhd/trun defaults in the order ISO-BMFF gives them, sync samples, and
refusal of truncated or inconsistent boxes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.mp4_boxes import NON_SYNC, SYNC, Sample, Traf, box, ftyp, full_box, moof, moov
from transcode.cmaf.boxes import CmafError
from transcode.cmaf.fragments import InitInfo, TrackInfo, parse_fragment, parse_init

VIDEO_AUDIO = parse_init(ftyp() + moov([(1, "vide", 15360), (2, "soun", 48000)]))


@pytest.mark.parametrize("version", [0, 1])
def test_init_tracks_kinds_clocks_and_trex_defaults(version: int) -> None:
    data = ftyp() + moov(
        [(1, "vide", 15360), (2, "soun", 48000), (3, "subt", 1000)],
        {1: (512, NON_SYNC), 2: (1024, 0)}, version=version,
    )
    info = parse_init(data)
    assert info.tracks == {
        1: TrackInfo(1, "video", 15360, 512, NON_SYNC),
        2: TrackInfo(2, "audio", 48000, 1024, 0),
        3: TrackInfo(3, "other", 1000, 0, 0),
    }
    assert info.has_video
    assert not parse_init(moov([(7, "soun", 44100)])).has_video  # ftyp is optional here


@pytest.mark.parametrize(("data", "message"), [
    (ftyp(), "no moov"),
    (ftyp() + box("moov", full_box("mvhd", 0, 0, bytes(96))), "no track"),
    (ftyp() + moov([(1, "vide", 0)]), "timescale 0"),
    (ftyp() + moov([(1, "vide", 90000), (1, "soun", 48000)]), "two tracks"),
    (ftyp() + box("moov", box("trak", full_box("tkhd", 0, 0, bytes(20)))), "no mdia"),
    (ftyp() + box("moov", box("trak", full_box("tkhd", 0, 0, bytes(4)))), "too short"),
    (ftyp() + box("moov", box("trak", box("tkhd"))), "too short"),
    (ftyp() + moov([(1, "vide", 90000)])[:-3], "runs past"),
])
def test_bad_init_segments_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(CmafError, match=message):
        parse_init(data)


def test_video_fragment_with_per_sample_durations_and_first_sample_flags() -> None:
    fragment = moof(1, Traf(1, 30720, [Sample(512), Sample(512), Sample(256)],
                            first_sample_flags=SYNC, default_flags=NON_SYNC))
    info = parse_fragment(fragment, VIDEO_AUDIO)
    (track,) = info.tracks
    assert (track.base_media_decode_time, track.duration_ticks, track.sample_count) == (
        30720, 1280, 3)
    assert info.start == 2.0 and info.duration == 1280 / 15360 and info.independent


@pytest.mark.parametrize(("traf", "independent"), [
    # first_sample_flags wins over the per-sample flags
    (Traf(1, 0, [Sample(512, NON_SYNC)], first_sample_flags=SYNC), True),
    (Traf(1, 0, [Sample(512, SYNC)], first_sample_flags=NON_SYNC), False),
    # then the first sample's own flags
    (Traf(1, 0, [Sample(512, SYNC), Sample(512, NON_SYNC)], default_flags=NON_SYNC), True),
    (Traf(1, 0, [Sample(512, NON_SYNC), Sample(512, SYNC)], default_flags=SYNC), False),
    # then tfhd's default_sample_flags
    (Traf(1, 0, [Sample(512)], default_flags=SYNC), True),
    (Traf(1, 0, [Sample(512)], default_flags=NON_SYNC), False),
    # a traf without samples has no first sample to start on
    (Traf(1, 0, []), False),
])
def test_which_flags_decide_the_first_sample(traf: Traf, independent: bool) -> None:
    init = parse_init(moov([(1, "vide", 15360)], {1: (0, SYNC)}))
    assert parse_fragment(moof(1, traf), init).independent is independent


@pytest.mark.parametrize(("trex_flags", "independent"), [(SYNC, True), (NON_SYNC, False)])
def test_trex_default_flags_and_duration_when_the_fragment_gives_none(
    trex_flags: int, independent: bool
) -> None:
    init = parse_init(moov([(1, "vide", 90000)], {1: (3000, trex_flags)}))
    info = parse_fragment(moof(1, Traf(1, 90000, [Sample(), Sample()])), init)
    assert info.independent is independent
    assert (info.start, info.duration) == (1.0, 6000 / 90000)


def test_tfhd_default_duration_beats_trex_and_tfdt_version_0() -> None:
    init = parse_init(moov([(1, "soun", 48000)], {1: (999, 0)}))
    traf = Traf(1, 96000, [Sample(), Sample(), Sample()], default_duration=1024,
                tfdt_version=0)
    info = parse_fragment(moof(1, traf), init)
    assert (info.start, info.duration, info.tracks[0].sample_count) == (2.0, 0.064, 3)


def test_audio_only_fragments_are_always_independent() -> None:
    init = parse_init(moov([(1, "soun", 48000)]))
    traf = Traf(1, 0, [Sample(1024, NON_SYNC)], first_sample_flags=NON_SYNC)
    assert parse_fragment(moof(1, traf), init).independent


def test_muxed_fragment_takes_its_timing_from_video() -> None:
    fragment = moof(1, Traf(2, 48000 * 4 - 1024, [Sample(1024)] * 10),
                    Traf(1, 15360 * 4, [Sample(512, SYNC)] * 6))
    info = parse_fragment(fragment, VIDEO_AUDIO)
    assert [t.kind for t in info.tracks] == ["audio", "video"]
    assert info.start == 4.0 and info.duration == pytest.approx(0.2) and info.independent
    assert info.tracks[0].start == pytest.approx(4 - 1024 / 48000)


def test_a_fragment_without_video_in_a_video_stream_is_not_independent() -> None:
    info = parse_fragment(moof(1, Traf(2, 48000, [Sample(1024)])), VIDEO_AUDIO)
    assert not info.independent and info.start == 1.0


def test_several_truns_add_up() -> None:
    traf = Traf(1, 0, [Sample(512, SYNC)] * 2).encode()
    trun = full_box("trun", 0, 0x100, struct.pack(">I", 2) + struct.pack(">2I", 100, 200))
    doubled = box("traf", traf[8:] + trun)
    init = parse_init(moov([(1, "vide", 1000)]))
    info = parse_fragment(box("moof", full_box("mfhd", 0, 0, bytes(4)) + doubled), init)
    assert (info.tracks[0].sample_count, info.tracks[0].duration_ticks) == (4, 1324)


@pytest.mark.parametrize(("fragment", "message"), [
    (moof(1, Traf(9, 0, [Sample(1)])), "track 9"),
    (moof(1), "no traf"),
    (moof(1, Traf(1, 0, [Sample(1)])) + moof(2), "exactly one moof"),
    (box("moov"), "exactly one moof"),
    (box("moof", box("traf", full_box("tfhd", 0, 0, struct.pack(">I", 1)))), "no tfdt"),
    (box("moof", box("traf", full_box("tfhd", 0, 0x20, struct.pack(">I", 1)))), "too short"),
    # a trun claiming 2**32 - 1 samples in a few bytes
    (box("moof", box("traf", full_box("tfhd", 0, 0, struct.pack(">I", 1))
                     + full_box("tfdt", 0, 0, bytes(4))
                     + full_box("trun", 0, 0x100, struct.pack(">II", 0xFFFFFFFF, 1)))),
     "longer than its box"),
])
def test_bad_fragments_are_refused(fragment: bytes, message: str) -> None:
    with pytest.raises(CmafError, match=message):
        parse_fragment(fragment, VIDEO_AUDIO)


def test_a_huge_count_without_per_sample_fields_is_not_iterated() -> None:
    trun = full_box("trun", 0, 0, struct.pack(">I", 0xFFFFFFFF))
    fragment = box("moof", box("traf", full_box("tfhd", 0, 0x08, struct.pack(">II", 1, 2))
                               + full_box("tfdt", 0, 0, bytes(4)) + trun))
    info = parse_fragment(fragment, parse_init(moov([(1, "soun", 1)])))
    assert info.tracks[0].duration_ticks == 2 * 0xFFFFFFFF


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_cmaf_error(data: bytes) -> None:
    init = InitInfo({1: TrackInfo(1, "video", 90000)})
    for parse in (lambda: parse_init(data), lambda: parse_fragment(data, init)):
        try:
            parse()
        except CmafError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.integers(0, 255))
def test_corrupted_fragment_bytes_only_raise_cmaf_error(position: int, value: int) -> None:
    fragment = bytearray(moof(1, Traf(1, 0, [Sample(512, SYNC)] * 3, first_sample_flags=SYNC),
                              Traf(2, 0, [Sample(1024)] * 2, default_flags=0)))
    fragment[position % len(fragment)] = value
    try:
        parse_fragment(bytes(fragment), VIDEO_AUDIO)
    except CmafError:
        pass
