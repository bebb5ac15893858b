"""The ControlPort's contract over the real control plane (both databases), asked in
process (InProcessControl) and over real HTTP (HttpControl against a control app on a
free port): key decisions, going live and ending live, joining a session the teacher
already started on the web, recordings becoming ready and playback checks (more of those
in test_playback.py). And what each does when it cannot get an answer."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from control.db.database import Database
from control.models.base import utcnow
from control.streaming.playback_tokens import PlaybackSigner, signing_key
from mediaserver.control_http import HttpControl
from mediaserver.control_inprocess import InProcessControl
from mediaserver.control_port import (
    ControlPort,
    ControlUnavailable,
    PlaybackAllowed,
    PlaybackRefused,
    PublishAllowed,
    PublishDenied,
)
from support.api_client import Api
from support.cluster import media_settings, serve_control, with_cluster
from support.world import World

# Builds the port under test over `database` with these settings (signer and public URL
# from them); the HTTP kind serves a control app for it on a free port.
MakeControl = Callable[[Settings, Database], Awaitable[ControlPort]]


@pytest.fixture(params=["in_process", "http"])
async def make_control(
    request: pytest.FixtureRequest, aiohttp_server: Any
) -> AsyncIterator[MakeControl]:
    opened: list[HttpControl] = []

    async def make(settings: Settings, database: Database) -> ControlPort:
        if request.param == "in_process":
            return InProcessControl(database, settings)
        control_side = with_cluster(settings)
        server = await serve_control(aiohttp_server, control_side, database)
        # Short waits: a control plane that cannot answer fails these tests quickly.
        http = HttpControl(media_settings(settings, server), attempt_timeout=2.0,
                           attempts=2, backoff=0.05)
        await http.start()
        opened.append(http)
        return http

    yield make
    for http in opened:
        await http.close()


def signed(settings: Settings, public_url: str = "") -> Settings:
    streaming = dataclasses.replace(settings.streaming,
                                    playback_signing_key="a test key of some length")
    server = dataclasses.replace(settings.server, public_url=public_url)
    return dataclasses.replace(settings, streaming=streaming, server=server)


async def test_decisions_and_live_cycle(api: Api, world: World, make_control: MakeControl
                                        ) -> None:
    control = await make_control(api.settings, api.database)
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
    await control.end_session(world.course_id, session_id)
    status = await api.get(f"/courses/{world.course_id}/live-status", expect=200)
    assert status["is_live"] is False
    await control.end_session(world.course_id, session_id)  # nothing live: harmless
    await control.end_session(world.course_id, None)

    await api.post(f"/stream-keys/{made['id']}/revoke", world.teacher, expect=200)
    assert await control.authorize_publish("live", key) == PublishDenied("revoked")


async def test_encoder_joins_a_session_started_on_the_web(
    api: Api, world: World, make_control: MakeControl
) -> None:
    control = await make_control(api.settings, api.database)
    started = await api.post(f"/courses/{world.course_id}/start-live", world.teacher,
                             expect=200)
    assert await control.session_goes_live(world.course_id) == started["session_id"]


async def test_recording_ready_and_playback(
    api: Api, world: World, make_control: MakeControl
) -> None:
    settings = signed(api.settings, "https://school.example/")
    signer = PlaybackSigner(signing_key(settings))
    control = await make_control(settings, api.database)
    session_id = await control.session_goes_live(world.course_id)
    later = utcnow() + timedelta(minutes=5)
    token = signer.issue(session_id, world.student.id, later)
    decision = await control.authorize_playback(session_id, token)
    assert isinstance(decision, PlaybackAllowed)
    assert (decision.session_id, decision.live) == (session_id, True)
    assert decision.expires_at <= (utcnow() + timedelta(seconds=10)).timestamp()
    assert await control.authorize_playback(session_id, token + "x") == PlaybackRefused(
        "bad_token")

    await control.end_session(world.course_id, session_id)
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


async def test_no_answer_without_a_database(
    api: Api, tmp_path: Path, make_control: MakeControl
) -> None:
    settings = signed(api.settings)
    signer = PlaybackSigner(signing_key(settings))
    # A folder that does not exist: every query fails as a database error.
    unreachable = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'db.sqlite3'}")
    broken = await make_control(settings, unreachable)
    try:
        token = signer.issue(1, None, utcnow() + timedelta(minutes=1))
        with pytest.raises(ControlUnavailable):
            await broken.authorize_playback(1, token)
        with pytest.raises(ControlUnavailable):
            await broken.authorize_publish("live", "sk_anything")
        with pytest.raises(ControlUnavailable):
            await broken.session_goes_live(1)
        with pytest.raises(ControlUnavailable):
            await broken.recording_ready(1)
    finally:
        await unreachable.close()


async def test_playback_questions_without_a_signer(api: Api) -> None:
    no_signer = InProcessControl(api.database, api.settings.courses)
    with pytest.raises(ControlUnavailable):
        await no_signer.authorize_playback(1, "anything")
