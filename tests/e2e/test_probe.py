"""probe_flv on the head of real FLV streams (made by ffmpeg), and on garbage."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.flv_reader import head_bytes, make_flv, read_flv
from transcode.flv_feed import flv_header
from transcode.probe import ProbeError, probe_flv


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("probe")


async def test_720p_with_audio(folder: Path) -> None:
    tags = read_flv(make_flv(folder / "hd.flv", width=1280, height=720, seconds=2, gop=240))
    info = await probe_flv(head_bytes(tags))
    assert (info.width, info.height) == (1280, 720)
    assert info.fps == pytest.approx(30.0)
    assert info.video_codec == "h264" and info.audio_codec == "aac"
    assert info.video_profile == "Constrained Baseline" and info.video_level == 31
    assert info.audio_sample_rate == 44_100
    assert info.has_video and info.has_audio


async def test_360p_25fps(folder: Path) -> None:
    tags = read_flv(make_flv(folder / "sd.flv", fps=25, seconds=2))
    info = await probe_flv(head_bytes(tags))
    assert (info.width, info.height, info.fps) == (640, 360, 25.0)


async def test_video_only(folder: Path) -> None:
    tags = read_flv(make_flv(folder / "vo.flv", audio=False, seconds=2))
    info = await probe_flv(head_bytes(tags))
    assert (info.width, info.height) == (640, 360)
    assert info.audio_codec is None and not info.has_audio


async def test_audio_only(folder: Path) -> None:
    tags = read_flv(make_flv(folder / "ao.flv", video=False, seconds=4))
    info = await probe_flv(head_bytes(tags))
    assert not info.has_video and info.width is None and info.fps is None
    assert info.audio_codec == "aac" and info.audio_sample_rate == 44_100


@pytest.mark.parametrize("head", [
    b"",
    b"garbage" * 1000,
    flv_header(audio=True, video=True),  # a header and nothing else
])
async def test_nothing_decodable_is_a_probe_error(head: bytes) -> None:
    with pytest.raises(ProbeError):
        await probe_flv(head)
