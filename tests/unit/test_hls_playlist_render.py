"""hls_playlist rendering, as text: fMP4 (EXT-X-MAP), Low-Latency HLS, the audio group."""

from __future__ import annotations

import pytest

from transcode.hls_playlist import (
    LowLatency,
    Part,
    RenditionReport,
    Segment,
    parse_media_playlist,
    render_live_playlist,
    render_master_playlist,
    render_recording_playlist,
)
from transcode.ladder import AAC_LC, Rendition

PART = 0.2


def _parts(number: int, count: int = 10) -> tuple[Part, ...]:
    return tuple(Part(f"{number:06d}.{i}.m4s", PART, independent=i == 0) for i in range(count))


def _window(first: int, count: int, *, init: str = "init-0.mp4",
            with_parts: int = 2) -> list[Segment]:
    """`count` two-second segments numbered from `first`, the last `with_parts` with parts."""
    return [Segment(f"{n:06d}.m4s", 2.0, init_uri=init if n == first else None,
                    parts=_parts(n) if n >= first + count - with_parts else ())
            for n in range(first, first + count)]


def _tags(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_ts_playlists_keep_version_3_and_no_new_tags() -> None:
    segments = [Segment("000000.ts", 2.0), Segment("000001.ts", 2.0, parts=_parts(1))]
    for text in (render_live_playlist(segments, media_sequence=0),
                 render_recording_playlist(segments, ended=True)):
        assert "#EXT-X-VERSION:3" in text
        for tag in ("#EXT-X-MAP", "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-PART"):
            assert tag not in text


def test_fmp4_live_playlist_maps_each_init_once() -> None:
    segments = [Segment("000000.m4s", 2.0, init_uri="init-0.mp4"),
                Segment("000001.m4s", 2.0, init_uri="init-0.mp4"),  # the same: no new MAP
                Segment("000002.m4s", 2.0, discontinuity=True, init_uri="init-1.mp4"),
                Segment("000003.m4s", 2.0)]
    lines = render_live_playlist(segments, media_sequence=0).splitlines()
    assert lines[:4] == ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-INDEPENDENT-SEGMENTS",
                         "#EXT-X-TARGETDURATION:2"]
    assert _tags("\n".join(lines), "#EXT-X-MAP") == ['#EXT-X-MAP:URI="init-0.mp4"',
                                                     '#EXT-X-MAP:URI="init-1.mp4"']
    first = lines.index('#EXT-X-MAP:URI="init-0.mp4"')
    assert lines[first + 1:first + 3] == ["#EXTINF:2.000000,", "000000.m4s"]
    # A new epoch: the discontinuity, then its init, then the segment.
    second = lines.index('#EXT-X-MAP:URI="init-1.mp4"')
    assert lines[second - 1] == "#EXT-X-DISCONTINUITY"
    assert lines[second + 2] == "000002.m4s"


def test_same_init_after_a_discontinuity_is_mapped_again() -> None:
    segments = [Segment("a.m4s", 2.0, init_uri="init.mp4"),
                Segment("b.m4s", 2.0, discontinuity=True, init_uri="init.mp4")]
    assert len(_tags(render_live_playlist(segments, media_sequence=0), "#EXT-X-MAP")) == 2


def test_parse_reads_map_onto_the_first_segment_after_it() -> None:
    text = ('#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n'
            '#EXT-X-MAP:URI="init_0.mp4"\n#EXTINF:2.0,\nseg_00000.m4s\n#EXTINF:2.0,\n'
            'seg_00001.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init_1.mp4",BYTERANGE="720@0"\n'
            '#EXTINF:1.5,\nseg_00002.m4s\n')
    parsed = parse_media_playlist(text)
    assert parsed.segments == (Segment("seg_00000.m4s", 2.0, init_uri="init_0.mp4"),
                               Segment("seg_00001.m4s", 2.0),
                               Segment("seg_00002.m4s", 1.5, True, "init_1.mp4"))


def test_parse_skips_low_latency_tags_and_counts_skipped_segments() -> None:
    window = _window(0, 10)
    low_latency = LowLatency(PART, open_parts=_parts(10, 3), preload_hint="000010.3.m4s",
                             reports=(RenditionReport("../sd/index.m3u8", 10, 2),))
    full = parse_media_playlist(render_live_playlist(window, media_sequence=40,
                                                     low_latency=low_latency))
    assert [s.uri for s in full.segments] == [s.uri for s in window]
    assert full.segments[0].init_uri == "init-0.mp4" and full.media_sequence == 40
    assert all(s.parts == () for s in full.segments)  # parts are not read back
    delta = parse_media_playlist(render_live_playlist(
        window, media_sequence=40, low_latency=LowLatency(PART, skip=True)))
    assert delta.media_sequence == 43
    assert [s.uri for s in delta.segments] == [s.uri for s in window[3:]]


