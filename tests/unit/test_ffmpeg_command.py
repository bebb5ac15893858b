"""The ffmpeg argument list: one fragmented MP4 per rendition, keyframe alignment, sizes,
one audio encode shared by the video rungs, and the source copy."""

from __future__ import annotations

import math

import pytest

from config.settings import DEFAULT_LADDER
from transcode.command import STREAM_NAME, ladder_command, stream_url
from transcode.ladder import SourceInfo, plan_ladder, plan_passthrough
from transcode.part_timing import fragment_seconds, frame_seconds, part_target

BASE = "http://127.0.0.1:9/live/abc"
HD = SourceInfo(1280, 720, 30.0, "h264", "aac", "High", 31, 44_100)
VIDEO_ONLY = SourceInfo(1280, 720, 30.0, "h264", None)
AUDIO_ONLY = SourceInfo(None, None, None, None, "aac")
CMAF_FLAGS = {"frag_keyframe", "empty_moov", "default_base_moof", "cmaf"}


def outputs(args: list[str]) -> list[list[str]]:
    """The options of each output (everything after the input, split at output URLs)."""
    rest = args[args.index("pipe:0") + 1:]
    groups: list[list[str]] = []
    current: list[str] = []
    for arg in rest:
        current.append(arg)
        if arg.endswith("/" + STREAM_NAME):
            groups.append(current)
            current = []
    assert not current, current
    return groups


def option(group: list[str], name: str) -> str:
    return group[group.index(name) + 1]


def maps(group: list[str]) -> list[str]:
    return [group[i + 1] for i, arg in enumerate(group) if arg == "-map"]


def name_of(group: list[str]) -> str:
    return group[-1].split("/")[-2]


def test_ladder_outputs_follow_the_layout() -> None:
    renditions = plan_ladder(DEFAULT_LADDER, HD)
    args = ladder_command(renditions, HD, base_url=BASE + "/", run=3, segment_seconds=2,
                          preset="veryfast", ffmpeg_path="/usr/bin/ffmpeg")
    assert args[:4] == ["/usr/bin/ffmpeg", "-hide_banner", "-loglevel", "warning"]
    head = args[:args.index("-i") + 2]
    assert head[-2:] == ["-i", "pipe:0"] and "-f" in head and head[head.index("-f") + 1] == "flv"
    # Decoded with slice threads: frame threads would hold frames before the ladder.
    assert head[head.index("-thread_type") + 1] == "slice"
    groups = outputs(args)
    names = ["hd", "sd", "mobile", "audio", "source"]
    assert [g[-1] for g in groups] == [f"{BASE}/3/{n}/stream.mp4" for n in names]
    assert [g[-1] for g in groups] == [stream_url(BASE, 3, n) for n in names]
    for group in groups:
        # One fragmented MP4 (CMAF) per output, written as it comes by one long PUT.
        assert option(group, "-f") == "mp4"
        assert CMAF_FLAGS <= set(option(group, "-movflags").lstrip("+").split("+"))
        assert option(group, "-method") == "PUT"
    # One decode: a single split feeds the three video rungs.
    graph = option(args, "-filter_complex")
    assert graph.count("split=3") == 1
    for size in ("scale=1280:720", "scale=854:480", "scale=640:360"):
        assert size in graph
    assert graph.count("fps=fps=30") == 3


@pytest.mark.parametrize("part_seconds", [0.2, 0.333, 0.5, 1.0])
def test_fragment_length_comes_from_the_part_target(part_seconds: float) -> None:
    renditions = plan_ladder(DEFAULT_LADDER, HD)
    args = ladder_command(renditions, HD, base_url=BASE, run=1, segment_seconds=2,
                          preset="veryfast", part_seconds=part_seconds)
    groups = {name_of(g): g for g in outputs(args)}
    target = part_target(renditions, part_seconds)
    for rendition in renditions:
        group = groups[rendition.name]
        micros = int(option(group, "-frag_duration"))
        assert micros == round(fragment_seconds(rendition, part_seconds) * 1_000_000)
        # ffmpeg closes a fragment before the first frame at or past frag_duration: the
        # whole frames that makes stay within the part target the playlists declare.
        frame = frame_seconds(rendition)
        frames = math.ceil(round(micros / 1_000_000 / frame, 6))
        assert frames * frame <= target + 1e-9
        assert frames * frame > part_seconds - 2 * frame  # as long as fits, not shorter
    # The ladder's source copy is the recording only: nobody plays its parts live, so it
    # is cut at keyframes alone (fewest fragments).
    assert "-frag_duration" not in groups["source"]


