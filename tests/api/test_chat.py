"""Live chat over the WebSocket, as browser clients use it, on both databases: history on
join, broadcast, moderation (delete, ban, mute, slow mode), the rate limit, the text rules,
and who may read or post by the course's chat mode."""

from __future__ import annotations

import dataclasses
import json

import pytest
from aiohttp import WSMsgType

from config.settings import Settings
from control.chat.hub import CHAT_HUB, ChatHub
from control.models.base import utcnow
from support.api_client import Api, Person
from support.chat_client import UPGRADE, Frame, connect, live_session, receive, say, until
from support.frozen_time import Clock
from support.world import World


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A short history keeps the limit visible; access re-checks (see
    # test_chat_access_loss.py) stay out of the way; the rest are the shipped defaults.
    return dataclasses.replace(settings, courses=dataclasses.replace(
        settings.courses, chat_message_limit=3, chat_access_recheck_seconds=3600
    ))


@pytest.fixture
def hub(api: Api) -> ChatHub:
    hub: ChatHub = api.client.app[CHAT_HUB]
    return hub


@pytest.fixture
def clock(hub: ChatHub) -> Clock:
    clock = Clock(utcnow())
    hub.clock = clock
    return clock


async def history(api: Api, session_id: int, who: Person) -> list[Frame]:
    """What a newcomer is sent on joining: everything before the echo of a marker."""
    ws = await connect(api, session_id, who)
    await ws.send_json({"type": "message", "text": "marker"})
    frames = await until(ws, lambda f: f.get("text") == "marker")
    await ws.close()
    return frames[:-1]


async def test_history_on_join_is_the_last_messages_in_order_without_deleted(
    api: Api, world: World
) -> None:
    sid = await live_session(api, world)
    teacher = await connect(api, sid, world.teacher)
    sent = [await say(teacher, f"note {i}") for i in range(5)]
    assert [f["text"] for f in sent] == [f"note {i}" for i in range(5)]
    await api.delete(f"/chat/messages/{sent[4]['id']}", world.teacher, expect=204)
    frames = await history(api, sid, world.student)
    # chat_message_limit is 3 here; note 4 is deleted.
    assert [f["text"] for f in frames] == ["note 1", "note 2", "note 3"]
    assert all(f["type"] == "message" for f in frames)
    assert frames[0]["user"] == {"id": world.teacher.id, "username": "teacher"}
    await teacher.close()


async def test_a_message_reaches_everyone_in_the_session(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    alice, bob = await connect(api, sid, world.student), await connect(api, sid, world.student2)
    echo = await say(alice, "hello\x07 class\nsecond line")
    got = await receive(bob)
    assert got == echo
    assert got["type"] == "message" and isinstance(got["id"], int)
    assert got["user"] == {"id": world.student.id, "username": "student1"}
    # Control characters are stripped, newlines kept; sent_at is ISO 8601 UTC.
    assert got["text"] == "hello class\nsecond line"
    assert got["sent_at"].endswith("Z") and "T" in got["sent_at"]
    await alice.close()
    await bob.close()


async def test_html_comes_back_verbatim(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    ws = await connect(api, sid, world.student)
    text = '<script>alert("x")</script> &amp; <b>bold</b>'
    await ws.send_json({"type": "message", "text": text})
    raw = await ws.receive_str(timeout=10)
    assert json.loads(raw)["text"] == text
    assert "&lt;" not in raw and "&amp;amp;" not in raw
    assert [f["text"] for f in await history(api, sid, world.student2)] == [text]
    await ws.close()


async def test_deleting_a_message_withdraws_it_everywhere(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    alice, bob = await connect(api, sid, world.student), await connect(api, sid, world.student2)
    message = await say(alice, "oops")
    await receive(bob)
    await api.delete(f"/chat/messages/{message['id']}", world.teacher, expect=204)
    assert await receive(alice) == {"type": "deleted", "id": message["id"]}
    assert await receive(bob) == {"type": "deleted", "id": message["id"]}
    # Idempotent: deleting again answers 204 and tells nobody anything new.
    await api.delete(f"/chat/messages/{message['id']}", world.admin, expect=204)
    assert (await say(alice, "after"))["text"] == "after"
    assert (await receive(bob))["text"] == "after"
    assert [f["text"] for f in await history(api, sid, world.student3)] == ["after"]
    await api.delete("/chat/messages/999999", world.teacher, expect=404)
    await alice.close()
    await bob.close()


async def test_a_ban_tells_open_sockets_and_survives_reconnects(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    c = world.course_id
    ws = await connect(api, sid, world.student)
    assert (await say(ws, "before"))["type"] == "message"
    ban = await api.post(f"/courses/{c}/chat-bans", world.teacher,
                         json={"user_id": world.student.id}, expect=201)
    assert ban["user_id"] == world.student.id
    assert (await receive(ws))["code"] == "banned"
    assert (await say(ws, "still here?"))["code"] == "banned"
    await ws.close()

    again = await connect(api, sid, world.student)
    frames = await until(again, lambda f: f["type"] == "error")
    assert frames[-1]["code"] == "banned"
    assert (await say(again, "let me in"))["code"] == "banned"
    listed = await api.get(f"/courses/{c}/chat-bans", world.teacher, expect=200)
    assert [b["username"] for b in listed] == ["student1"]
    # Staff cannot be banned.
    await api.post(f"/courses/{c}/chat-bans", world.admin,
                   json={"user_id": world.teacher.id}, expect=422)

    await api.delete(f"/courses/{c}/chat-bans/{world.student.id}", world.teacher, expect=204)
    await api.delete(f"/courses/{c}/chat-bans/{world.student.id}", world.teacher, expect=404)
    assert (await say(again, "thanks"))["text"] == "thanks"
    await again.close()


async def test_a_mute_ends_when_its_time_is_up(
    api: Api, world: World, clock: Clock
) -> None:
    sid = await live_session(api, world)
    ws = await connect(api, sid, world.student)
    await api.post(f"/courses/{world.course_id}/chat-mutes", world.teacher,
                   json={"user_id": world.student.id, "minutes": 5}, expect=201)
    assert (await say(ws, "hello?"))["code"] == "muted"
    clock.advance(minutes=4)
    assert (await say(ws, "hello??"))["code"] == "muted"
    clock.advance(minutes=1, seconds=1)
    assert (await say(ws, "back"))["text"] == "back"
    await ws.close()


async def test_slow_mode_spaces_student_messages(
    api: Api, world: World, clock: Clock
) -> None:
    sid = await live_session(api, world)
    body = await api.put(f"/courses/{world.course_id}/chat-settings", world.teacher,
                         json={"slow_mode_seconds": 30}, expect=200)
    assert body["slow_mode_seconds"] == 30
    student = await connect(api, sid, world.student)
    teacher = await connect(api, sid, world.teacher)
    assert (await say(student, "one"))["text"] == "one"
    await receive(teacher)
    clock.advance(seconds=29)
    assert (await say(student, "two"))["code"] == "slow_mode"
    # The teacher is exempt.
    assert (await say(teacher, "t1"))["text"] == "t1"
    assert (await say(teacher, "t2"))["text"] == "t2"
    clock.advance(seconds=1)
    frames = await until(student, lambda f: f.get("text") == "t2")
    assert [f["text"] for f in frames] == ["t1", "t2"]
    assert (await say(student, "two"))["text"] == "two"
    await student.close()
    await teacher.close()


async def test_the_rate_limit_allows_a_burst_then_a_steady_pace(
    api: Api, world: World, clock: Clock
) -> None:
    sid = await live_session(api, world)
    burst = api.settings.courses.chat_rate_burst
    refill = api.settings.courses.chat_rate_refill_seconds
    ws = await connect(api, sid, world.student)
    for i in range(burst):
        assert (await say(ws, f"m{i}"))["type"] == "message"
    assert (await say(ws, "too fast"))["code"] == "rate_limited"
    # Reconnecting does not refill the bucket.
    await ws.close()
    ws = await connect(api, sid, world.student)
    await ws.send_json({"type": "message", "text": "still too fast"})
    frames = await until(ws, lambda f: f["type"] == "error")
    assert frames[-1]["code"] == "rate_limited"
    clock.advance(seconds=refill)
    assert (await say(ws, "paced"))["text"] == "paced"
    assert (await say(ws, "again"))["code"] == "rate_limited"
    # Staff are exempt.
    teacher = await connect(api, sid, world.teacher)
    await until(teacher, lambda f: f.get("text") == "paced")
    for i in range(burst + 2):
        assert (await say(teacher, f"t{i}"))["type"] == "message"
    await ws.close()
    await teacher.close()


async def test_text_rules(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    ws = await connect(api, sid, world.student)
    limit = api.settings.courses.chat_max_length
    assert (await say(ws, "x" * (limit + 1)))["code"] == "too_long"
    assert (await say(ws, "x" * limit))["text"] == "x" * limit
    assert (await say(ws, " \n\t\x00 "))["code"] == "empty"
    assert (await say(ws, 42))["code"] == "bad_frame"
    await ws.send_str("not json")
    assert (await receive(ws))["code"] == "bad_frame"
    await ws.send_json({"type": "shout", "text": "hi"})
    assert (await receive(ws))["code"] == "bad_frame"
    await ws.send_bytes(b"\x00")
    assert (await receive(ws))["code"] == "bad_frame"
    await ws.close()


async def test_anonymous_viewers_read_a_public_chat_but_cannot_post(
    api: Api, world: World
) -> None:
    sid = await live_session(api, world)
    student = await connect(api, sid, world.student)
    await say(student, "for everyone")
    anonymous = await connect(api, sid, None)
    assert (await receive(anonymous))["text"] == "for everyone"
    assert (await say(anonymous, "me too"))["code"] == "not_allowed"
    assert (await say(student, "live"))["text"] == "live"
    assert (await receive(anonymous))["text"] == "live"
    await api.get(f"/sessions/{sid}/chat?ticket=not-a-ticket", headers=UPGRADE, expect=401)
    await student.close()
    await anonymous.close()


async def test_private_chat_is_for_enrolled_students_and_staff(
    api: Api, world: World
) -> None:
    sid = await live_session(api, world)
    c = world.course_id
    await api.patch(f"/courses/{c}/", world.teacher, json={"chat_mode": "private"}, expect=200)
    # Refusals come before the upgrade, as JSON errors: already when asking for a ticket.
    out = await api.post(f"/sessions/{sid}/chat-ticket", world.student2, expect=403)
    assert out["error"]["code"] == "forbidden"
    await api.post(f"/sessions/{sid}/chat-ticket", expect=401)
    await api.get(f"/sessions/{sid}/chat", expect=401)
    await api.post(f"/courses/{c}/enroll-student", world.teacher,
                   json={"student_id": world.student.id}, expect=201)
    ws = await connect(api, sid, world.student)
    assert (await say(ws, "enrolled"))["text"] == "enrolled"
    teacher = await connect(api, sid, world.teacher)
    assert (await receive(teacher))["text"] == "enrolled"
    # Removed from the course: the open socket may no longer post.
    await api.post(f"/courses/{c}/remove-student", world.teacher,
                   json={"student_id": world.student.id}, expect=200)
    assert (await say(ws, "still?"))["code"] == "not_allowed"
    await ws.close()
    await teacher.close()


async def test_disabled_chat_is_refused(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    await api.patch(f"/courses/{world.course_id}/", world.teacher,
                    json={"chat_mode": "disabled"}, expect=200)
    out = await api.post(f"/sessions/{sid}/chat-ticket", world.student, expect=409)
    assert out["error"]["code"] == "chat_disabled"
    await api.post(f"/sessions/{sid}/chat-ticket", world.teacher, expect=409)
    await api.post("/sessions/999999/chat-ticket", world.student, expect=404)


async def test_closing_the_app_closes_the_sockets(api: Api, world: World, hub: ChatHub) -> None:
    sid = await live_session(api, world)
    ws = await connect(api, sid, world.student)
    await say(ws, "bye")
    await hub.close_all()
    message = await ws.receive(timeout=10)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert ws.closed or message.type == WSMsgType.CLOSE

