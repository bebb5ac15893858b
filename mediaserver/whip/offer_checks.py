"""What a WHIP offer must be before aiortc sees it: text with audio and/or video to send.

aiortc parses the rest (a parse failure is a 400 as well). Simulcast is refused here with
a message that says what to change: aiortc receives one layer per track, and OBS 30
fails when an answer silently drops the layers it offered.
"""

from __future__ import annotations

__all__ = ["MAX_OFFER_BYTES", "offer_problem"]

# Browser offers are a few KiB, OBS's under one; this leaves room for many codecs.
MAX_OFFER_BYTES = 64 * 1024


def offer_problem(sdp: str) -> str | None:
    """Why this offer is refused, or None when aiortc may try it."""
    lines = [line.strip() for line in sdp.splitlines()]
    if not lines or not lines[0].startswith("v="):
        return "the body is not an SDP offer (it must start with v=)"
    media = [line.split()[0][2:] for line in lines if line.startswith("m=") and line[2:]]
    if not any(kind in ("audio", "video") for kind in media):
        return "the offer has no audio or video to publish"
    if any(line.startswith(("a=simulcast", "a=rid:")) for line in lines):
        return "simulcast is not supported: turn simulcast off in the encoder"
    return None
