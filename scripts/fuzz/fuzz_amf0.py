"""Fuzz target: AMF0 decoding (mediaserver/amf0.py), as RTMP commands and metadata use it.

The only error allowed out is `Amf0Error`. What decodes must encode again, and decoding
that encoding must give the same values (decode(encode(decode(x))) == decode(x)).
"""

from __future__ import annotations

from mediaserver import amf0
from mediaserver.amf0 import Amf0Error


def check(data: bytes) -> None:
    try:
        amf0.decode_one(data, len(data) // 2)
    except Amf0Error:
        pass
    try:
        values = amf0.decode_all(data)
    except Amf0Error:
        return
    again = amf0.decode_all(amf0.encode(*values))
    # repr: NaN is not equal to itself, and EcmaArray must stay an EcmaArray.
    assert repr(again) == repr(values), (values, again)
