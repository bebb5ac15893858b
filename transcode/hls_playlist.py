"""HLS playlists as text: parsing ffmpeg's media playlists, rendering the ones we publish.

We never forward ffmpeg's playlists: each ffmpeg run numbers its segments from zero,
while a session's playlists number them continuously across runs and publisher
reconnects. So we read ffmpeg's playlist only to learn which segments are finished, how
long they last and which init section (EXT-X-MAP) they need, and write our own: a
sliding live window, a recording that keeps every segment (an EVENT playlist, VOD once
finalised), and the master playlist.

Two kinds of media playlist come out of the same functions:

- MPEG-TS segments (no `init_uri` anywhere): the plain RFC 8216 playlist, version 3.
- CMAF/fMP4 segments (`init_uri` set): EXT-X-MAP before the first segment and wherever
  the init section changes, EXT-X-INDEPENDENT-SEGMENTS (every segment starts with a
  keyframe), version 6. The live playlist can also be Low-Latency HLS (RFC 8216bis):
  given a `LowLatency`, it lists the parts (EXT-X-PART) of the segments near the live
  edge and of the segment in progress, a preload hint, rendition reports, and can be
  rendered as a delta update (EXT-X-SKIP); such a playlist is version 9.

The renderers write what they are given and check nothing about the media: durations,
part lengths against PART-TARGET and which segments carry parts are the caller's to get
right (tests/support/hls_validator.py checks rendered playlists against the rules).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from transcode.ladder import AAC_LC, Rendition

__all__ = [
    "LowLatency",
    "MediaPlaylist",
    "Part",
    "PlaylistError",
    "RenditionReport",
    "Segment",
    "parse_media_playlist",
    "render_live_playlist",
    "render_master_playlist",
    "render_recording_playlist",
    "target_duration",
]

# The lowest version each kind of playlist may declare (RFC 8216 section 7, 8216bis 8):
# decimal EXTINF needs 3, EXT-X-MAP in a media playlist without I-FRAMES-ONLY needs 6,
# EXT-X-SKIP needs 9. Every Low-Latency playlist says 9, delta update or not, so that a
# player never sees the version change between a full playlist and a delta update.
VERSION = 3
VERSION_MAP = 6
VERSION_GAP = 8  # EXT-X-GAP
VERSION_LOW_LATENCY = 9

# Low-Latency server control (RFC 8216bis 4.4.3.8): PART-HOLD-BACK must be at least two
# part targets and three is what the spec recommends; CAN-SKIP-UNTIL at least six target
# durations.
PART_HOLD_BACK_PARTS = 3
SKIP_UNTIL_TARGETS = 6

# Master playlist: the group the audio-only rendition forms for video-only renditions.
AUDIO_GROUP = "audio"
AUDIO_CHANNELS = "2"


class PlaylistError(ValueError):
    """The text is not a media playlist we can read."""


@dataclass(frozen=True)
class Part:
    """One part of a segment (EXT-X-PART); `independent` means it starts with a keyframe."""

    uri: str
    duration: float
    independent: bool = False


@dataclass(frozen=True)
class Segment:
    """One entry of a media playlist.

    `discontinuity` puts EXT-X-DISCONTINUITY before it. `init_uri` is the init section
    (fMP4) it needs: EXT-X-MAP is written before the first segment shown and before any
    whose `init_uri` differs from the one in force (or that starts a discontinuity with
    one), so it may be set on every segment, or only on the first of each init; None
    means "the one in force". A sliding window must have it on its first segment.
    `parts` are written as EXT-X-PART before the segment's URI, in Low-Latency live
    playlists only; give them for the segments near the live edge. `gap` (EXT-X-GAP):
    the segment was lost before storage took it, and players skip its time.
    """

    uri: str
    duration: float
    discontinuity: bool = False
    init_uri: str | None = None
    parts: tuple[Part, ...] = ()
    gap: bool = False


@dataclass(frozen=True)
class RenditionReport:
    """EXT-X-RENDITION-REPORT: where another rendition's live edge is (LAST-PART optional)."""

    uri: str
    last_msn: int
    last_part: int | None


