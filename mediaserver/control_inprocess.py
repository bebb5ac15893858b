"""`ControlPort` over the control plane in the same process: a Database and control.*.

This is the default deployment (one `academia serve` process). The rules are the control
plane's own (control/streaming/edge_questions.py, which its internal HTTP API for remote
media nodes asks too); this adapter only turns their answers into the port's dataclasses
and `CannotAnswer` into `ControlUnavailable`. Each question is one short transaction; the
media edge holds no database session between questions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from config.settings import CourseSettings, Settings
from control.db.database import Database
from control.models.base import utcnow
from control.nodes.registry import record_heartbeat
from control.streaming.edge_questions import CannotAnswer, EdgeQuestions, PlaybackGrant
from control.streaming.playback_tokens import PlaybackSigner, signing_key
from control.streaming.stream_keys import PublishGrant
from mediaserver.control_port import (
    ControlUnavailable,
    PlaybackAllowed,
    PlaybackDecision,
    PlaybackRefused,
    PublishAllowed,
    PublishDecision,
    PublishDenied,
)

__all__ = ["InProcessControl"]


class InProcessControl:
    """Answers the media edge's questions with control.streaming.edge_questions.

    `settings` is the server's [courses] section (how early a scheduled session may go
    live, how long an ad-hoc one lasts), or the whole Settings, from which the playback
    signer and the public URL are then taken unless given. `signer` checks playback
    tokens (without one, playback questions raise ControlUnavailable); `public_url` is
    where the API is reached, for recording URLs. `clock` is for tests.
    """

    def __init__(
        self,
        database: Database,
        settings: CourseSettings | Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        signer: PlaybackSigner | None = None,
        public_url: str | None = None,
    ) -> None:
        if isinstance(settings, Settings):
            if signer is None:
                signer = PlaybackSigner(signing_key(settings))
            if public_url is None:
                public_url = settings.public_url
            settings = settings.courses
        self._questions = EdgeQuestions(database, settings, signer=signer,
                                        public_url=public_url or "", clock=clock)
        self._database = database
        self._clock = clock

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        try:
            answer = await self._questions.authorize_publish(app, key)
        except CannotAnswer as exc:
            raise ControlUnavailable(str(exc)) from exc
        if isinstance(answer, PublishGrant):
            return PublishAllowed(course_id=answer.course_id, key_id=answer.key_id)
        return PublishDenied(reason=str(answer.reason))

    async def session_goes_live(self, course_id: int) -> int:
        try:
            return await self._questions.session_goes_live(course_id)
        except CannotAnswer as exc:
            raise ControlUnavailable(str(exc)) from exc

    async def end_session(self, course_id: int, session_id: int | None) -> None:
        # One process carries every class: no other node to defer to.
        try:
            await self._questions.end_session(course_id, session_id)
        except CannotAnswer as exc:
            raise ControlUnavailable(str(exc)) from exc

    async def authorize_playback(self, session_id: int, token: str) -> PlaybackDecision:
        try:
            answer = await self._questions.authorize_playback(session_id, token)
        except CannotAnswer as exc:
            raise ControlUnavailable(str(exc)) from exc
        if isinstance(answer, PlaybackGrant):
            return PlaybackAllowed(session_id=answer.session_id, live=answer.live,
                                   expires_at=answer.expires_at.timestamp())
        return PlaybackRefused(reason=answer.reason)

    async def recording_ready(self, session_id: int) -> None:
        try:
            await self._questions.recording_ready(session_id)
        except CannotAnswer as exc:
            raise ControlUnavailable(str(exc)) from exc

    # ------------------------------------------------------------------ beyond the port

    async def heartbeat(self, name: str, url: str, session_ids: Iterable[int]) -> None:
        """This process, as a media node of the registry: only when an edge is in front
        of it (the edge asks the registry which node carries a class)."""
        try:
            async with self._database.transaction(write=True) as db:
                await record_heartbeat(db, name=name, url=url, session_ids=session_ids,
                                       now=self._clock())
        except SQLAlchemyError as exc:
            raise ControlUnavailable(f"database error while recording a heartbeat: {exc}"
                                     ) from exc
