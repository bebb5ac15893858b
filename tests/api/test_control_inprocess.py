"""The in-process ControlPort over the real control plane (both databases): key decisions,
going live and ending live, joining a session the teacher already started on the web,
recordings becoming ready and playback checks (more of those in test_playback.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from control.db.database import Database
from control.models.base import utcnow
from control.streaming.playback_tokens import PlaybackSigner
from mediaserver.control_inprocess import InProcessControl
from mediaserver.control_port import (
    ControlUnavailable,
    PlaybackAllowed,
    PlaybackRefused,
    PublishAllowed,
    PublishDenied,
)
from support.api_client import Api
from support.world import World


async def test_decisions_and_live_cycle(api: Api, world: World) -> None:
    control = InProcessControl(api.database, api.settings.courses)
    made = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher, json={},
                          expect=201)
    key = made["key"]
    assert await control.authorize_publish("live", key) == PublishAllowed(world.course_id,
                                                                           made["id"])
    assert await control.authorize_publish("live", "sk_nope") == PublishDenied("unknown_key")
    assert await control.authorize_publish("other", key) == PublishDenied("wrong_app")

    session_id = await control.session_goes_live(world.course_id)
    status = await api.get(f"/courses/{world.course_id}/live-status", expect=200)
    assert (status["is_live"], status["session_id"]) == (True, session_id)
    await control.end_session(world.course_id)
    status = await api.get(f"/courses/{world.course_id}/live-status", expect=200)
    assert status["is_live"] is False
    await control.end_session(world.course_id)  # nothing live: harmless

    await api.post(f"/stream-keys/{made['id']}/revoke", world.teacher, expect=200)
    assert await control.authorize_publish("live", key) == PublishDenied("revoked")


async def test_encoder_joins_a_session_started_on_the_web(api: Api, world: World) -> None:
    control = InProcessControl(api.database, api.settings.courses)
    started = await api.post(f"/courses/{world.course_id}/start-live", world.teacher,
                             expect=200)
    assert await control.session_goes_live(world.course_id) == started["session_id"]


async def test_recording_ready_and_playback(api: Api, world: World) -> None:
    signer = PlaybackSigner(b"a test key of some length")
    control = InProcessControl(api.database, api.settings.courses, signer=signer,
                               public_url="https://school.example/")
    session_id = await control.session_goes_live(world.course_id)
    later = utcnow() + timedelta(minutes=5)
    token = signer.issue(session_id, world.student.id, later)
    decision = await control.authorize_playback(session_id, token)
    assert isinstance(decision, PlaybackAllowed)
    assert (decision.session_id, decision.live) == (session_id, True)
    assert decision.expires_at <= (utcnow() + timedelta(seconds=10)).timestamp()

    await control.end_session(world.course_id)
    assert await control.authorize_playback(session_id, token) == PlaybackRefused(
        "not_available")
    await control.recording_ready(session_id)
    session = await api.get(f"/sessions/{session_id}/", world.student, expect=200)
    assert session["recording_url"] == (
        f"https://school.example/sessions/{session_id}/recording")
    decision = await control.authorize_playback(session_id, token)
    assert isinstance(decision, PlaybackAllowed) and decision.live is False
    # A session deleted meanwhile is nothing to play, and recording_ready is harmless.
    assert await control.authorize_playback(10**9, signer.issue(10**9, None, later)) == (
        PlaybackRefused("not_available"))
    await control.recording_ready(10**9)


async def test_playback_questions_without_a_signer_or_a_database(
    api: Api, tmp_path: Path
) -> None:
    no_signer = InProcessControl(api.database, api.settings.courses)
    with pytest.raises(ControlUnavailable):
        await no_signer.authorize_playback(1, "anything")
    signer = PlaybackSigner(b"a test key of some length")
    # A folder that does not exist: every query fails as a database error.
    unreachable = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'db.sqlite3'}")
    broken = InProcessControl(unreachable, api.settings.courses, signer=signer)
    try:
        token = signer.issue(1, None, utcnow() + timedelta(minutes=1))
        with pytest.raises(ControlUnavailable):
            await broken.authorize_playback(1, token)
        with pytest.raises(ControlUnavailable):
            await broken.recording_ready(1)
    finally:
        await unreachable.close()