@dataclass(frozen=True)
class LowLatency:
    """What makes a live playlist Low-Latency HLS.

    `part_target` is PART-TARGET; every part listed must be at most that long (not
    checked here). `open_parts` are the parts of the segment in progress, whose media
    sequence number is `media_sequence + len(segments)`; when it begins a new epoch,
    `open_discontinuity` and `open_init_uri` put EXT-X-DISCONTINUITY and EXT-X-MAP before
    its parts. `preload_hint` is the URI of the next part (EXT-X-PRELOAD-HINT), `reports`
    the other renditions' live edges. `skip` renders a delta update, as asked by
    `_HLS_skip=YES`: the leading segments that end more than CAN-SKIP-UNTIL seconds
    before the last segment's end are replaced by EXT-X-SKIP.
    """

    part_target: float
    open_parts: tuple[Part, ...] = ()
    open_discontinuity: bool = False
    open_init_uri: str | None = None
    preload_hint: str | None = None
    reports: tuple[RenditionReport, ...] = ()
    skip: bool = False


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


_URI_ATTRIBUTE = re.compile(r'(?:^|,)\s*URI="([^"]*)"')
_SKIPPED_ATTRIBUTE = re.compile(r"(?:^|,)\s*SKIPPED-SEGMENTS=(\d+)")


def _map_uri(line: str) -> str:
    found = _URI_ATTRIBUTE.search(line[len("#EXT-X-MAP:"):])
    if found is None or not found.group(1):
        raise PlaylistError(f"EXT-X-MAP without URI: {line!r}")
    return found.group(1)


def parse_media_playlist(text: str) -> MediaPlaylist:
    """Read a media playlist; unknown tags are skipped, a trailing EXTINF without URI too.

    A playlist caught mid-write may end with an EXTINF whose URI line is missing: that
    segment is simply not listed yet. EXT-X-MAP becomes the `init_uri` of the first
    segment after it. Low-Latency tags (parts, hints, reports) are skipped: only whole
    segments are listed; after EXT-X-SKIP, `media_sequence` is that of the first segment
    listed. Anything that is not an M3U raises PlaylistError.
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
    init_uri: str | None = None
    gap = False
    for line in lines[1:]:
        if not line.startswith("#"):
            if duration is None:
                raise PlaylistError(f"segment {line!r} has no #EXTINF")
            segments.append(Segment(line, duration, discontinuity, init_uri, gap=gap))
            duration, discontinuity, init_uri, gap = None, False, None, False
        elif line.startswith("#EXTINF:"):
            try:
                duration = float(line[len("#EXTINF:"):].split(",", 1)[0].strip())
            except ValueError as exc:
                raise PlaylistError(f"bad duration in {line!r}") from exc
            if not math.isfinite(duration) or duration < 0:
                raise PlaylistError(f"bad duration in {line!r}")
        elif line.startswith("#EXT-X-MAP:"):
            init_uri = _map_uri(line)
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = _int_value(line)
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = _int_value(line)
        elif line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:"):
            disc_sequence = _int_value(line)
        elif line.startswith("#EXT-X-SKIP:"):
            skipped = _SKIPPED_ATTRIBUTE.search(line[len("#EXT-X-SKIP:"):])
            if skipped is None:
                raise PlaylistError(f"EXT-X-SKIP without SKIPPED-SEGMENTS: {line!r}")
            # Parsed digits only, and bounded by the text's own length: no overflow.
            sequence += int(skipped.group(1))
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line == "#EXT-X-GAP":
            gap = True
        elif line == "#EXT-X-ENDLIST":
            ended = True
    return MediaPlaylist(target, sequence, disc_sequence, tuple(segments), ended)


def target_duration(durations: Sequence[float], floor: int = 1) -> int:
    """EXT-X-TARGETDURATION: the longest duration rounded up, and at least `floor`.

    Rounding up is stricter than the spec (each EXTINF rounded to the nearest integer
    must not exceed it) and keeps players that expect the ceiling happy. Durations are
    first rounded to milliseconds so that float noise (2.0000001) does not bump the
    target a whole second.
    """
    longest = max(durations, default=0.0)
    return max(floor, math.ceil(round(longest, 3)))


def _decimal(value: float) -> str:
    """A decimal attribute value: six places at most, trailing zeros dropped."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _part_line(part: Part) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={_decimal(part.duration)},URI="{part.uri}"{independent}'


def _report_line(report: RenditionReport) -> str:
    line = f'#EXT-X-RENDITION-REPORT:URI="{report.uri}",LAST-MSN={report.last_msn}'
    if report.last_part is not None:
        line += f",LAST-PART={report.last_part}"
    return line


