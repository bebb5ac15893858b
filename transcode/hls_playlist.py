"""HLS playlists as text: parsing ffmpeg's media playlists, rendering the ones we publish.

We never forward ffmpeg's playlists: each ffmpeg run numbers its segments from zero,
while a session's playlists number them continuously across runs and publisher
reconnects. So we read ffmpeg's playlist only to learn which segments are finished and
how long they last, and write our own: a sliding live window, a recording that keeps
every segment (an EVENT playlist, VOD once finalised), and the master playlist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from transcode.ladder import Rendition

__all__ = [
    "MediaPlaylist",
    "PlaylistError",
    "Segment",
    "parse_media_playlist",
    "render_live_playlist",
    "render_master_playlist",
    "render_recording_playlist",
    "target_duration",
]

VERSION = 3


class PlaylistError(ValueError):
    """The text is not a media playlist we can read."""


@dataclass(frozen=True)
class Segment:
    """One entry of a media playlist; `discontinuity` puts EXT-X-DISCONTINUITY before it."""

    uri: str
    duration: float
    discontinuity: bool = False


@dataclass(frozen=True)
class MediaPlaylist:
    """What a media playlist says. `target_duration` is None when the tag is missing."""

    target_duration: int | None
    media_sequence: int
    discontinuity_sequence: int
    segments: tuple[Segment, ...]
    ended: bool


def _int_value(line: str) -> int:
    try:
        return int(float(line.split(":", 1)[1].strip()))
    except (IndexError, ValueError, OverflowError) as exc:  # inf: OverflowError
        raise PlaylistError(f"bad number in {line!r}") from exc


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Read a media playlist; unknown tags are skipped, a trailing EXTINF without URI too.

    A playlist caught mid-write may end with an EXTINF whose URI line is missing: that
    segment is simply not listed yet. Anything that is not an M3U raises PlaylistError.
    """
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines()]
    lines = [line for line in lines if line]
    if not lines or lines[0] != "#EXTM3U":
        raise PlaylistError("not an M3U playlist: #EXTM3U missing")
    target: int | None = None
    sequence = 0
    disc_sequence = 0
    ended = False
    segments: list[Segment] = []
    duration: float | None = None
    discontinuity = False
    for line in lines[1:]:
        if not line.startswith("#"):
            if duration is None:
                raise PlaylistError(f"segment {line!r} has no #EXTINF")
            segments.append(Segment(line, duration, discontinuity))
            duration, discontinuity = None, False
        elif line.startswith("#EXTINF:"):
            try:
                duration = float(line[len("#EXTINF:"):].split(",", 1)[0].strip())
            except ValueError as exc:
                raise PlaylistError(f"bad duration in {line!r}") from exc
            if not math.isfinite(duration) or duration < 0:
                raise PlaylistError(f"bad duration in {line!r}")
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = _int_value(line)
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = _int_value(line)
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            disc_sequence = _int_value(line)
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line == "#EXT-X-ENDLIST":
            ended = True
    return MediaPlaylist(target, sequence, disc_sequence, tuple(segments), ended)


def target_duration(durations: Sequence[float], floor: int = 1) -> int:
    """EXT-X-TARGETDURATION: the longest duration rounded up, and at least `floor`.

    Durations are first rounded to milliseconds so that float noise (2.0000001) does not
    bump the target a whole second.
    """
    longest = max(durations, default=0.0)
    return max(floor, math.ceil(round(longest, 3)))


def _render(segments: Sequence[Segment], *, media_sequence: int, discontinuity_sequence: int,
            target: int, playlist_type: str | None, ended: bool) -> str:
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", f"#EXT-X-TARGETDURATION:{target}",
             f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}"]
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if playlist_type:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist_type}")
    for segment in segments:
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        lines.append(f"#EXTINF:{segment.duration:.6f},")
        lines.append(segment.uri)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def render_live_playlist(segments: Sequence[Segment], *, media_sequence: int,
                         discontinuity_sequence: int = 0, min_target: int = 1,
                         ended: bool = False) -> str:
    """A sliding-window live playlist of `segments` (the window, oldest first).

    `media_sequence` is the number of the first segment shown; `discontinuity_sequence`
    counts the discontinuities of segments already slid out. `min_target` keeps the
    target duration from shrinking as long segments leave the window (players expect it
    to stay put).
    """
    target = target_duration([s.duration for s in segments], min_target)
    return _render(segments, media_sequence=media_sequence,
                   discontinuity_sequence=discontinuity_sequence, target=target,
                   playlist_type=None, ended=ended)


def render_recording_playlist(segments: Sequence[Segment], *, ended: bool,
                              media_sequence: int = 0) -> str:
    """Every segment of a recording: an EVENT playlist while live, VOD with ENDLIST after."""
    target = target_duration([s.duration for s in segments])
    return _render(segments, media_sequence=media_sequence, discontinuity_sequence=0,
                   target=target, playlist_type="VOD" if ended else "EVENT", ended=ended)


def _stream_inf(rendition: Rendition) -> str:
    attributes = [f"BANDWIDTH={max(1, rendition.bandwidth)}"]
    if not rendition.audio_only and rendition.width > 0:
        attributes.append(f"RESOLUTION={rendition.width}x{rendition.height}")
    if rendition.codecs:
        attributes.append(f'CODECS="{rendition.codecs}"')
    if not rendition.audio_only and rendition.fps:
        attributes.append(f"FRAME-RATE={rendition.fps:.3f}")
    return "#EXT-X-STREAM-INF:" + ",".join(attributes)


def render_master_playlist(renditions: Sequence[Rendition]) -> str:
    """The master playlist: video variants tallest first, then the audio-only one(s).

    Each variant's URI is `{name}/index.m3u8`, relative to the master.
    """
    video = sorted((r for r in renditions if not r.audio_only), key=lambda r: -r.height)
    audio = [r for r in renditions if r.audio_only]
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}"]
    for rendition in [*video, *audio]:
        lines.append(_stream_inf(rendition))
        lines.append(f"{rendition.name}/index.m3u8")
    return "\n".join(lines) + "\n"
