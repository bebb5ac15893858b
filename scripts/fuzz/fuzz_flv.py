"""Fuzz target: FLV tags as a published stream makes them (transcode/flv_feed.py,
mediaserver/flv.py).

The input is read as an FLV file (header optional, then tags); each tag body goes where an
RTMP audio/video/data message body goes: classified and framed by `FeedTag.from_body`,
checked for Enhanced RTMP, script data decoded as the session does (AMF0, then the
onMetaData checks), and queued in a small `FlvFeed`. Allowed errors: `Amf0Error` from the
script data only; everything else must hold for any bytes. `FlvFeed.push` swallows and
logs whatever goes wrong inside it (the RTMP reader must never see it), so an error it
logs counts as a finding too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from mediaserver import amf0
from mediaserver.flv import (
    enhanced_audio,
    enhanced_video_fourcc,
    metadata_fourcc,
    metadata_tag,
    onmetadata,
    streams_in_metadata,
)
from transcode.flv_feed import TAG_HEADER_SIZE, FeedTag, FlvFeed, TagKind

_KINDS = {int(kind): kind for kind in TagKind}


class _ErrorsLogged(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_ERRORS = _ErrorsLogged()
logging.getLogger("transcode.flv_feed").addHandler(_ERRORS)


def _tags(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, timestamp, body) of each tag; a short last body is kept as it is."""
    pos = 13 if data.startswith(b"FLV") else 0
    while pos + TAG_HEADER_SIZE <= len(data):
        kind = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        timestamp = int.from_bytes(data[pos + 4 : pos + 7], "big") | data[pos + 7] << 24
        body = data[pos + TAG_HEADER_SIZE : pos + TAG_HEADER_SIZE + size]
        yield kind, timestamp, body
        pos += TAG_HEADER_SIZE + size + 4


def _metadata(body: bytes) -> None:
    # What RtmpConnection._on_data does with a data message.
    try:
        values = amf0.decode_all(body)
    except amf0.Amf0Error:
        return
    metadata = onmetadata(values)
    if metadata is None:
        return
    fourcc = metadata_fourcc(metadata)
    assert fourcc is None or len(fourcc) == 4
    streams_in_metadata(metadata)
    metadata_tag(metadata)


def check(data: bytes) -> None:
    _ERRORS.records.clear()
    feed = FlvFeed(4096, stream="fuzz")
    for kind, timestamp, body in _tags(data):
        if kind not in _KINDS:
            continue
        tag = FeedTag.from_body(_KINDS[kind], timestamp, body)
        assert tag.body == body and tag.timestamp_ms == timestamp
        assert len(tag.data) == TAG_HEADER_SIZE + len(body) + 4
        if kind == TagKind.VIDEO:
            fourcc = enhanced_video_fourcc(body)
            assert fourcc is None or len(fourcc) in (1, 4)
        elif kind == TagKind.AUDIO:
            enhanced_audio(body)
        else:
            _metadata(body)
        feed.push(tag)
        assert 0 <= feed.size <= feed.capacity
    assert feed.init_tags().startswith(b"FLV\x01")
    assert not _ERRORS.records, [r.getMessage() for r in _ERRORS.records]
