"""Access by time and progress on both databases: a course's term (access_opens_at ..
access_closes_at) bounds what its enrolled students may do (playback, chat, attendance:
403 outside_access_window), never its staff; recordings released in order
(sequential_release) open once the previous one is watched to the share (403
locked_recording before), at the API and at the media edge's token check alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from control.api import progress as progress_api
from mediaserver.control_inprocess import InProcessControl
from mediaserver.control_port import PlaybackAllowed, PlaybackRefused
from support.api_client import Api
from support.frozen_time import Clock
from support.recordings import go_live, private_course, recorded_session
from support.world import World


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def test_the_term_bounds_students_not_staff(api: Api, world: World) -> None:
    now = datetime.now(UTC)
    course = await private_course(api, world, world.student,
                                  access_opens_at=iso(now + timedelta(days=1)))
    shown = await api.get(f"/courses/{course}/", world.teacher, expect=200)
    assert shown["access_opens_at"].startswith(f"{(now + timedelta(days=1)):%Y-%m-%dT%H}")
    assert shown["access_closes_at"] is None and shown["sequential_release"] is None
    sid = await go_live(api, world, course)
    for path, method in ((f"/sessions/{sid}/playback", "GET"),
                         (f"/sessions/{sid}/chat-ticket", "POST"),
                         (f"/sessions/{sid}/heartbeat", "POST")):
        out = await api.call(method, path, world.student, expect=403)
        assert out["error"]["code"] == "outside_access_window", path
        assert "access dates" in out["error"]["message"]
    for who in (world.teacher, world.admin):
        await api.get(f"/sessions/{sid}/playback", who, expect=200)
    # Open now: the student plays; closed since a minute: refused again.
    await api.patch(f"/courses/{course}/", world.teacher, expect=200,
                    json={"access_opens_at": iso(now - timedelta(days=1))})
    await api.get(f"/sessions/{sid}/playback", world.student, expect=200)
    await api.post(f"/sessions/{sid}/chat-ticket", world.student, expect=201)
    await api.patch(f"/courses/{course}/", world.teacher, expect=200,
                    json={"access_closes_at": iso(now - timedelta(minutes=1))})
    out = await api.get(f"/sessions/{sid}/playback", world.student, expect=403)
    assert out["error"]["code"] == "outside_access_window"
    # A null clears an end; a term that closes before it opens is refused.
    await api.patch(f"/courses/{course}/", world.teacher, expect=200,
                    json={"access_opens_at": None})
    out = await api.get(f"/sessions/{sid}/playback", world.student, expect=403)
    assert out["error"]["code"] == "outside_access_window"
    bad = await api.patch(f"/courses/{course}/", world.teacher, expect=422,
                          json={"access_opens_at": iso(now)})
    assert "access_closes_at" in bad["error"]["message"]
    await api.patch(f"/courses/{course}/", world.teacher, expect=200,
                    json={"access_closes_at": None})
    await api.get(f"/sessions/{sid}/playback", world.student, expect=200)


async def test_recordings_open_in_order(
    api: Api, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(datetime.now(UTC))
    monkeypatch.setattr(progress_api, "utcnow", clock)
    course = await private_course(api, world, world.student, sequential_release=0.9)
    first = await recorded_session(api, world, course)
    second = await recorded_session(api, world, course)
    await api.get(f"/sessions/{first}/playback", world.student, expect=200)
    out = await api.get(f"/sessions/{second}/playback", world.student, expect=403)
    assert out["error"]["code"] == "locked_recording"
    out = await api.put(f"/sessions/{second}/progress", world.student, expect=403,
                        json={"position_seconds": 0, "duration_seconds": 100})
    assert out["error"]["code"] == "locked_recording"
    await api.get(f"/sessions/{second}/playback", world.teacher, expect=200)
    control = InProcessControl(api.database, api.settings)

    # Watch 80 % of the first: still locked; 90 %: open.
    await api.put(f"/sessions/{first}/progress", world.student, expect=200,
                  json={"position_seconds": 0, "duration_seconds": 100})
    for position in (20, 40, 60, 80):
        clock.now += timedelta(seconds=20)
        await api.put(f"/sessions/{first}/progress", world.student, expect=200,
                      json={"position_seconds": position, "duration_seconds": 100})
    await api.get(f"/sessions/{second}/playback", world.student, expect=403)
    clock.now += timedelta(seconds=20)
    await api.put(f"/sessions/{first}/progress", world.student, expect=200,
                  json={"position_seconds": 90, "duration_seconds": 100})
    grant = await api.get(f"/sessions/{second}/playback", world.student, expect=200)
    token = grant["url"].split("/play/", 1)[1].split("/")[1]
    assert isinstance(await control.authorize_playback(second, token), PlaybackAllowed)
    # Switching the rule off opens everything; on again, the order holds again.
    third = await recorded_session(api, world, course)
    grant = await api.get(f"/sessions/{first}/playback", world.student, expect=200)
    await api.get(f"/sessions/{third}/playback", world.student, expect=403)
    await api.patch(f"/courses/{course}/", world.teacher, expect=200,
                    json={"sequential_release": None})
    third_grant = await api.get(f"/sessions/{third}/playback", world.student, expect=200)
    await api.patch(f"/courses/{course}/", world.teacher, expect=200,
                    json={"sequential_release": 0.5})
    # A token handed out while it was open stops working at the edge.
    token = third_grant["url"].split("/play/", 1)[1].split("/")[1]
    assert isinstance(await control.authorize_playback(third, token), PlaybackRefused)
    for share in (0, 1.5):
        await api.patch(f"/courses/{course}/", world.teacher, expect=422,
                        json={"sequential_release": share})
