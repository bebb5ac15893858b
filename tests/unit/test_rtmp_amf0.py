"""AMF0: every type round-trips, a real connect command encodes to the exact bytes, and
hostile input (truncated, lying lengths, deep nesting, unknown markers) is an Amf0Error."""

from __future__ import annotations

import math
import random
import struct
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mediaserver.amf0 import (
    MAX_DEPTH,
    UNDEFINED,
    Amf0Error,
    Amf0Value,
    EcmaArray,
    decode_all,
    decode_one,
    encode,
)


def _s(text: str) -> bytes:
    """A short-string payload: u16 length then UTF-8, as written out by hand below."""
    raw = text.encode()
    return struct.pack(">H", len(raw)) + raw


def test_connect_command_exact_bytes() -> None:
    body = encode(
        "connect",
        1.0,
        {
            "app": "live",
            "type": "nonprivate",
            "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
            "tcUrl": "rtmp://127.0.0.1:1935/live",
        },
    )
    expected = (
        b"\x02\x00\x07connect"
        + b"\x00\x3f\xf0\x00\x00\x00\x00\x00\x00"  # 1.0 as a big-endian float64
        + b"\x03"
        + b"\x00\x03app" + b"\x02\x00\x04live"
        + b"\x00\x04type" + b"\x02\x00\x0anonprivate"
        + b"\x00\x08flashVer" + b"\x02\x00\x1fFMLE/3.0 (compatible; FMSc/1.0)"
        + b"\x00\x05tcUrl" + b"\x02\x00\x1artmp://127.0.0.1:1935/live"
        + b"\x00\x00\x09"
    )  # fmt: skip
    assert body == expected
    assert decode_all(body) == [
        "connect",
        1.0,
        {
            "app": "live",
            "type": "nonprivate",
            "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
            "tcUrl": "rtmp://127.0.0.1:1935/live",
        },
    ]


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0.0, b"\x00" + bytes(8)),
        (-2.5, b"\x00\xc0\x04\x00\x00\x00\x00\x00\x00"),
        (1e300, b"\x00" + struct.pack(">d", 1e300)),
        (math.inf, b"\x00\x7f\xf0\x00\x00\x00\x00\x00\x00"),
        (True, b"\x01\x01"),
        (False, b"\x01\x00"),
        ("", b"\x02\x00\x00"),
        ("héllo ✓", b"\x02" + _s("héllo ✓")),
        (None, b"\x05"),
        (UNDEFINED, b"\x06"),
        ({}, b"\x03\x00\x00\x09"),
        ({"a": None}, b"\x03" + _s("a") + b"\x05\x00\x00\x09"),
        (EcmaArray(), b"\x08\x00\x00\x00\x00\x00\x00\x09"),
        (
            EcmaArray(w=1.0),
            b"\x08\x00\x00\x00\x01" + _s("w") + b"\x00\x3f\xf0" + bytes(6) + b"\x00\x00\x09",
        ),
        ([], b"\x0a\x00\x00\x00\x00"),
        ([True, None], b"\x0a\x00\x00\x00\x02\x01\x01\x05"),
        (
            datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
            b"\x0b" + struct.pack(">d", 1000.0) + b"\x00\x00",
        ),
    ],
)
def test_each_type_encodes_to_its_wire_form_and_back(value: Amf0Value, wire: bytes) -> None:
    assert encode(value) == wire
    decoded, end = decode_one(wire)
    assert end == len(wire)
    assert decoded == value
    assert type(decoded) is type(value)


def test_ints_encode_as_numbers_and_bools_stay_bools() -> None:
    assert encode(3) == encode(3.0)
    assert decode_all(encode(3, True, 0, False)) == [3.0, True, 0.0, False]
    assert [type(v) for v in decode_all(encode(1, True))] == [float, bool]


def test_nan_round_trips() -> None:
    value, _ = decode_one(encode(math.nan))
    assert isinstance(value, float) and math.isnan(value)


