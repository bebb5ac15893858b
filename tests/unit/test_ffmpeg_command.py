"""The ffmpeg argument list: outputs per rendition, keyframe alignment, sizes, copy."""

from __future__ import annotations

import pytest

from config.settings import DEFAULT_LADDER
from transcode.command import ladder_command
from transcode.ladder import SourceInfo, plan_ladder, plan_passthrough

BASE = "http://127.0.0.1:9/live/abc"
HD = SourceInfo(1280, 720, 30.0, "h264", "aac", "High", 31, 44_100)
VIDEO_ONLY = SourceInfo(1280, 720, 30.0, "h264", None)
AUDIO_ONLY = SourceInfo(None, None, None, None, "aac")


def outputs(args: list[str]) -> list[list[str]]:
    """The options of each output (everything after the input, split at output URLs)."""
    rest = args[args.index("pipe:0") + 1:]
    groups: list[list[str]] = []
    current: list[str] = []
    for arg in rest:
        current.append(arg)
        if arg.startswith("http://") and current[-2] != "-hls_segment_filename":
            groups.append(current)
            current = []
    assert not current, current
    return groups


def option(group: list[str], name: str) -> str:
    return group[group.index(name) + 1]


def test_ladder_outputs_follow_the_layout() -> None:
    renditions = plan_ladder(DEFAULT_LADDER, HD)
    args = ladder_command(renditions, HD, base_url=BASE + "/", run=3, segment_seconds=2,
                          preset="veryfast", ffmpeg_path="/usr/bin/ffmpeg")
    assert args[:4] == ["/usr/bin/ffmpeg", "-hide_banner", "-loglevel", "warning"]
    assert args[args.index("-i") - 2:args.index("-i") + 2] == ["-f", "flv", "-i", "pipe:0"]
    groups = outputs(args)
    names = ["hd", "sd", "mobile", "audio", "source"]
    assert [g[-1] for g in groups] == [f"{BASE}/3/{n}/index.m3u8" for n in names]
    for name, group in zip(names, groups, strict=True):
        assert option(group, "-f") == "hls"
        assert option(group, "-method") == "PUT"
        assert option(group, "-hls_time") == "2"
        assert option(group, "-hls_list_size") == "0"
        assert option(group, "-hls_segment_filename") == f"{BASE}/3/{name}/seg_%05d.ts"
    # One decode: a single split feeds the three video rungs.
    graph = option(args, "-filter_complex")
    assert graph.count("split=3") == 1
    for size in ("scale=1280:720", "scale=854:480", "scale=640:360"):
        assert size in graph
    assert graph.count("fps=fps=30") == 3


def test_video_rungs_have_aligned_keyframes_and_rate_control() -> None:
    renditions = plan_ladder(DEFAULT_LADDER, HD)
    args = ladder_command(renditions, HD, base_url=BASE, run=1, segment_seconds=4,
                          preset="faster")
    hd, sd, mobile, audio, source = outputs(args)
    for group, kbps, level in ((hd, 2500, "3.1"), (sd, 1000, "3.1"), (mobile, 600, "3.0")):
        assert option(group, "-c:v") == "libx264"
        assert option(group, "-preset") == "faster"
        assert option(group, "-profile:v") == "high"
        assert option(group, "-level:v") == level
        assert option(group, "-force_key_frames") == "expr:gte(t,n_forced*4)"
        assert option(group, "-sc_threshold") == "0"
        assert int(option(group, "-g")) <= 4 * 30
        assert option(group, "-b:v") == option(group, "-maxrate") == f"{kbps}k"
        assert "zerolatency" not in group
        assert option(group, "-c:a") == "aac" and option(group, "-ar") == "48000"
        assert option(group, "-ac") == "2"
        assert group.count("-map") == 2 and "0:a" in group
    assert option(hd, "-b:a") == "128k"
    assert option(audio, "-c:a") == "aac" and option(audio, "-b:a") == "64k"
    assert audio.count("-map") == 1 and option(audio, "-map") == "0:a"
    assert "-c:v" not in audio
    assert option(source, "-c") == "copy"
    assert "libx264" not in source


def test_video_only_source_maps_no_audio() -> None:
    renditions = plan_ladder(DEFAULT_LADDER, VIDEO_ONLY)
    args = ladder_command(renditions, VIDEO_ONLY, base_url=BASE, run=1, segment_seconds=2,
                          preset="veryfast")
    assert "0:a" not in args and "-c:a" not in args
    assert [g[-1].split("/")[-2] for g in outputs(args)] == ["hd", "sd", "mobile", "source"]


def test_audio_only_source_has_no_video_filters() -> None:
    renditions = plan_ladder(DEFAULT_LADDER, AUDIO_ONLY)
    args = ladder_command(renditions, AUDIO_ONLY, base_url=BASE, run=1, segment_seconds=2,
                          preset="veryfast")
    assert "-filter_complex" not in args and "libx264" not in args
    assert [g[-1].split("/")[-2] for g in outputs(args)] == ["audio", "source"]


def test_passthrough_is_one_copied_output() -> None:
    args = ladder_command(plan_passthrough(HD), HD, base_url=BASE, run=2, segment_seconds=2,
                          preset="veryfast")
    (group,) = outputs(args)
    assert group[-1] == f"{BASE}/2/source/index.m3u8"
    assert option(group, "-c") == "copy"
    assert "-filter_complex" not in args and "libx264" not in args
    assert "0:v" in group and "0:a" in group


def test_ntsc_rates_stay_exact() -> None:
    source = SourceInfo(1280, 720, 29.97, "h264", "aac")
    args = ladder_command(plan_ladder(DEFAULT_LADDER, source), source, base_url=BASE, run=1,
                          segment_seconds=2, preset="veryfast")
    assert "fps=fps=30000/1001" in option(args, "-filter_complex")


def test_no_renditions_is_an_error() -> None:
    with pytest.raises(ValueError):
        ladder_command([], HD, base_url=BASE, run=1, segment_seconds=2, preset="veryfast")
