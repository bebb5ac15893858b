"""AMF0 (Adobe Action Message Format 0): the value encoding of RTMP commands and of FLV
metadata (onMetaData), so shared by RTMP, WHIP and the FLV writers.

Pure bytes in, values out. Decoding treats its input as hostile: every length is checked
against the bytes that remain before anything is allocated, nesting is bounded, and every
failure is an `Amf0Error` naming what was wrong and at which offset.

Value mapping:
    number (0x00)              <-> float (ints are encoded as numbers)
    boolean (0x01)             <-> bool
    string (0x02), long (0x0C) <-> str (long string chosen when UTF-8 exceeds 65535 bytes)
    object (0x03)              <-> dict[str, value]
    typed object (0x10)         -> dict (the class name is dropped)
    null (0x05)                <-> None
    undefined (0x06)           <-> UNDEFINED
    ECMA array (0x08)          <-> EcmaArray (a dict subclass, so onMetaData round-trips)
    strict array (0x0A)        <-> list
    date (0x0B)                <-> aware datetime (encoded in UTC; the time zone is ignored)
    XML document (0x0F)         -> str
References (0x07), the AVM+ switch (0x11) and the reserved markers are refused.
"""

from __future__ import annotations

import enum
import math
import struct
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

__all__ = [
    "MAX_DEPTH",
    "UNDEFINED",
    "Amf0Error",
    "Amf0Object",
    "Amf0Value",
    "EcmaArray",
    "Undefined",
    "decode_all",
    "decode_one",
    "encode",
]

# Markers (AMF0 specification, section 2.1).
NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
MOVIECLIP = 0x04
NULL = 0x05
UNDEFINED_MARKER = 0x06
REFERENCE = 0x07
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
RECORDSET = 0x0E
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10
AVMPLUS = 0x11

# Deep enough for any real command or metadata; shallow enough that hostile input can't
# exhaust the Python stack.
MAX_DEPTH = 32

_U16_MAX = 0xFFFF
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Undefined(enum.Enum):
    """The AMF0 `undefined` value, distinct from null (None)."""

    UNDEFINED = "undefined"

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = Undefined.UNDEFINED


class EcmaArray(dict[str, "Amf0Value"]):
    """An AMF0 ECMA array: a dict that re-encodes as ECMA array, not as object.

    `@setDataFrame`/`onMetaData` carry their metadata this way, and some players expect
    the same marker back.
    """

    def __repr__(self) -> str:
        return f"EcmaArray({dict.__repr__(self)})"


Amf0Value: TypeAlias = (
    float | bool | str | dict[str, "Amf0Value"] | list["Amf0Value"] | datetime | Undefined | None
)
Amf0Object: TypeAlias = dict[str, Amf0Value]


class Amf0Error(ValueError):
    """Truncated or malformed AMF0 input (or a value AMF0 can't carry)."""


# --------------------------------------------------------------------------- encoding


def encode(*values: Amf0Value) -> bytes:
    """Encode values one after another, as an RTMP command message body expects."""
    out = bytearray()
    for value in values:
        _encode_value(out, value, depth=0)
    return bytes(out)


def _encode_value(out: bytearray, value: Amf0Value, depth: int) -> None:
    # bool before numbers: bool is an int subclass.
    if isinstance(value, bool):
        out += bytes((BOOLEAN, 1 if value else 0))
    elif isinstance(value, int | float):
        _encode_number(out, value)
    elif isinstance(value, str):
        _encode_string_value(out, value)
    elif value is None:
        out.append(NULL)
    elif value is UNDEFINED:
        out.append(UNDEFINED_MARKER)
    elif isinstance(value, datetime):
        _encode_date(out, value)
    elif isinstance(value, dict | list | tuple):
        _encode_container(out, value, depth)
    else:
        raise TypeError(f"AMF0 cannot encode {type(value).__name__}")


