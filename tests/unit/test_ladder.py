"""plan_ladder / plan_passthrough: which renditions a source gets, their sizes and tags."""

from __future__ import annotations

import json

import pytest

from config.loading import load_settings
from config.settings import DEFAULT_LADDER
from transcode.ladder import SourceInfo, h264_codec_tag, plan_ladder, plan_passthrough, x264_level


def source(width: int, height: int, fps: float = 30.0, audio: bool = True) -> SourceInfo:
    return SourceInfo(width, height, fps, "h264", "aac" if audio else None)


def shape(width: int, height: int) -> list[tuple[str, int, int]]:
    plans = plan_ladder(DEFAULT_LADDER, source(width, height))
    return [(r.name, r.width, r.height) for r in plans]


@pytest.mark.parametrize(("size", "expected"), [
    ((1920, 1080), [("hd1080", 1920, 1080), ("sd", 854, 480), ("mobile", 640, 360),
                    ("audio", 0, 0)]),
    ((1280, 720), [("hd", 1280, 720), ("sd", 854, 480), ("mobile", 640, 360),
                   ("audio", 0, 0)]),
    # 600p: no HD rung (never upscale), SD and mobile keep the 16:10 aspect.
    ((960, 600), [("sd", 768, 480), ("mobile", 576, 360), ("audio", 0, 0)]),
    ((640, 360), [("mobile", 640, 360), ("audio", 0, 0)]),
    # Shorter than every rung: one rendition at the source's own size.
    ((426, 240), [("mobile", 426, 240), ("audio", 0, 0)]),
])
def test_rungs_fit_the_source(size: tuple[int, int], expected: list[tuple[str, int, int]]
                              ) -> None:
    assert shape(*size) == expected


def test_hd_alternatives_keep_one() -> None:
    labels = [r.label for r in plan_ladder(DEFAULT_LADDER, source(1920, 1080))]
    assert labels.count("HD") == 1


def test_widths_are_even() -> None:
    for width, height in ((1366, 768), (1279, 719), (720, 576), (1080, 1920)):
        for rendition in plan_ladder(DEFAULT_LADDER, source(width, height)):
            assert rendition.width % 2 == 0 and rendition.height % 2 == 0


def test_audio_less_source_has_no_audio_rung() -> None:
    plans = plan_ladder(DEFAULT_LADDER, source(1280, 720, audio=False))
    assert [r.name for r in plans] == ["hd", "sd", "mobile"]
    assert not any(r.has_audio for r in plans)
    assert all("mp4a" not in r.codecs for r in plans)


def test_audio_only_source_gets_the_audio_rung() -> None:
    plans = plan_ladder(DEFAULT_LADDER, SourceInfo(None, None, None, None, "aac"))
    assert [(r.name, r.audio_only, r.codecs) for r in plans] == [("audio", True, "mp4a.40.2")]


def test_codec_tags_and_levels() -> None:
    plans = {r.name: r for r in plan_ladder(DEFAULT_LADDER, source(1920, 1080))}
    # Video rungs carry no sound: their CODECS name the video alone.
    assert plans["hd1080"].codecs == "avc1.640028"  # High, level 4.0
    assert plans["sd"].codecs == "avc1.64001f"  # level 3.1
    assert plans["mobile"].codecs == "avc1.64001e"  # level 3.0
    assert plans["audio"].codecs == "mp4a.40.2"
    assert h264_codec_tag("Constrained Baseline", 30) == "avc1.42401e"
    assert h264_codec_tag("Main", 31) == "avc1.4d001f"
    assert x264_level(720, 60) == 32 and x264_level(1080, 60) == 42


def test_frame_rate_is_capped() -> None:
    plans = plan_ladder(DEFAULT_LADDER, source(1280, 720, fps=120))
    assert {r.fps for r in plans if not r.audio_only} == {60.0}
    assert plans[0].codecs.startswith("avc1.640020")  # 720p60: level 3.2


def test_bandwidth_counts_own_media_and_overhead() -> None:
    plans = {r.name: r for r in plan_ladder(DEFAULT_LADDER, source(1280, 720))}
    # A video rung's own media is video only; the sound is the audio rendition's.
    assert plans["hd"].bandwidth == int(2500 * 1000 * 1.1)
    assert plans["audio"].bandwidth == int(64 * 1000 * 1.1)


def test_video_rungs_are_silent_and_one_rendition_carries_the_sound() -> None:
    plans = plan_ladder(DEFAULT_LADDER, source(1920, 1080))
    video = [r for r in plans if not r.audio_only]
    audio = [r for r in plans if r.audio_only]
    assert video and all(not r.has_audio and r.audio_kbps == 0 for r in video)
    assert all("mp4a" not in r.codecs for r in video)
    (sound,) = audio
    assert (sound.name, sound.has_audio, sound.audio_kbps, sound.codecs) == (
        "audio", True, 64, "mp4a.40.2")
    assert plans[-1] is sound  # audio only comes last


def test_ladder_without_an_audio_rung_still_gets_one_audio_rendition() -> None:
    rungs = [r for r in DEFAULT_LADDER if r.height > 0]
    plans = plan_ladder(rungs, source(1280, 720))
    assert [r.name for r in plans] == ["hd", "sd", "mobile", "audio"]
    assert [r.has_audio for r in plans] == [False, False, False, True]
    # Its bitrate is the best the rungs asked for their sound.
    assert plans[-1].audio_only and plans[-1].audio_kbps == max(r.audio_kbps for r in rungs)
    assert plans[-1].codecs == "mp4a.40.2"
    # A silent source gets no audio rendition, rung or not.
    assert [r.name for r in plan_ladder(rungs, source(1280, 720, audio=False))] == [
        "hd", "sd", "mobile"]


def test_passthrough_is_the_source_copied() -> None:
    info = SourceInfo(1280, 720, 30.0, "h264", "aac", "Main", 31, 44_100)
    (rendition,) = plan_passthrough(info)
    assert (rendition.name, rendition.copy) == ("source", True)
    assert (rendition.width, rendition.height) == (1280, 720)
    assert rendition.codecs == "avc1.4d001f,mp4a.40.2"
    (silent,) = plan_passthrough(SourceInfo(640, 360, 25.0, "h264", None, "High", 30))
    assert silent.codecs == "avc1.64001e" and not silent.has_audio


def test_ladder_comes_from_settings() -> None:
    assert load_settings(environ={}).streaming.ladder == DEFAULT_LADDER
    custom = [
        {"name": "big", "label": "big", "height": 540, "video_kbps": 1500, "audio_kbps": 96},
        {"name": "small", "label": "small", "height": 270, "video_kbps": 400,
         "audio_kbps": 48},
    ]
    ladder = load_settings(environ={"ACADEMIA_LADDER": json.dumps(custom)}).streaming.ladder
    plans = plan_ladder(ladder, source(1280, 720))
    assert [(r.name, r.width, r.height, r.video_kbps) for r in plans] == [
        ("big", 960, 540, 1500), ("small", 480, 270, 400), ("audio", 0, 0, 0)]
    # No audio rung configured: the sound is encoded once, at the best rung's bitrate.
    assert plans[-1].audio_only and plans[-1].audio_kbps == 96
