"""The content types of what the pipeline stores and the edge serves, named once."""

from __future__ import annotations

__all__ = ["JPEG_TYPE", "M3U8_TYPE", "M4S_TYPE", "MP4_TYPE", "TS_TYPE"]

M3U8_TYPE = "application/vnd.apple.mpegurl"
TS_TYPE = "video/mp2t"
MP4_TYPE = "video/mp4"
# A CMAF media segment or part (RFC 8216bis names no other).
M4S_TYPE = "video/iso.segment"
JPEG_TYPE = "image/jpeg"