def _skipped_count(segments: Sequence[Segment], skip_until: float) -> int:
    """How many leading segments end more than `skip_until` seconds before the last ends.

    Rounded to the microsecond, as printed, so float noise cannot move the boundary.
    """
    total = sum(s.duration for s in segments)
    ended_at = 0.0
    count = 0
    for segment in segments[:-1]:  # the last one ends at the end: never skipped
        ended_at += segment.duration
        if round(total - ended_at, 6) <= skip_until:
            break
        count += 1
    return count


def _init_before(segments: Sequence[Segment], index: int) -> str | None:
    """The init section in force for `segments[index]`, looking back through the list."""
    for segment in reversed(segments[:index + 1]):
        if segment.init_uri is not None:
            return segment.init_uri
    return None


def _render(segments: Sequence[Segment], *, media_sequence: int, discontinuity_sequence: int,
            target: int, playlist_type: str | None, ended: bool,
            low_latency: LowLatency | None = None) -> str:
    fmp4 = any(s.init_uri is not None for s in segments) or (
        low_latency is not None and low_latency.open_init_uri is not None)
    if low_latency is not None:
        version = VERSION_LOW_LATENCY
    else:
        version = VERSION_MAP if fmp4 else VERSION
        if any(s.gap for s in segments):
            version = VERSION_GAP
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{version}"]
    if fmp4:
        # CMAF segments from our encoders always start with a keyframe.
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    lines.append(f"#EXT-X-TARGETDURATION:{target}")
    skipped = 0
    if low_latency is not None:
        skip_until = SKIP_UNTIL_TARGETS * target
        lines.append("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
                     f"PART-HOLD-BACK={_decimal(PART_HOLD_BACK_PARTS * low_latency.part_target)},"
                     f"CAN-SKIP-UNTIL={_decimal(skip_until)}")
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={_decimal(low_latency.part_target)}")
        if low_latency.skip:
            skipped = _skipped_count(segments, skip_until)
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}")
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}")
    if playlist_type:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{playlist_type}")
    if skipped:
        lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
    in_force: str | None = None
    for index in range(skipped, len(segments)):
        segment = segments[index]
        if segment.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        # The first segment shown gets the init in force even when a skipped (or, in a
        # window, earlier) segment named it: a player may start from this text alone.
        init = _init_before(segments, index) if index == skipped else segment.init_uri
        if init is not None and (init != in_force or segment.discontinuity):
            lines.append(f'#EXT-X-MAP:URI="{init}"')
            in_force = init
        if low_latency is not None:
            lines.extend(_part_line(part) for part in segment.parts)
        lines.append(f"#EXTINF:{segment.duration:.6f},")
        if segment.gap:
            lines.append("#EXT-X-GAP")
        lines.append(segment.uri)
    if low_latency is not None and not ended:
        # The segment in progress: nothing of it exists once the playlist has ended.
        if low_latency.open_parts or low_latency.preload_hint:
            if low_latency.open_discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if low_latency.open_init_uri is not None:
                lines.append(f'#EXT-X-MAP:URI="{low_latency.open_init_uri}"')
        lines.extend(_part_line(part) for part in low_latency.open_parts)
        if low_latency.preload_hint is not None:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{low_latency.preload_hint}"')
    if low_latency is not None:
        lines.extend(_report_line(report) for report in low_latency.reports)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def render_live_playlist(segments: Sequence[Segment], *, media_sequence: int,
                         discontinuity_sequence: int = 0, min_target: int = 1,
                         ended: bool = False, low_latency: LowLatency | None = None) -> str:
    """A sliding-window live playlist of `segments` (the window, oldest first).

    `media_sequence` is the number of the first segment of the window (in a delta update
    too: EXT-X-SKIP stands for the first ones); `discontinuity_sequence` counts the
    discontinuities of segments already slid out. `min_target` keeps the target duration
    from shrinking as long segments leave the window (players expect it to stay put).
    `low_latency` makes it a Low-Latency HLS playlist (see `LowLatency`); without it
    parts are not written.
    """
    target = target_duration([s.duration for s in segments], min_target)
    return _render(segments, media_sequence=media_sequence,
                   discontinuity_sequence=discontinuity_sequence, target=target,
                   playlist_type=None, ended=ended, low_latency=low_latency)


