"""Which renditions a recording keeps once its class ends (`recording_quality`).

The live ladder is never changed: every rung is encoded and watched live. At the end
(`SessionOutput.finalize`) the renditions not kept are deleted from storage and left out
of the recording's master playlist:

- "all": every rendition recorded;
- "HD" / "SD": the video rungs of that label and the audio rendition (video rungs carry no
  sound of their own); a source shorter than every rung of that label keeps its tallest
  video rung instead, so the recording always has a picture;
- "source": the source remux alone (what the MP4 download is made of; it carries its own
  sound). Its variant needs the source's description (`RunStarted.recording`); without one
  (another node began the class and died) everything is kept rather than a recording
  nobody can play.

Passthrough has only the source: it is kept whatever the setting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from transcode.ladder import SOURCE_NAME, Rendition

__all__ = ["QUALITIES", "check_quality", "kept_renditions"]

QUALITIES = ("all", "source", "HD", "SD")


def check_quality(quality: str) -> str:
    """The setting's canonical spelling ("hd" -> "HD"); ValueError if unknown."""
    for known in QUALITIES:
        if quality.strip().lower() == known.lower():
            return known
    raise ValueError(f"recording_quality {quality!r}: expected one of {', '.join(QUALITIES)}")


def kept_renditions(quality: str, ladder: Sequence[Rendition], recorded: Iterable[str], *,
                    source_known: bool) -> set[str]:
    """The names, among `recorded` (renditions with segments), the recording keeps."""
    recorded = set(recorded)
    quality = check_quality(quality)
    if quality == "all" or recorded <= {SOURCE_NAME}:
        return recorded
    if quality == "source":
        if SOURCE_NAME in recorded and source_known:
            return {SOURCE_NAME}
        return recorded
    video = [r for r in ladder if not r.audio_only and r.name in recorded]
    audio = {r.name for r in ladder if r.audio_only and r.name in recorded}
    chosen = {r.name for r in video if r.label.lower() == quality.lower()}
    if not chosen and video:
        chosen = {max(video, key=lambda r: r.height).name}
    return (chosen | audio) or recorded
