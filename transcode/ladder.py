"""The HLS ladder as data: which renditions a source gets, at what size and bitrate.

The rungs come from settings (`[[streaming.ladder]]`); `plan_ladder` fits them to one
source: rungs taller than the source are skipped (never upscaled), rungs sharing a label
are alternatives of which the tallest that fits is kept, and a source shorter than every
video rung still gets one rendition at its own height. Widths keep the source's aspect
ratio, rounded to even numbers as x264 requires.

Audio is encoded once: the video rungs carry no sound of their own, and the one audio
rendition is both the audio group every video rung plays with and the audio-only choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from config.settings import RungSettings

__all__ = [
    "AAC_LC", "SOURCE_NAME", "Rendition", "SourceInfo", "h264_codec_tag", "plan_ladder",
    "plan_passthrough",
]

# The rendition that is the source itself, remuxed (passthrough, and the recording).
SOURCE_NAME = "source"

AAC_LC = "mp4a.40.2"


@dataclass(frozen=True)
class SourceInfo:
    """What a probe found in the published stream."""

    width: int | None  # None: no video
    height: int | None
    fps: float | None
    video_codec: str | None  # ffmpeg's name: "h264"
    audio_codec: str | None  # "aac", "mp3", ...; None: no audio
    video_profile: str | None = None  # "High", "Main", "Constrained Baseline"
    video_level: int | None = None  # 31 for level 3.1
    audio_sample_rate: int | None = None

    @property
    def has_video(self) -> bool:
        return self.height is not None and self.width is not None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None


@dataclass(frozen=True)
class Rendition:
    """One output of the ladder. `height` 0 means audio only; `copy` means remuxed."""

    name: str
    label: str
    width: int
    height: int
    video_kbps: int
    audio_kbps: int
    has_audio: bool
    codecs: str  # for the master playlist's CODECS attribute
    copy: bool = False
    fps: float | None = None

    @property
    def audio_only(self) -> bool:
        return self.height == 0

    @property
    def bandwidth(self) -> int:
        """Peak bits per second of this rendition's own media: nominal bitrates plus 10% for
        container overhead and rate-control peaks."""
        audio = self.audio_kbps if self.has_audio else 0
        return int((self.video_kbps + audio) * 1000 * 1.1)


_H264_PROFILE_IDC = {"baseline": 66, "constrained baseline": 66, "main": 77, "high": 100}


def h264_codec_tag(profile: str, level: int) -> str:
    """RFC 6381 avc1 tag, e.g. ("High", 31) -> "avc1.64001f"."""
    idc = _H264_PROFILE_IDC.get(profile.lower(), 100)
    constraints = 0x40 if profile.lower() == "constrained baseline" else 0
    return f"avc1.{idc:02x}{constraints:02x}{level:02x}"


def x264_level(height: int, fps: float) -> int:
    """The lowest H.264 level (x10) that holds this height at this frame rate."""
    if height <= 360:
        return 30 if fps <= 30 else 31
    if height <= 720:
        return 31 if fps <= 30 else 32
    return 40 if fps <= 30 else 42


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def plan_ladder(rungs: Sequence[RungSettings], source: SourceInfo) -> list[Rendition]:
    """The renditions to encode for `source`, tallest first, audio-only last."""
    fps = min(source.fps or 30.0, 60.0)
    plans: list[Rendition] = []
    if source.has_video:
        assert source.width is not None and source.height is not None
        taken: set[str] = set()
        video_rungs = sorted((r for r in rungs if r.height > 0), key=lambda r: -r.height)
        for rung in video_rungs:
            if rung.height > source.height or rung.label in taken:
                continue
            taken.add(rung.label)
            plans.append(_video(rung, source, rung.height, fps))
        if not plans and video_rungs:
            # A source shorter than every rung: one rendition at its own size.
            plans.append(_video(video_rungs[-1], source, source.height, fps))
    if source.has_audio:
        audio_rungs = [r for r in rungs if r.height == 0]
        # Without an audio rung in the settings the video rungs still need their sound.
        rung = audio_rungs[0] if audio_rungs else RungSettings(
            "audio", "audio only", 0, 0, max((r.audio_kbps for r in rungs), default=128))
        plans.append(Rendition(rung.name, rung.label, 0, 0, 0, rung.audio_kbps, True,
                               AAC_LC))
    return plans


def _video(rung: RungSettings, source: SourceInfo, height: int, fps: float) -> Rendition:
    assert source.width is not None and source.height is not None
    width = _even(source.width * height / source.height)
    height = _even(height)
    codecs = h264_codec_tag("High", x264_level(height, fps))
    # Video only: the sound is the shared audio rendition's.
    return Rendition(rung.name, rung.label, width, height, rung.video_kbps, 0, False,
                     codecs, fps=fps)


def plan_passthrough(source: SourceInfo, *, nominal_kbps: int = 0) -> list[Rendition]:
    """The source alone, remuxed: one rendition with the source's own codecs."""
    codecs = []
    if source.has_video:
        codecs.append(h264_codec_tag(source.video_profile or "High", source.video_level or 40))
    if source.has_audio:
        codecs.append(AAC_LC)
    return [Rendition(SOURCE_NAME, SOURCE_NAME, source.width or 0, source.height or 0,
                      nominal_kbps, 0, source.has_audio, ",".join(codecs), copy=True,
                      fps=source.fps)]
