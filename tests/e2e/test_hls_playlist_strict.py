"""Our rendered playlists pass a strict outside check (hls-parser, tests/support/hls_validator),
and the check does reject playlists that break the rules we rely on."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

import pytest

from support.hls_validator import validate_playlists
from transcode.hls_playlist import (
    LowLatency,
    Part,
    RenditionReport,
    Segment,
    render_live_playlist,
    render_master_playlist,
    render_recording_playlist,
)
from transcode.ladder import AAC_LC, Rendition

PART = 0.2
REPORTS = (RenditionReport("../sd/index.m3u8", 112, 2), RenditionReport("../audio/index.m3u8",
                                                                        112, None))


def _parts(number: int, count: int = 10, duration: float = PART) -> tuple[Part, ...]:
    return tuple(Part(f"{number:06d}.{i}.m4s", duration, independent=i == 0)
                 for i in range(count))


def _window(first: int, count: int, *, init: str = "init-0.mp4",
            with_parts: int = 2) -> list[Segment]:
    return [Segment(f"{n:06d}.m4s", 2.0, init_uri=init if n == first else None,
                    parts=_parts(n) if n >= first + count - with_parts else ())
            for n in range(first, first + count)]


# The live edge of a 12-segment window from 000100: three parts of 000112 out, the
# fourth hinted.
LOW_LATENCY = LowLatency(PART, open_parts=_parts(112, 3), preload_hint="000112.3.m4s",
                         reports=REPORTS)


def _epochs() -> list[Segment]:
    """Two epochs, the second from 000106 on with its own init; parts on the last two."""
    window = _window(100, 12)
    window[6] = Segment("000106.m4s", 2.0, discontinuity=True, init_uri="init-1.mp4")
    return window


def _good() -> dict[str, str]:
    ts = [Segment("000000.ts", 2.0), Segment("000001.ts", 2.002, discontinuity=True),
          Segment("000002.ts", 1.5)]
    source = Rendition("source", "source", 1280, 720, 3000, 0, True, f"avc1.640028,{AAC_LC}",
                       copy=True, fps=25.0)
    ladder = [Rendition("hd", "HD", 1280, 720, 2500, 128, False, "avc1.64001f", fps=30.0),
              Rendition("sd", "SD", 640, 360, 800, 96, False, "avc1.64001e", fps=30.0),
              Rendition("audio", "Audio", 0, 0, 0, 96, True, AAC_LC)]
    return {
        "plain live ts": render_live_playlist(ts, media_sequence=4, discontinuity_sequence=1),
        "plain live fmp4": render_live_playlist(_window(100, 6), media_sequence=100),
        "ll live": render_live_playlist(_window(100, 12), media_sequence=100,
                                        low_latency=LOW_LATENCY),
        "ll live, epochs": render_live_playlist(_epochs(), media_sequence=100,
                                                discontinuity_sequence=2,
                                                low_latency=LOW_LATENCY),
        "ll delta update": render_live_playlist(_epochs(), media_sequence=100,
                                                discontinuity_sequence=2,
                                                low_latency=replace(LOW_LATENCY, skip=True)),
        "ll delta update, nothing to skip": render_live_playlist(
            _window(106, 6), media_sequence=106, low_latency=replace(LOW_LATENCY, skip=True)),
        "ll open segment starts an epoch": render_live_playlist(
            _window(100, 12), media_sequence=100,
            low_latency=replace(LOW_LATENCY, open_discontinuity=True, open_init_uri="init-1.mp4")),
        "ll, hint only": render_live_playlist(
            _window(100, 12), media_sequence=100,
            low_latency=replace(LOW_LATENCY, open_parts=(), preload_hint="000112.0.m4s")),
        "ll ended": render_live_playlist(_window(100, 12), media_sequence=100, ended=True,
                                         low_latency=LOW_LATENCY),
        "recording event": render_recording_playlist(_epochs(), ended=False),
        "recording vod": render_recording_playlist(_epochs(), ended=True),
        "recording vod ts": render_recording_playlist(ts, ended=True),
        "master, audio group": render_master_playlist(ladder, independent_segments=True),
        "master, passthrough": render_master_playlist([source], independent_segments=True),
        "master, ts ladder": render_master_playlist(
            [Rendition("sd", "SD", 640, 360, 800, 96, True, f"avc1.64001e,{AAC_LC}"),
             ladder[2]]),
    }


def test_rendered_playlists_pass_the_strict_check() -> None:
    validate_playlists(_good())


def _ll() -> str:
    return _good()["ll live"]


def _move_last_parts_after_their_segment(text: str) -> str:
    lines = text.splitlines()
    uri = lines.index("000111.m4s")
    parts = [line for line in lines if line.startswith('#EXT-X-PART:') and "000111." in line]
    rest = [line for line in lines if line not in parts]
    at = rest.index("000111.m4s") + 1
    assert uri
    return "\n".join(rest[:at] + parts + rest[at:]) + "\n"


def _hint_before_a_part(text: str) -> str:
    lines = text.splitlines()
    hint = next(line for line in lines if line.startswith("#EXT-X-PRELOAD-HINT"))
    lines.remove(hint)
    lines.insert(lines.index('#EXT-X-PART:DURATION=0.2,URI="000112.2.m4s"'), hint)
    return "\n".join(lines) + "\n"


def _without_first_map(text: str) -> str:
    return text.replace('#EXT-X-MAP:URI="init-0.mp4"\n', "", 1)


BROKEN: dict[str, tuple[Callable[[], str], str]] = {
    # name: (playlist, a piece of the expected complaint)
    "part longer than PART-TARGET": (
        lambda: _ll().replace('DURATION=0.2,URI="000112.1.m4s"',
                              'DURATION=0.25,URI="000112.1.m4s"'),
        "hls-parser: Invalid Playlist : PART-TARGET is the maximum duration"),
    "parts listed after their segment": (
        lambda: _move_last_parts_after_their_segment(_ll()), "harness: "),
    "parts far from the live edge": (
        lambda: render_live_playlist(_window(100, 12, with_parts=4), media_sequence=100,
                                     low_latency=LOW_LATENCY),
        "hls-parser: Invalid Playlist : Remove EXT-X-PART tags"),
    "parts without a preload hint": (
        lambda: render_live_playlist(_window(100, 12), media_sequence=100,
                                     low_latency=replace(LOW_LATENCY, preload_hint=None)),
        "hls-parser: Invalid Playlist : If the Playlist contains EXT-X-PART tags"),
    "preload hint before a part": (
        lambda: _hint_before_a_part(_ll()),
        "hls-parser: Invalid Playlist : If the Playlist contains EXT-X-PART tags"),
    "preload hint in a complete segment": (
        lambda: _ll().replace('#EXT-X-PART:DURATION=0.2,URI="000111.9.m4s"\n',
                              '#EXT-X-PART:DURATION=0.2,URI="000111.9.m4s"\n'
                              '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="000112.0.m4s"\n'),
        "harness: EXT-X-PRELOAD-HINT must come after"),
    "part hold back under two part targets": (
        lambda: _ll().replace("PART-HOLD-BACK=0.6", "PART-HOLD-BACK=0.3"),
        "harness: PART-HOLD-BACK 0.3 is less than twice"),
    "skip boundary under six target durations": (
        lambda: _ll().replace("CAN-SKIP-UNTIL=12", "CAN-SKIP-UNTIL=10"),
        "hls-parser: Invalid Playlist : The Skip Boundary must be at least six times"),
    "delta update skipping too much": (
        lambda: _good()["ll delta update"].replace(
            'SKIPPED-SEGMENTS=5\n#EXT-X-MAP:URI="init-0.mp4"\n#EXTINF:2.000000,\n000105.m4s\n'
            '#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-1.mp4"\n#EXTINF:2.000000,\n000106.m4s\n',
            'SKIPPED-SEGMENTS=7\n#EXT-X-MAP:URI="init-1.mp4"\n'),
        "harness: EXT-X-SKIP skipped segments within the Skip Boundary"),
    "skip in a version 6 playlist": (
        lambda: _good()["ll delta update"].replace("#EXT-X-VERSION:9", "#EXT-X-VERSION:6"),
        "hls-parser: Invalid Playlist : EXT-X-VERSION needs to be 9"),
    "map in a version 3 playlist": (
        lambda: _good()["plain live fmp4"].replace("#EXT-X-VERSION:6", "#EXT-X-VERSION:3"),
        "hls-parser: Invalid Playlist : EXT-X-VERSION needs to be 6"),
    "fmp4 window without its first map": (
        lambda: _without_first_map(_good()["ll live, epochs"]),
        "harness: segment 0 (000100.m4s) has no EXT-X-MAP"),
    "map after the open segment's parts": (
        lambda: _good()["ll open segment starts an epoch"].replace(
            '#EXT-X-MAP:URI="init-1.mp4"\n', "").replace(
            '#EXT-X-PART:DURATION=0.2,URI="000112.1.m4s"\n',
            '#EXT-X-PART:DURATION=0.2,URI="000112.1.m4s"\n#EXT-X-MAP:URI="init-1.mp4"\n'),
        "hls-parser: Invalid Playlist : EXT-X-MAP must appear before the first EXT-X-PART"),
    "target duration under an EXTINF": (
        lambda: _good()["recording vod"].replace("#EXT-X-TARGETDURATION:2",
                                                 "#EXT-X-TARGETDURATION:1"),
        "hls-parser: Invalid Playlist : EXTINF duration"),
    "audio group variant without an audio codec": (
        lambda: _good()["master, audio group"].replace('avc1.64001e,mp4a.40.2"',
                                                       'avc1.64001e"'),
        "harness: variant sd/index.m3u8 plays an audio group but its CODECS"),
    "audio group variant whose bandwidth leaves the audio out": (
        lambda: re.sub(r"BANDWIDTH=\d+,RESOLUTION=640x360", "BANDWIDTH=1000,RESOLUTION=640x360",
                       _good()["master, audio group"]),
        "harness: variant sd/index.m3u8 BANDWIDTH 1000 does not include its audio's"),
    "variant naming an audio group that does not exist": (
        lambda: _good()["master, audio group"].replace('AUDIO="audio"', 'AUDIO="aac"', 1),
        "hls-parser: Invalid Playlist : AUDIO attribute MUST match"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_playlist_is_rejected(name: str) -> None:
    make, expected = BROKEN[name]
    with pytest.raises(AssertionError) as rejected:
        validate_playlists({name: make()})
    assert f"{name}: " in str(rejected.value) and expected in str(rejected.value)