def test_nested_values_round_trip() -> None:
    metadata = EcmaArray(
        duration=0.0,
        width=1280,
        height=720,
        videocodecid=7.0,
        encoder="obs-output module (libobs version 30.0.0)",
        stereo=True,
    )
    values: list[Amf0Value] = [
        "@setDataFrame",
        "onMetaData",
        metadata,
        {"level": "status", "code": "NetStream.Publish.Start", "details": [1, "two", {}]},
        [[[]], EcmaArray(inner={"deep": [None, UNDEFINED]})],
        datetime(2024, 3, 1, 12, 30, 15, 250000, tzinfo=UTC),
    ]
    decoded = decode_all(encode(*values))
    assert decoded == values
    assert isinstance(decoded[2], EcmaArray)
    assert repr(decoded[2]).startswith("EcmaArray({")
    nested = decoded[4]
    assert isinstance(nested, list) and isinstance(nested[1], EcmaArray)
    assert type(nested[1]["inner"]) is dict


def test_dates_are_utc_and_ignore_the_time_zone_field() -> None:
    paris = timezone(timedelta(hours=1))
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=paris)
    decoded, _ = decode_one(encode(moment))
    assert decoded == moment and isinstance(decoded, datetime) and decoded.tzinfo is UTC
    # A writer that fills in the (reserved) time zone field: the instant is unchanged.
    wire = b"\x0b" + struct.pack(">dh", 86_400_000.0, -60)
    assert decode_one(wire)[0] == datetime(1970, 1, 2, tzinfo=UTC)


def test_long_strings() -> None:
    text = "é" * 40_000  # 80,000 UTF-8 bytes: beyond a u16 length
    wire = encode(text)
    assert wire[:5] == b"\x0c" + struct.pack(">I", 80_000)
    assert decode_one(wire) == (text, len(wire))
    at_limit = "x" * 0xFFFF
    assert encode(at_limit)[:3] == b"\x02\xff\xff"
    assert decode_all(encode(at_limit, text)) == [at_limit, text]
    # A long string may also carry short text.
    assert decode_one(b"\x0c\x00\x00\x00\x02hi") == ("hi", 7)


def test_ecma_array_count_is_not_trusted() -> None:
    pairs = _s("a") + b"\x01\x01" + _s("b") + b"\x05" + b"\x00\x00\x09"
    for count in (0, 1, 2, 1000, 0xFFFFFFFF):
        wire = b"\x08" + struct.pack(">I", count) + pairs + b"\x05"
        assert decode_all(wire) == [EcmaArray(a=True, b=None), None]


def test_typed_object_decodes_as_dict() -> None:
    wire = b"\x10" + _s("flash.geom.Point") + _s("x") + b"\x00" + struct.pack(">d", 2.0)
    wire += b"\x00\x00\x09"
    assert decode_one(wire) == ({"x": 2.0}, len(wire))


def test_xml_document_decodes_as_text() -> None:
    assert decode_one(b"\x0f\x00\x00\x00\x04<a/>") == ("<a/>", 9)


def test_decode_one_walks_a_message() -> None:
    body = encode("_result", 1, None, {"code": "ok"})
    offset = 0
    seen: list[Amf0Value] = []
    while offset < len(body):
        value, offset = decode_one(body, offset)
        seen.append(value)
    assert seen == ["_result", 1.0, None, {"code": "ok"}]
    assert decode_one(bytearray(body), 0)[0] == "_result"
    assert decode_one(memoryview(body)[10:], 0)[0] == 1.0
    with pytest.raises(Amf0Error, match=f"offset {len(body)}"):
        decode_one(body, len(body))
    with pytest.raises(Amf0Error):
        decode_one(body, -1)


def _composite() -> bytes:
    return encode(
        {
            "n": 1.5,
            "b": True,
            "s": "text",
            "z": None,
            "u": UNDEFINED,
            "e": EcmaArray(k="v"),
            "l": [1, "x", [None]],
            "d": datetime(2020, 5, 6, tzinfo=UTC),
            "L": "y" * 70_000,
        }
    )


