"""Fuzz target: reading a media playlist (transcode/hls_playlist.py), as SessionOutput
reads the ones ffmpeg uploads.

The only error allowed out is `PlaylistError`. A playlist that parses has finite,
non-negative durations, and our own rendering of its segments parses to the same URIs.
"""

from __future__ import annotations

import math

from transcode.hls_playlist import (
    PlaylistError,
    parse_media_playlist,
    render_recording_playlist,
)


def check(data: bytes) -> None:
    try:
        playlist = parse_media_playlist(data.decode("utf-8", "replace"))
    except PlaylistError:
        return
    assert all(math.isfinite(s.duration) and s.duration >= 0 for s in playlist.segments)
    text = render_recording_playlist(playlist.segments, ended=playlist.ended)
    again = parse_media_playlist(text)
    assert [s.uri for s in again.segments] == [s.uri for s in playlist.segments]
