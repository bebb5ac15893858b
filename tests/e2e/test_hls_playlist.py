"""hls_playlist: reading ffmpeg's playlists, and players (ffprobe, PyAV) opening ours."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av
import pytest

from transcode.hls_playlist import (
    PlaylistError,
    Segment,
    parse_media_playlist,
    render_live_playlist,
    render_master_playlist,
    render_recording_playlist,
    target_duration,
)
from transcode.ladder import AAC_LC, Rendition

SD = Rendition("sd", "SD", 320, 180, 500, 96, True, f"avc1.64001e,{AAC_LC}", fps=30.0)
HD = Rendition("hd", "HD", 640, 360, 1500, 128, True, f"avc1.64001f,{AAC_LC}", fps=30.0)
AUDIO = Rendition("audio", "Audio", 0, 0, 0, 64, True, AAC_LC)


def _ffmpeg_hls(folder: Path, *, seconds: int, audio_only: bool = False) -> Path:
    folder.mkdir(parents=True)
    inputs = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    codecs = ["-c:a", "aac"]
    if not audio_only:
        inputs = ["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", *inputs]
        codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", *codecs]
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs, "-t", str(seconds),
         *codecs, "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
         "-hls_segment_filename", str(folder / "seg_%05d.ts"), str(folder / "index.m3u8")],
        check=True, timeout=60)
    return folder


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hls")
    _ffmpeg_hls(root / "av", seconds=4)
    _ffmpeg_hls(root / "audio", seconds=4, audio_only=True)
    return root


def _ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True, capture_output=True, timeout=60).stdout
    return float(json.loads(out)["format"]["duration"])


def _republish(source: Path, target: Path) -> list[Segment]:
    """Copy ffmpeg's segments under our names (000000.ts ...), as SessionOutput does."""
    target.mkdir(parents=True)
    parsed = parse_media_playlist((source / "index.m3u8").read_text())
    ours = []
    for number, segment in enumerate(parsed.segments):
        shutil.copy(source / segment.uri, target / f"{number:06d}.ts")
        ours.append(Segment(f"{number:06d}.ts", segment.duration))
    return ours


def test_parses_ffmpeg_playlist(media: Path) -> None:
    parsed = parse_media_playlist((media / "av" / "index.m3u8").read_text())
    assert parsed.target_duration == 1
    assert parsed.media_sequence == 0
    assert parsed.ended
    assert [s.uri for s in parsed.segments] == [f"seg_{i:05d}.ts" for i in range(4)]
    assert sum(s.duration for s in parsed.segments) == pytest.approx(4.0, abs=0.05)


def test_parse_is_tolerant_of_layout_and_unknown_tags() -> None:
    text = ("\ufeff#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:2\r\n"
            "#EXT-X-MEDIA-SEQUENCE:7\r\n#EXT-X-DISCONTINUITY-SEQUENCE:2\r\n"
            "#EXT-X-PLAYLIST-TYPE:EVENT\r\n#EXT-X-SOMETHING-NEW:X=1\r\n\r\n"
            "#EXTINF:2.002000,a title\r\nseg_00007.ts\r\n#EXT-X-DISCONTINUITY\r\n"
            "#EXTINF:1.5\r\nseg_00008.ts?x=1\r\n#EXTINF:2.0,\r\n")  # cut off mid-write
    parsed = parse_media_playlist(text)
    assert parsed.media_sequence == 7
    assert parsed.discontinuity_sequence == 2
    assert parsed.target_duration == 2
    assert parsed.segments == (Segment("seg_00007.ts", 2.002),
                               Segment("seg_00008.ts?x=1", 1.5, discontinuity=True))
    assert not parsed.ended


@pytest.mark.parametrize("text", ["", "hello\n", "#EXTM3U\nseg_0.ts\n",
                                  "#EXTM3U\n#EXTINF:abc,\nseg_0.ts\n",
                                  "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:x\n",
                                  # Found by scripts/fuzz (playlist): OverflowError before.
                                  "#EXTM3U\n#EXT-X-TARGETDURATION:inf\n",
                                  "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-Infinity\n"])
def test_parse_rejects_what_is_not_a_media_playlist(text: str) -> None:
    with pytest.raises(PlaylistError):
        parse_media_playlist(text)