def test_low_latency_playlist_order_of_tags() -> None:
    window = _window(100, 6)
    low_latency = LowLatency(PART, open_parts=_parts(106, 3), preload_hint="000106.3.m4s",
                             reports=(RenditionReport("../sd/index.m3u8", 106, 2),
                                      RenditionReport("../audio/index.m3u8", 105, None)))
    text = render_live_playlist(window, media_sequence=100, low_latency=low_latency)
    lines = text.splitlines()
    assert lines[:7] == [
        "#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-TARGETDURATION:2",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.6,CAN-SKIP-UNTIL=12",
        "#EXT-X-PART-INF:PART-TARGET=0.2", "#EXT-X-MEDIA-SEQUENCE:100"]
    # Parts of a complete segment come before its EXTINF and URI.
    uri = lines.index("000104.m4s")
    assert lines[uri - 11:uri - 1] == [
        f'#EXT-X-PART:DURATION=0.2,URI="000104.{i}.m4s"' + (",INDEPENDENT=YES" if i == 0 else "")
        for i in range(10)]
    assert lines[uri - 12] == "000103.m4s"  # the segment before has no parts
    assert lines[uri - 1] == "#EXTINF:2.000000,"
    # Then the segment in progress, the hint and the reports, last.
    assert lines[-6:] == [
        '#EXT-X-PART:DURATION=0.2,URI="000106.0.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.2,URI="000106.1.m4s"',
        '#EXT-X-PART:DURATION=0.2,URI="000106.2.m4s"',
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="000106.3.m4s"',
        '#EXT-X-RENDITION-REPORT:URI="../sd/index.m3u8",LAST-MSN=106,LAST-PART=2',
        '#EXT-X-RENDITION-REPORT:URI="../audio/index.m3u8",LAST-MSN=105']
    assert "#EXT-X-SKIP" not in text and "#EXT-X-ENDLIST" not in text


def test_parts_are_written_only_in_low_latency_live_playlists() -> None:
    window = _window(0, 4)
    assert "#EXT-X-PART" not in render_live_playlist(window, media_sequence=0)
    assert "#EXT-X-PART" not in render_recording_playlist(window, ended=False)
    assert "#EXT-X-VERSION:6" in render_recording_playlist(window, ended=False)


def test_server_control_follows_target_and_part_target() -> None:
    window = [Segment("a.m4s", 3.9, init_uri="i.mp4"), Segment("b.m4s", 4.0)]
    text = render_live_playlist(window, media_sequence=0, min_target=4,
                                low_latency=LowLatency(0.33334, preload_hint="c.0.m4s"))
    assert "#EXT-X-TARGETDURATION:4" in text
    assert ("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.00002,"
            "CAN-SKIP-UNTIL=24") in text
    assert "#EXT-X-PART-INF:PART-TARGET=0.33334" in text


def test_open_segment_beginning_a_new_epoch() -> None:
    window = _window(0, 4)
    low_latency = LowLatency(PART, open_parts=_parts(4, 2), open_discontinuity=True,
                             open_init_uri="init-1.mp4", preload_hint="000004.2.m4s")
    lines = render_live_playlist(window, media_sequence=0, low_latency=low_latency).splitlines()
    last_uri = lines.index("000003.m4s")
    assert lines[last_uri + 1:last_uri + 6] == [
        "#EXT-X-DISCONTINUITY", '#EXT-X-MAP:URI="init-1.mp4"',
        '#EXT-X-PART:DURATION=0.2,URI="000004.0.m4s",INDEPENDENT=YES',
        '#EXT-X-PART:DURATION=0.2,URI="000004.1.m4s"',
        '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="000004.2.m4s"']


def test_ended_low_latency_playlist_has_no_segment_in_progress() -> None:
    low_latency = LowLatency(PART, open_parts=_parts(4, 2), preload_hint="000004.2.m4s")
    text = render_live_playlist(_window(0, 4), media_sequence=0, ended=True,
                                low_latency=low_latency)
    assert "000004." not in text and "#EXT-X-PRELOAD-HINT" not in text
    assert text.splitlines()[-1] == "#EXT-X-ENDLIST"