def _encode_container(
    out: bytearray,
    value: dict[str, Amf0Value] | list[Amf0Value] | tuple[Amf0Value, ...],
    depth: int,
) -> None:
    # Same limit the decoder applies, which also stops a self-referencing value.
    if depth >= MAX_DEPTH:
        raise Amf0Error(f"value nested deeper than {MAX_DEPTH} levels (or self-referencing)")
    if isinstance(value, EcmaArray):
        out.append(ECMA_ARRAY)
        out += struct.pack(">I", len(value))
        _encode_pairs(out, value, depth)
    elif isinstance(value, dict):
        out.append(OBJECT)
        _encode_pairs(out, value, depth)
    else:
        out.append(STRICT_ARRAY)
        out += struct.pack(">I", len(value))
        for item in value:
            _encode_value(out, item, depth + 1)


def _encode_number(out: bytearray, value: float) -> None:
    try:
        number = float(value)
    except OverflowError as exc:  # an int beyond float range
        raise Amf0Error(f"{value} does not fit an AMF0 number (float64)") from exc
    out.append(NUMBER)
    out += struct.pack(">d", number)


def _encode_string_value(out: bytearray, value: str) -> None:
    raw = value.encode("utf-8")
    if len(raw) <= _U16_MAX:
        out.append(STRING)
        out += struct.pack(">H", len(raw))
    else:
        out.append(LONG_STRING)
        out += struct.pack(">I", len(raw))
    out += raw


def _encode_date(out: bytearray, value: datetime) -> None:
    if value.tzinfo is None:
        # A naive datetime has no defined instant; guessing a zone would shift it silently.
        raise Amf0Error("AMF0 dates need a time zone: pass an aware datetime")
    millis = (value - _EPOCH) / timedelta(milliseconds=1)
    out.append(DATE)
    out += struct.pack(">dh", millis, 0)


def _encode_pairs(out: bytearray, pairs: dict[str, Amf0Value], depth: int) -> None:
    for key, item in pairs.items():
        if not isinstance(key, str):
            raise TypeError(f"AMF0 object keys must be str, not {type(key).__name__}")
        raw = key.encode("utf-8")
        if len(raw) > _U16_MAX:
            raise Amf0Error(f"AMF0 object key too long ({len(raw)} bytes)")
        out += struct.pack(">H", len(raw))
        out += raw
        _encode_value(out, item, depth + 1)
    out += b"\x00\x00\x09"


# --------------------------------------------------------------------------- decoding


def decode_all(data: bytes | bytearray | memoryview) -> list[Amf0Value]:
    """Decode every value in `data` (e.g. a whole command message body)."""
    reader = _Reader(data, 0)
    values: list[Amf0Value] = []
    while reader.remaining:
        values.append(_decode_value(reader, depth=0))
    return values


def decode_one(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Amf0Value, int]:
    """Decode the value starting at `offset`; return it and the offset just past it."""
    if offset < 0:
        raise Amf0Error(f"negative offset {offset}")
    reader = _Reader(data, offset)
    value = _decode_value(reader, depth=0)
    return value, reader.pos