def test_target_duration_rounds_up_but_ignores_float_noise() -> None:
    assert target_duration([2.0, 1.9]) == 2
    assert target_duration([2.0000001]) == 2
    assert target_duration([2.1]) == 3
    assert target_duration([], floor=4) == 4


def test_live_playlist_window_with_discontinuity() -> None:
    window = [Segment("000005.ts", 2.0), Segment("000006.ts", 2.4, discontinuity=True),
              Segment("000007.ts", 2.0)]
    text = render_live_playlist(window, media_sequence=5, discontinuity_sequence=1)
    lines = text.splitlines()
    assert lines[:5] == ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:3",
                         "#EXT-X-MEDIA-SEQUENCE:5", "#EXT-X-DISCONTINUITY-SEQUENCE:1"]
    assert lines.index("#EXT-X-DISCONTINUITY") == lines.index("000006.ts") - 2
    assert "#EXT-X-ENDLIST" not in lines and "#EXT-X-PLAYLIST-TYPE" not in text
    assert "#EXT-X-TARGETDURATION:6" in render_live_playlist(window, media_sequence=5,
                                                             min_target=6)
    parsed = parse_media_playlist(text)
    assert parsed.segments == tuple(window)
    assert parsed.media_sequence == 5 and parsed.discontinuity_sequence == 1


def test_recording_playlist_event_then_vod() -> None:
    segments = [Segment("000000.ts", 2.0), Segment("000001.ts", 1.0)]
    live = render_recording_playlist(segments, ended=False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in live and "#EXT-X-ENDLIST" not in live
    final = render_recording_playlist(segments, ended=True)
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in final
    assert final.splitlines()[-1] == "#EXT-X-ENDLIST"
    assert parse_media_playlist(final).ended


def test_master_playlist_order_and_attributes() -> None:
    text = render_master_playlist([AUDIO, SD, HD])
    lines = text.splitlines()
    assert lines[:2] == ["#EXTM3U", "#EXT-X-VERSION:3"]
    assert lines[2:] == [
        f'#EXT-X-STREAM-INF:BANDWIDTH={HD.bandwidth},RESOLUTION=640x360,'
        f'CODECS="avc1.64001f,{AAC_LC}",FRAME-RATE=30.000',
        "hd/index.m3u8",
        f'#EXT-X-STREAM-INF:BANDWIDTH={SD.bandwidth},RESOLUTION=320x180,'
        f'CODECS="avc1.64001e,{AAC_LC}",FRAME-RATE=30.000',
        "sd/index.m3u8",
        f'#EXT-X-STREAM-INF:BANDWIDTH={AUDIO.bandwidth},CODECS="{AAC_LC}"',
        "audio/index.m3u8",
    ]


def test_ffprobe_plays_rendered_vod_playlist(media: Path, tmp_path: Path) -> None:
    segments = _republish(media / "av", tmp_path / "sd")
    playlist = tmp_path / "sd" / "index.m3u8"
    playlist.write_text(render_recording_playlist(segments, ended=True))
    assert _ffprobe_duration(playlist) == pytest.approx(4.0, abs=0.3)


def test_ffprobe_plays_live_window_across_a_discontinuity(media: Path, tmp_path: Path) -> None:
    first = _republish(media / "av", tmp_path / "a")
    # A second "epoch": the same media again, whose clock starts over.
    window = [Segment(f"a/{s.uri}", s.duration) for s in first[-2:]]
    window += [Segment(f"a/{s.uri}", s.duration, discontinuity=i == 0)
               for i, s in enumerate(first[:2])]
    playlist = tmp_path / "live.m3u8"
    playlist.write_text(render_live_playlist(window, media_sequence=2, ended=True))
    assert _ffprobe_duration(playlist) == pytest.approx(4.0, abs=0.3)


def test_pyav_opens_rendered_master(media: Path, tmp_path: Path) -> None:
    for name, folder in (("sd", "av"), ("audio", "audio")):
        segments = _republish(media / folder, tmp_path / name)
        (tmp_path / name / "index.m3u8").write_text(
            render_recording_playlist(segments, ended=True))
    master = tmp_path / "master.m3u8"
    master.write_text(render_master_playlist([AUDIO, SD]))
    with av.open(str(master)) as container:
        kinds = sorted(s.type for s in container.streams)
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (320, 180)
        decoded = sum(1 for _ in container.decode(video=0))
    assert kinds.count("video") == 1 and kinds.count("audio") == 2
    assert decoded == pytest.approx(120, abs=3)
