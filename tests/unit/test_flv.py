"""FLV encoding (transcode.flv_feed's framing, mediaserver.flv's metadata) and the FLV file
sink: exact bytes, checked by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mediaserver.amf0 import EcmaArray, decode_all, encode
from mediaserver.flv import (
    enhanced_audio,
    enhanced_video_fourcc,
    metadata_fourcc,
    metadata_tag,
    streams_in_metadata,
)
from mediaserver.media_sink import FlvFileSink
from transcode.flv_feed import TagKind, flv_header, flv_tag


def test_file_header_flags() -> None:
    assert flv_header() == b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
    assert flv_header(audio=False)[4] == 0x01
    assert flv_header(video=False)[4] == 0x04


def test_tag_layout_and_timestamp_high_byte() -> None:
    data = b"\x17\x01abc"
    out = flv_tag(TagKind.VIDEO, 0x12345678, data)
    assert out[0] == 9
    assert out[1:4] == (5).to_bytes(3, "big")
    assert out[4:7] == bytes.fromhex("345678")  # low 24 bits
    assert out[7] == 0x12  # then the high byte
    assert out[8:11] == b"\x00\x00\x00"
    assert out[11:16] == data
    assert out[16:] == (11 + 5).to_bytes(4, "big")
    assert flv_tag(TagKind.AUDIO, 2**32 + 7, b"")[4:8] == bytes.fromhex("00000700")  # wraps


def test_tag_size_limit() -> None:
    with pytest.raises(ValueError):
        flv_tag(TagKind.VIDEO, 0, bytes(0x1000000))


def test_metadata_tag_is_on_metadata_with_an_ecma_array() -> None:
    out = metadata_tag({"width": 640.0, "encoder": "obs"})
    assert out[0] == 18
    size = int.from_bytes(out[1:4], "big")
    values = decode_all(out[11 : 11 + size])
    assert values == ["onMetaData", {"width": 640.0, "encoder": "obs"}]
    assert isinstance(values[1], EcmaArray)


def test_streams_in_metadata() -> None:
    assert streams_in_metadata({"videocodecid": 7.0, "audiocodecid": 10.0}) == (True, True)
    assert streams_in_metadata({"videocodecid": 7.0}) == (False, True)
    assert streams_in_metadata({"audiocodecid": 10.0}) == (True, False)
    assert streams_in_metadata({}) == (True, True)


def test_enhanced_rtmp_recognised() -> None:
    assert enhanced_video_fourcc(bytes([0x17, 0x01])) is None  # classic AVC
    assert enhanced_video_fourcc(bytes([0x90]) + b"hvc1" + b"\x00") == "hvc1"
    assert enhanced_video_fourcc(bytes([0x91]) + b"av01") == "av01"
    assert enhanced_video_fourcc(bytes([0x80])) == "?"
    assert enhanced_video_fourcc(b"") is None
    assert enhanced_audio(bytes([0x90]) + b"Opus")
    assert not enhanced_audio(bytes([0xAF, 0x01]))
    assert metadata_fourcc({"videocodecid": float(int.from_bytes(b"av01", "big"))}) == "av01"
    assert metadata_fourcc({"videocodecid": 7.0}) is None
    assert metadata_fourcc({"videocodecid": "avc1"}) is None
    assert metadata_fourcc({}) is None


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_metadata_videocodecid_that_is_no_finite_number_is_not_enhanced(value: float) -> None:
    # Found by scripts/fuzz (flv): an onMetaData videocodecid of inf made int() raise
    # OverflowError out of the session instead of an ordinary metadata message.
    body = encode("@setDataFrame", "onMetaData", EcmaArray(videocodecid=value))
    metadata = decode_all(body)[2]
    assert isinstance(metadata, dict)
    assert metadata_fourcc(metadata) is None


async def test_flv_file_sink(tmp_path: Path) -> None:
    path = tmp_path / "out.flv"
    sink = FlvFileSink(path)
    sink.on_metadata({"videocodecid": 7.0})
    sink.on_video(0, b"\x17\x00seq")
    sink.on_video(33, b"\x27\x01frame")
    await sink.close()
    data = path.read_bytes()
    assert data[:13] == flv_header(audio=False, video=True)
    assert data.endswith(flv_tag(TagKind.VIDEO, 33, b"\x27\x01frame"))
    assert (sink.video_tags, sink.audio_tags) == (2, 0)
    with pytest.raises(RuntimeError):
        sink.on_audio(0, b"\xaf\x01")


async def test_flv_file_sink_without_metadata_announces_both(tmp_path: Path) -> None:
    sink = FlvFileSink(tmp_path / "out.flv")
    sink.on_audio(0, b"\xaf\x00\x12\x10")
    await sink.close()
    assert (tmp_path / "out.flv").read_bytes()[4] == 0x05