def test_video_rungs_are_silent_with_aligned_keyframes_and_rate_control() -> None:
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
        # No sound on a video rung: the audio rendition is its audio group.
        assert len(maps(group)) == 1 and maps(group)[0].startswith("[")
        assert "-c:a" not in group and "-b:a" not in group
    # The sound is encoded once, as the audio rendition.
    assert args.count("-c:a") == 1
    assert maps(audio) == ["0:a"]
    assert option(audio, "-c:a") == "aac" and option(audio, "-b:a") == "64k"
    assert option(audio, "-ar") == "48000" and option(audio, "-ac") == "2"
    assert "-c:v" not in audio
    # Beside the ladder, the source itself remuxed: the recording at source quality.
    assert maps(source) == ["0:v", "0:a"]
    assert option(source, "-c") == "copy"
    assert "libx264" not in source and "-c:a" not in source


def test_method_put_only_for_http_urls() -> None:
    renditions = plan_ladder(DEFAULT_LADDER, HD)
    for base, method in (("https://ingest.example/x", True), ("http://h/x", True),
                         ("/var/tmp/out", False), ("file:out", False)):
        args = ladder_command(renditions, HD, base_url=base, run=1, segment_seconds=2,
                              preset="veryfast")
        groups = outputs(args)
        assert len(groups) == 5
        for group in groups:
            assert ("-method" in group) is method, (base, name_of(group))
            if method:
                assert option(group, "-method") == "PUT"
        assert groups[0][-1] == f"{base}/1/hd/stream.mp4"


def test_video_only_source_maps_no_audio() -> None:
    renditions = plan_ladder(DEFAULT_LADDER, VIDEO_ONLY)
    args = ladder_command(renditions, VIDEO_ONLY, base_url=BASE, run=1, segment_seconds=2,
                          preset="veryfast")
    assert "0:a" not in args and "-c:a" not in args
    groups = outputs(args)
    assert [name_of(g) for g in groups] == ["hd", "sd", "mobile", "source"]
    assert maps(groups[-1]) == ["0:v"]


def test_audio_only_source_has_no_video_filters() -> None:
    renditions = plan_ladder(DEFAULT_LADDER, AUDIO_ONLY)
    args = ladder_command(renditions, AUDIO_ONLY, base_url=BASE, run=1, segment_seconds=2,
                          preset="veryfast")
    assert "-filter_complex" not in args and "libx264" not in args
    groups = outputs(args)
    assert [name_of(g) for g in groups] == ["audio", "source"]
    assert args.count("-c:a") == 1
    assert maps(groups[1]) == ["0:a"] and option(groups[1], "-c") == "copy"


def test_passthrough_is_one_copied_output() -> None:
    args = ladder_command(plan_passthrough(HD), HD, base_url=BASE, run=2, segment_seconds=2,
                          preset="veryfast")
    (group,) = outputs(args)
    assert group[-1] == f"{BASE}/2/source/stream.mp4"
    assert option(group, "-c") == "copy"
    assert option(group, "-f") == "mp4" and option(group, "-method") == "PUT"
    assert CMAF_FLAGS <= set(option(group, "-movflags").lstrip("+").split("+"))
    assert "-filter_complex" not in args and "libx264" not in args
    assert maps(group) == ["0:v", "0:a"]


def test_ntsc_rates_stay_exact() -> None:
    source = SourceInfo(1280, 720, 29.97, "h264", "aac")
    args = ladder_command(plan_ladder(DEFAULT_LADDER, source), source, base_url=BASE, run=1,
                          segment_seconds=2, preset="veryfast")
    assert "fps=fps=30000/1001" in option(args, "-filter_complex")


def test_no_renditions_is_an_error() -> None:
    with pytest.raises(ValueError):
        ladder_command([], HD, base_url=BASE, run=1, segment_seconds=2, preset="veryfast")
