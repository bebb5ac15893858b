"""The one narrow interface through which the media edge asks the control plane questions.

The RTMP server (and later WHIP) depends on `ControlPort` only, never on `control.*`:
`mediaserver/control_inprocess.py` implements it over the control plane in the same
process; an HTTP implementation (an ingest node in front of a remote control plane, like
nginx-rtmp's `on_publish`) can follow without the RTMP code changing.

Answers never carry a stream key, so nothing downstream can log one by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeAlias

__all__ = [
    "CarriedElsewhere",
    "ControlPort",
    "ControlUnavailable",
    "PlaybackAllowed",
    "PlaybackDecision",
    "PlaybackRefused",
    "PublishAllowed",
    "PublishDecision",
    "PublishDenied",
]


@dataclass(frozen=True)
class PublishAllowed:
    """The key is good: publish into this course. `key_id` names the key (never its
    secret), so the edge can disconnect the publisher when that key stops working."""

    course_id: int
    key_id: int | None = None


@dataclass(frozen=True)
class PublishDenied:
    """The key is refused. `reason` is a short word for logs (unknown_key, revoked,
    expired, wrong_app, course_inactive), never shown to the encoder beyond "refused"."""

    reason: str


PublishDecision: TypeAlias = PublishAllowed | PublishDenied


# How long a playback grant may be reused before the control plane is asked again: a
# student removed from the course stops receiving segments within this time. The control
# plane's grants last no longer, and the edge caches none longer, whoever answers.
PLAYBACK_GRANT_SECONDS = 5.0


@dataclass(frozen=True)
class PlaybackAllowed:
    """The token may play the session: its live ladder while `live`, else its recording."""

    session_id: int
    live: bool
    expires_at: float  # POSIX seconds: the grant may be cached until then, at most


@dataclass(frozen=True)
class PlaybackRefused:
    """The token may not play: `reason` is bad_token, expired, wrong_session,
    not_allowed (the token's user may no longer watch) or not_available."""

    reason: str


PlaybackDecision: TypeAlias = PlaybackAllowed | PlaybackRefused


class ControlUnavailable(Exception):
    """The control plane could not answer (database down, remote unreachable).

    Distinct from a refusal: the encoder is told to try again later, not that its key is
    bad.
    """


class CarriedElsewhere(Exception):
    """The control plane ignored this node's end of a session: another media node carries
    it now (its encoder reconnected there). The class is that node's to end and record."""


class ControlPort(Protocol):
    """What the media edge may ask of the control plane."""

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        """May `key` publish into RTMP application `app`? `key` has no `?query` part."""
        ...

    async def session_goes_live(self, course_id: int) -> int:
        """The course's broadcast has begun: go live; returns the live session's id."""
        ...

    async def end_session(self, course_id: int, session_id: int | None) -> None:
        """The course's broadcast is over: end its live session `session_id` (nothing if
        that session is not live; None: whichever is, a go-live whose answer was lost).
        Raises CarriedElsewhere when another node carries it."""
        ...

    async def authorize_playback(self, session_id: int, token: str) -> PlaybackDecision:
        """May this playback token (from GET /sessions/{id}/playback) play `session_id`?"""
        ...

    async def recording_ready(self, session_id: int) -> None:
        """The session's recording is finalised and stored: set its recording_url."""
        ...