def test_truncation_at_every_byte_is_an_amf0_error() -> None:
    wire = _composite()
    assert decode_one(wire)[1] == len(wire)
    # The long string dominates the size; cutting inside it is one case, not 70,000.
    cut_points = [n for n in range(len(wire)) if n < 200 or n > len(wire) - 200]
    for n in [*cut_points, len(wire) // 2]:
        with pytest.raises(Amf0Error):
            decode_one(wire[:n])


def test_truncated_command_decodes_whole_values_or_raises() -> None:
    values: list[Amf0Value] = ["publish", 5.0, None, "sk_abc", "live"]
    wire = encode(*values)
    for n in range(len(wire)):
        try:
            decoded = decode_all(wire[:n])
        except Amf0Error:
            continue
        # Only a cut exactly between two values decodes, and then to a prefix of them.
        assert decoded == values[: len(decoded)]
        assert encode(*decoded) == wire[:n]


def test_error_messages_say_what_and_where() -> None:
    with pytest.raises(Amf0Error, match=r"truncated string at offset 3: needs 5 bytes, 2 left"):
        decode_one(b"\x02\x00\x05ab")
    with pytest.raises(Amf0Error, match=r"truncated number at offset 11"):
        decode_all(encode("connect") + b"\x00\x3f")


def test_lying_lengths_are_refused_before_allocating() -> None:
    with pytest.raises(Amf0Error, match="long string"):
        decode_one(b"\x0c\xff\xff\xff\xff" + b"x" * 10)
    with pytest.raises(Amf0Error, match="claims 4294967295 items"):
        decode_one(b"\x0a\xff\xff\xff\xff\x05\x05")
    with pytest.raises(Amf0Error, match="object key"):
        decode_one(b"\x03\xff\xff" + b"k" * 10)


def _nested_arrays(levels: int) -> bytes:
    return b"\x0a\x00\x00\x00\x01" * levels + b"\x05"


def test_deep_nesting_is_refused() -> None:
    assert decode_one(_nested_arrays(MAX_DEPTH))[1] == MAX_DEPTH * 5 + 1
    with pytest.raises(Amf0Error, match="nested deeper"):
        decode_one(_nested_arrays(MAX_DEPTH + 1))
    # Far beyond Python's recursion limit: still a clean Amf0Error.
    with pytest.raises(Amf0Error, match="nested deeper"):
        decode_one(_nested_arrays(100_000))
    objects = (b"\x03" + _s("k")) * 100_000
    with pytest.raises(Amf0Error, match="nested deeper"):
        decode_one(objects)


def test_encoding_refuses_deep_or_self_referencing_values() -> None:
    value: list[Amf0Value] = []
    for _ in range(MAX_DEPTH - 1):
        value = [value]
    assert decode_one(encode(value))[0] == value  # MAX_DEPTH containers: allowed both ways
    with pytest.raises(Amf0Error, match="nested deeper"):
        encode([value])
    loop: dict[str, Amf0Value] = {}
    loop["self"] = loop
    with pytest.raises(Amf0Error, match="self-referencing"):
        encode(loop)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x11\x06\x01a", "AVM\\+ switch .*AMF3"),
        (b"\x07\x00\x01", "reference"),
        (b"\x09", "object end marker"),
        (b"\x04", "reserved AMF0 marker 0x04"),
        (b"\x0d", "reserved AMF0 marker 0x0d"),
        (b"\x0e", "reserved AMF0 marker 0x0e"),
        (b"\x12", "unknown AMF0 marker 0x12"),
        (b"\xff", "unknown AMF0 marker 0xff"),
    ],
)
def test_unsupported_markers_are_refused(wire: bytes, message: str) -> None:
    with pytest.raises(Amf0Error, match=message):
        decode_all(encode("connect") + wire)
    with pytest.raises(Amf0Error, match="offset 10"):
        decode_all(encode("connect") + wire)


def test_malformed_content_is_refused() -> None:
    with pytest.raises(Amf0Error, match="not valid UTF-8"):
        decode_one(b"\x02\x00\x02\xff\xfe")
    with pytest.raises(Amf0Error, match="not a finite number"):
        decode_one(b"\x0b" + struct.pack(">d", math.nan) + b"\x00\x00")
    with pytest.raises(Amf0Error, match="out of range"):
        decode_one(b"\x0b" + struct.pack(">d", 1e300) + b"\x00\x00")


def test_encoding_refuses_what_amf0_cannot_carry() -> None:
    with pytest.raises(Amf0Error, match="time zone"):
        encode(datetime(2024, 1, 1))
    with pytest.raises(Amf0Error, match="float64"):
        encode(10**400)
    with pytest.raises(TypeError, match="bytes"):
        encode(b"raw")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keys must be str"):
        encode({1: "one"})  # type: ignore[dict-item]


def test_random_garbage_never_escapes_as_another_exception() -> None:
    rng = random.Random(1935)
    seeds = [encode("connect", 1, {"app": "live"}), _nested_arrays(3), b"\x08\x00\x00\x00\x09"]
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data = bytearray(rng.randbytes(rng.randint(0, 48)))
        try:
            decode_all(bytes(data))
        except Amf0Error:
            pass