def render_recording_playlist(segments: Sequence[Segment], *, ended: bool,
                              media_sequence: int = 0) -> str:
    """Every segment of a recording: an EVENT playlist while live, VOD with ENDLIST after.

    Parts are never written: a recording is watched from its segments.
    """
    target = target_duration([s.duration for s in segments])
    return _render(segments, media_sequence=media_sequence, discontinuity_sequence=0,
                   target=target, playlist_type="VOD" if ended else "EVENT", ended=ended)


def _with_codec(codecs: str, codec: str) -> str:
    listed = [c.strip() for c in codecs.split(",") if c.strip()]
    return ",".join(listed if codec in listed else [*listed, codec])


def _stream_inf(rendition: Rendition, *, bandwidth: int | None = None,
                codecs: str | None = None, audio_group: str | None = None) -> str:
    attributes = [f"BANDWIDTH={max(1, rendition.bandwidth if bandwidth is None else bandwidth)}"]
    if not rendition.audio_only and rendition.width > 0:
        attributes.append(f"RESOLUTION={rendition.width}x{rendition.height}")
    codecs = rendition.codecs if codecs is None else codecs
    if codecs:
        attributes.append(f'CODECS="{codecs}"')
    if not rendition.audio_only and rendition.fps:
        attributes.append(f"FRAME-RATE={rendition.fps:.3f}")
    if audio_group is not None:
        attributes.append(f'AUDIO="{audio_group}"')
    return "#EXT-X-STREAM-INF:" + ",".join(attributes)


def _media_line(rendition: Rendition, *, default: bool) -> str:
    return (f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="{rendition.label}",'
            f'DEFAULT={"YES" if default else "NO"},AUTOSELECT=YES,'
            f'CHANNELS="{AUDIO_CHANNELS}",URI="{rendition.name}/index.m3u8"')


def render_master_playlist(renditions: Sequence[Rendition], *,
                           independent_segments: bool = False) -> str:
    """The master playlist: video variants tallest first, then the audio-only one(s).

    Each variant's URI is `{name}/index.m3u8`, relative to the master. When the video
    renditions carry no audio of their own and there is an audio-only rendition, that
    rendition is their audio: an EXT-X-MEDIA audio group the video variants name
    (AUDIO=), with its codec in their CODECS and its bitrate in their BANDWIDTH. Video
    renditions with their own audio (the TS ladder, passthrough) list no group.

    `independent_segments` writes EXT-X-INDEPENDENT-SEGMENTS (every segment of every
    variant starts with a keyframe: true of our fMP4 output); off by default so the TS
    output stays as it was.
    """
    video = sorted((r for r in renditions if not r.audio_only), key=lambda r: -r.height)
    audio = [r for r in renditions if r.audio_only]
    grouped = bool(audio) and any(not r.has_audio for r in video)
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}"]
    if independent_segments:
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if grouped:
        lines.extend(_media_line(r, default=i == 0) for i, r in enumerate(audio))
    # The group's worst case, as BANDWIDTH must bound any rendition a player may pick.
    group_bandwidth = max((r.bandwidth for r in audio), default=0)
    group_codecs = sorted({c for r in audio for c in r.codecs.split(",") if c} or {AAC_LC})
    for rendition in video:
        if grouped and not rendition.has_audio:
            codecs = rendition.codecs
            for codec in group_codecs:
                codecs = _with_codec(codecs, codec)
            lines.append(_stream_inf(rendition, bandwidth=rendition.bandwidth + group_bandwidth,
                                     codecs=codecs, audio_group=AUDIO_GROUP))
        else:
            lines.append(_stream_inf(rendition))
        lines.append(f"{rendition.name}/index.m3u8")
    for rendition in audio:
        # The audio-only choice stays a variant of its own, without AUDIO=: its media
        # playlist is the audio already, and naming the group as well would tell a player
        # that honours groups to fetch the same audio a second time. hls.js drops
        # audio-only variants from a master that has video variants (level-controller
        # filterAndSortMediaOptions), so it never plays this entry either way; our player
        # plays audio only by loading `audio/index.m3u8` itself.
        lines.append(_stream_inf(rendition))
        lines.append(f"{rendition.name}/index.m3u8")
    return "\n".join(lines) + "\n"