class _Reader:
    """A cursor over the input that refuses to read past its end."""

    def __init__(self, data: bytes | bytearray | memoryview, pos: int) -> None:
        self.view = memoryview(data).cast("B")
        self.pos = pos

    @property
    def remaining(self) -> int:
        return max(0, len(self.view) - self.pos)

    def take(self, size: int, what: str) -> memoryview:
        if size > self.remaining:
            raise Amf0Error(
                f"truncated {what} at offset {self.pos}: needs {size} bytes, {self.remaining} left"
            )
        chunk = self.view[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        value: int = struct.unpack(">H", self.take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = struct.unpack(">I", self.take(4, what))[0]
        return value

    def f64(self, what: str) -> float:
        value: float = struct.unpack(">d", self.take(8, what))[0]
        return value

    def utf8(self, size: int, what: str) -> str:
        start = self.pos
        raw = self.take(size, what)
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            raise Amf0Error(f"{what} at offset {start} is not valid UTF-8") from exc


def _decode_value(reader: _Reader, depth: int) -> Amf0Value:
    start = reader.pos
    marker = reader.u8("value marker")
    if marker == NUMBER:
        return reader.f64("number")
    if marker == BOOLEAN:
        return reader.u8("boolean") != 0
    if marker == STRING:
        return reader.utf8(reader.u16("string length"), "string")
    if marker == LONG_STRING:
        return reader.utf8(reader.u32("long string length"), "long string")
    if marker == XML_DOCUMENT:
        return reader.utf8(reader.u32("XML document length"), "XML document")
    if marker == NULL:
        return None
    if marker == UNDEFINED_MARKER:
        return UNDEFINED
    if marker == DATE:
        return _decode_date(reader)
    if marker in (OBJECT, ECMA_ARRAY, STRICT_ARRAY, TYPED_OBJECT):
        if depth >= MAX_DEPTH:
            raise Amf0Error(f"value at offset {start} nested deeper than {MAX_DEPTH} levels")
        return _decode_container(reader, marker, depth + 1)
    raise Amf0Error(_refusal(marker, start))


def _refusal(marker: int, offset: int) -> str:
    if marker == AVMPLUS:
        return (
            f"AVM+ switch (0x11) at offset {offset}: AMF3 values are not supported; "
            "the client must use object encoding 0 (AMF0)"
        )
    if marker == REFERENCE:
        return f"AMF0 reference (0x07) at offset {offset} is not supported"
    if marker == OBJECT_END:
        return f"object end marker (0x09) at offset {offset} outside an object"
    if marker in (MOVIECLIP, UNSUPPORTED, RECORDSET):
        return f"reserved AMF0 marker 0x{marker:02x} at offset {offset}"
    return f"unknown AMF0 marker 0x{marker:02x} at offset {offset}"


def _decode_date(reader: _Reader) -> datetime:
    start = reader.pos
    millis = reader.f64("date")
    reader.take(2, "date time zone")  # Spec: reserved, should be 0; readers ignore it.
    if not math.isfinite(millis):
        raise Amf0Error(f"date at offset {start} is not a finite number")
    try:
        return _EPOCH + timedelta(milliseconds=millis)
    except OverflowError as exc:
        raise Amf0Error(f"date at offset {start} is out of range") from exc


def _decode_container(reader: _Reader, marker: int, depth: int) -> Amf0Value:
    if marker == OBJECT:
        return _decode_pairs(reader, {}, depth)
    if marker == ECMA_ARRAY:
        # The count is only a hint: some encoders write a wrong one, so the end marker rules.
        reader.u32("ECMA array count")
        return _decode_pairs(reader, EcmaArray(), depth)
    if marker == TYPED_OBJECT:
        reader.utf8(reader.u16("typed object class name length"), "typed object class name")
        return _decode_pairs(reader, {}, depth)
    return _decode_strict_array(reader, depth)


def _decode_pairs(reader: _Reader, into: dict[str, Amf0Value], depth: int) -> Amf0Object:
    while True:
        key = reader.utf8(reader.u16("object key length"), "object key")
        if key == "" and reader.remaining and reader.view[reader.pos] == OBJECT_END:
            reader.pos += 1
            return into
        into[key] = _decode_value(reader, depth)


def _decode_strict_array(reader: _Reader, depth: int) -> list[Amf0Value]:
    start = reader.pos
    count = reader.u32("strict array count")
    # Each item takes at least one byte, so a count beyond what remains is a lie: refuse it
    # before building anything.
    if count > reader.remaining:
        raise Amf0Error(
            f"strict array at offset {start} claims {count} items "
            f"but only {reader.remaining} bytes remain"
        )
    return [_decode_value(reader, depth) for _ in range(count)]