@pytest.mark.parametrize(("count", "skipped"), [(6, 0), (7, 0), (8, 1), (10, 3)])
def test_delta_update_skips_segments_ending_before_the_skip_boundary(count: int,
                                                                      skipped: int) -> None:
    # Two-second segments: CAN-SKIP-UNTIL is 12 s. A segment ending exactly 12 s before
    # the end is kept.
    window = _window(50, count)
    text = render_live_playlist(window, media_sequence=50, discontinuity_sequence=4,
                                low_latency=LowLatency(PART, preload_hint="next.m4s", skip=True))
    skip_tags = _tags(text, "#EXT-X-SKIP")
    assert skip_tags == ([f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}"] if skipped else [])
    lines = text.splitlines()
    # The full playlist's sequence numbers, whatever is skipped.
    assert "#EXT-X-MEDIA-SEQUENCE:50" in lines and "#EXT-X-DISCONTINUITY-SEQUENCE:4" in lines
    shown = [line for line in lines if line.endswith(".m4s") and not line.startswith("#")]
    assert shown == [s.uri for s in window[skipped:]]
    # The init in force is mapped before the first segment shown, once.
    assert _tags(text, "#EXT-X-MAP") == ['#EXT-X-MAP:URI="init-0.mp4"']
    assert lines[lines.index('#EXT-X-MAP:URI="init-0.mp4"') + 2] == window[skipped].uri
    if skipped:
        assert lines.index(skip_tags[0]) < lines.index('#EXT-X-MAP:URI="init-0.mp4"')


def test_delta_update_with_a_discontinuity_among_and_after_the_skipped() -> None:
    window = [Segment("000000.m4s", 2.0, init_uri="init-0.mp4"),
              Segment("000001.m4s", 2.0, discontinuity=True, init_uri="init-1.mp4"),
              *[Segment(f"{n:06d}.m4s", 2.0) for n in range(2, 4)],
              Segment("000004.m4s", 2.0, discontinuity=True, init_uri="init-2.mp4"),
              *[Segment(f"{n:06d}.m4s", 2.0, parts=_parts(n) if n >= 9 else ())
                for n in range(5, 11)]]
    text = render_live_playlist(window, media_sequence=0, discontinuity_sequence=1,
                                low_latency=LowLatency(PART, preload_hint="000011.0.m4s",
                                                       skip=True))
    lines = text.splitlines()
    # 22 s in all: the first four end 14 s or more before the end and go.
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=4" in lines
    assert "#EXT-X-DISCONTINUITY-SEQUENCE:1" in lines
    first = lines.index("000004.m4s")
    assert lines[first - 3:first] == ["#EXT-X-DISCONTINUITY", '#EXT-X-MAP:URI="init-2.mp4"',
                                      "#EXTINF:2.000000,"]
    assert _tags(text, "#EXT-X-MAP") == ['#EXT-X-MAP:URI="init-2.mp4"']
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    # A shorter window (16 s): only 000001 goes, and the init it brought is in force for
    # the first segment shown.
    shorter = render_live_playlist(window[1:9], media_sequence=1, discontinuity_sequence=1,
                                   low_latency=LowLatency(PART, preload_hint="x", skip=True))
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=1" in shorter
    after = shorter.splitlines()
    assert after[after.index("000002.m4s") - 2] == '#EXT-X-MAP:URI="init-1.mp4"'
    assert _tags(shorter, "#EXT-X-MAP") == ['#EXT-X-MAP:URI="init-1.mp4"',
                                            '#EXT-X-MAP:URI="init-2.mp4"']


def test_full_playlist_ignores_nothing_when_skip_is_not_asked() -> None:
    text = render_live_playlist(_window(0, 10), media_sequence=0,
                                low_latency=LowLatency(PART, preload_hint="x"))
    assert "#EXT-X-SKIP" not in text and "000000.m4s" in text


SD = Rendition("sd", "SD", 640, 360, 800, 96, False, "avc1.64001e", fps=30.0)
HD = Rendition("hd", "HD", 1280, 720, 2500, 128, False, "avc1.64001f", fps=30.0)
AUDIO = Rendition("audio", "Audio", 0, 0, 0, 96, True, AAC_LC)


def test_master_with_audio_group() -> None:
    text = render_master_playlist([AUDIO, SD, HD], independent_segments=True)
    assert text.splitlines() == [
        "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS",
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Audio",DEFAULT=YES,AUTOSELECT=YES,'
        'CHANNELS="2",URI="audio/index.m3u8"',
        f'#EXT-X-STREAM-INF:BANDWIDTH={HD.bandwidth + AUDIO.bandwidth},RESOLUTION=1280x720,'
        f'CODECS="avc1.64001f,{AAC_LC}",FRAME-RATE=30.000,AUDIO="audio"',
        "hd/index.m3u8",
        f'#EXT-X-STREAM-INF:BANDWIDTH={SD.bandwidth + AUDIO.bandwidth},RESOLUTION=640x360,'
        f'CODECS="avc1.64001e,{AAC_LC}",FRAME-RATE=30.000,AUDIO="audio"',
        "sd/index.m3u8",
        f'#EXT-X-STREAM-INF:BANDWIDTH={AUDIO.bandwidth},CODECS="{AAC_LC}"',
        "audio/index.m3u8",
    ]


def test_master_codec_already_listed_is_not_repeated() -> None:
    listed = Rendition("sd", "SD", 640, 360, 800, 96, False, f"avc1.64001e,{AAC_LC}")
    assert f'CODECS="avc1.64001e,{AAC_LC}",AUDIO="audio"' in render_master_playlist(
        [listed, AUDIO])


def test_master_without_audio_only_rendition_or_with_muxed_audio_has_no_group() -> None:
    source = Rendition("source", "source", 1280, 720, 3000, 0, True,
                       f"avc1.640028,{AAC_LC}", copy=True, fps=25.0)
    for ladder in ([source], [SD, HD], [AUDIO]):
        text = render_master_playlist(ladder)
        assert "#EXT-X-MEDIA" not in text and "AUDIO=" not in text
        assert "#EXT-X-INDEPENDENT-SEGMENTS" not in text
    assert render_master_playlist([source], independent_segments=True).splitlines() == [
        "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-STREAM-INF:BANDWIDTH={source.bandwidth},RESOLUTION=1280x720,'
        f'CODECS="avc1.640028,{AAC_LC}",FRAME-RATE=25.000',
        "source/index.m3u8"]
