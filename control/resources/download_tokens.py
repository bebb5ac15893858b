"""Short signed download grants for one resource: the playback tokens' helper and key
(control/streaming/playback_tokens.py) under a scope of their own, so a playback token
never opens a file and one resource's grant never opens another."""

from __future__ import annotations

from datetime import datetime, timedelta

from control.errors import forbidden
from control.streaming.playback_tokens import PlaybackClaim, PlaybackSigner, PlaybackTokenError

__all__ = ["DOWNLOAD_TTL", "issue_download", "verify_download"]

DOWNLOAD_TTL = timedelta(minutes=5)
_SCOPE = b"course-resource-download\x00"


def issue_download(signer: PlaybackSigner, resource_id: int, user_id: int | None,
                   now: datetime) -> tuple[str, datetime]:
    """A token and when it expires (whole seconds: the token keeps no more)."""
    expires_at = now.replace(microsecond=0) + DOWNLOAD_TTL
    return signer.issue(resource_id, user_id, expires_at, scope=_SCOPE), expires_at


def verify_download(signer: PlaybackSigner, token: str, resource_id: int,
                    now: datetime) -> PlaybackClaim:
    """The grant's claim, or 403 (tampered, expired, or for another resource)."""
    try:
        return signer.verify(token, session_id=resource_id, now=now, scope=_SCOPE)
    except PlaybackTokenError as exc:
        raise forbidden(f"this download link is not valid ({exc.reason}): ask for a new"
                        " one") from None
