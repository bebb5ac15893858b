"""How long LL-HLS parts last: the fragment length asked of ffmpeg, and the PART-TARGET.

ffmpeg's MP4 muxer closes a fragment before the first frame that lies `frag_duration` or
more after the fragment's start, so a fragment lasts a whole number of frames. Asking
for one frame less than the part target (plus a millisecond against rounding) makes each
fragment the longest whole number of frames that fits the target: 6 frames at 30 fps,
9 AAC frames of 1024 samples at 48 kHz. The PART-TARGET the playlists declare is the
longest part any output can then make, so no part ever exceeds it.

An output carrying both video and audio (passthrough's source) is cut by whichever track
reaches the fragment length first, which would make parts of uneven length: it is asked
for fragments of about one video frame, and the packager joins them into parts of whole
video frames
(`CmafPackager(part_seconds=...)`, `gathers_fragments`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from transcode.ladder import Rendition

__all__ = ["AAC_FRAME_SECONDS", "fragment_seconds", "frame_seconds", "gathers_fragments",
           "part_target"]

AAC_FRAME_SECONDS = 1024 / 48_000
_MARGIN = 0.001
_DEFAULT_FPS = 30.0


def frame_seconds(rendition: Rendition) -> float:
    """The length of one frame of the output's leading track (video when it has some)."""
    if rendition.audio_only:
        return AAC_FRAME_SECONDS
    return 1.0 / (rendition.fps or _DEFAULT_FPS)


def gathers_fragments(rendition: Rendition) -> bool:
    """Whether the output muxes video and audio, so its parts are joined fragments."""
    return rendition.has_audio and not rendition.audio_only and rendition.height > 0


def fragment_seconds(rendition: Rendition, target: float) -> float:
    """The `-frag_duration` (in seconds) for one output, for parts of at most `target`."""
    if gathers_fragments(rendition):
        # About a video frame each: whole frames to join, without a fragment per sample.
        return max(_MARGIN, frame_seconds(rendition) - _MARGIN)
    return max(_MARGIN, target - frame_seconds(rendition) + _MARGIN)


def _longest_part(rendition: Rendition, target: float) -> float:
    frame = frame_seconds(rendition)
    if gathers_fragments(rendition):
        # Whole frames joined up to the target.
        return max(1, math.floor(round((target + _MARGIN) / frame, 6))) * frame
    frames = max(1, math.ceil(round(fragment_seconds(rendition, target) / frame, 6)))
    return frames * frame


def part_target(renditions: Sequence[Rendition], target: float) -> float:
    """EXT-X-PART-INF's PART-TARGET: the longest part of any output, in whole ms."""
    longest = max((_longest_part(r, target) for r in renditions), default=target)
    return math.ceil(round(longest, 6) * 1000) / 1000
