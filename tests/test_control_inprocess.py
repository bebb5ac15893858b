"""The in-process ControlPort over the real control plane (both databases): key decisions,
going live and ending live, and joining a session the teacher already started on the web."""

from __future__ import annotations

from conftest import Api, World
from mediaserver.control_inprocess import InProcessControl
from mediaserver.control_port import PublishAllowed, PublishDenied


async def test_decisions_and_live_cycle(api: Api, world: World) -> None:
    control = InProcessControl(api.database, api.settings.courses)
    made = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher, json={},
                          expect=201)
    key = made["key"]
    assert await control.authorize_publish("live", key) == PublishAllowed(world.course_id)
    assert await control.authorize_publish("live", "sk_nope") == PublishDenied("unknown_key")
    assert await control.authorize_publish("other", key) == PublishDenied("wrong_app")

    session_id = await control.stream_started(world.course_id)
    status = await api.get(f"/courses/{world.course_id}/live-status", expect=200)
    assert (status["is_live"], status["session_id"]) == (True, session_id)
    await control.stream_ended(world.course_id)
    status = await api.get(f"/courses/{world.course_id}/live-status", expect=200)
    assert status["is_live"] is False
    await control.stream_ended(world.course_id)  # nothing live: harmless

    await api.post(f"/stream-keys/{made['id']}/revoke", world.teacher, expect=200)
    assert await control.authorize_publish("live", key) == PublishDenied("revoked")


async def test_encoder_joins_a_session_started_on_the_web(api: Api, world: World) -> None:
    control = InProcessControl(api.database, api.settings.courses)
    started = await api.post(f"/courses/{world.course_id}/start-live", world.teacher,
                             expect=200)
    assert await control.stream_started(world.course_id) == started["session_id"]
