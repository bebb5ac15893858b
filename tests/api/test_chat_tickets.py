"""The chat WebSocket opens with a ticket, never with the API token: tickets are
short-lived, single-use, bound to one session, stored hashed, and issued only to
callers the chat would let in. Refusals are JSON errors before the upgrade."""

from __future__ import annotations

from datetime import datetime

import pytest
from aiohttp import WSServerHandshakeError
from sqlalchemy import select

from control.chat.hub import CHAT_HUB, ChatHub
from control.models import ChatTicket
from control.models.base import utcnow
from control.secrets_hashing import digest
from support.api_client import Api
from support.chat_client import UPGRADE, connect, live_session, say, ticket
from support.frozen_time import Clock
from support.world import World


@pytest.fixture
def clock(api: Api) -> Clock:
    hub: ChatHub = api.client.app[CHAT_HUB]
    clock = Clock(utcnow())
    hub.clock = clock
    return clock


async def upgrade_refused(api: Api, path: str) -> int:
    with pytest.raises(WSServerHandshakeError) as refused:
        await api.client.ws_connect(path)
    return refused.value.status


async def test_the_api_token_no_longer_opens_the_chat(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    path = f"/sessions/{sid}/chat?token={world.student.token}"
    assert await upgrade_refused(api, path) == 401
    out = await api.get(path, expect=401)
    assert out["error"]["code"] == "ticket_required"
    out = await api.get(f"/sessions/{sid}/chat", expect=401)
    assert out["error"]["code"] == "ticket_required"
    # Nor in the Authorization header: the address needs a ticket.
    with pytest.raises(WSServerHandshakeError):
        await api.client.ws_connect(f"/sessions/{sid}/chat", headers=world.student.headers)


async def test_a_ticket_opens_one_connection_only(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    answer = await api.post(f"/sessions/{sid}/chat-ticket", world.student, expect=201)
    assert set(answer) == {"ticket", "expires_at"}
    path = f"/sessions/{sid}/chat?ticket={answer['ticket']}"
    ws = await api.client.ws_connect(path)
    assert (await say(ws, "in"))["user"]["id"] == world.student.id
    assert await upgrade_refused(api, path) == 401
    out = await api.get(path, headers=UPGRADE, expect=401)
    assert out["error"]["code"] == "ticket_used"
    await ws.close()


async def test_a_ticket_expires_within_seconds(
    api: Api, world: World, clock: Clock
) -> None:
    sid = await live_session(api, world)
    answer = await api.post(f"/sessions/{sid}/chat-ticket", world.student, expect=201)
    ttl = api.settings.courses.chat_ticket_ttl_seconds
    expires = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - clock()).total_seconds() - ttl) < 1
    clock.advance(seconds=ttl)
    out = await api.get(f"/sessions/{sid}/chat?ticket={answer['ticket']}",
                        headers=UPGRADE, expect=401)
    assert out["error"]["code"] == "ticket_expired"


async def test_a_ticket_is_for_its_own_session(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    other = await api.post("/sessions/", world.teacher, json={
        "course_id": world.course_id, "title": "Later",
        "start_time": "2031-03-03T09:00:00Z", "end_time": "2031-03-03T10:00:00Z",
    }, expect=201)
    pass_ = await ticket(api, sid, world.student)
    out = await api.get(f"/sessions/{other['id']}/chat?ticket={pass_}", headers=UPGRADE,
                        expect=401)
    assert out["error"]["code"] == "ticket_wrong_session"
    # Shown at the wrong door it is not spent: it still opens its own session's chat.
    ws = await api.client.ws_connect(f"/sessions/{sid}/chat?ticket={pass_}")
    await ws.close()
    out = await api.get(f"/sessions/{sid}/chat?ticket=ct_made-up", headers=UPGRADE,
                        expect=401)
    assert out["error"]["code"] == "ticket_invalid"


async def test_tickets_are_stored_hashed(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    pass_ = await ticket(api, sid, world.student)
    async with api.database.transaction(write=False) as db:
        rows = (await db.scalars(select(ChatTicket))).all()
    assert [r.ticket_hash for r in rows] == [digest(pass_)]
    assert rows[0].user_id == world.student.id and rows[0].auth_token_id is not None
    assert all(pass_ not in str(getattr(r, c.key)) for r in rows
               for c in ChatTicket.__mapper__.column_attrs)


async def test_a_ticket_dies_with_the_sign_in_behind_it(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    pass_ = await ticket(api, sid, world.student)
    await api.post("/auth/logout", world.student, expect=204)
    out = await api.get(f"/sessions/{sid}/chat?ticket={pass_}", headers=UPGRADE,
                        expect=401)
    assert out["error"]["code"] == "unauthorized"


async def test_anonymous_tickets_only_for_public_chats(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    ws = await connect(api, sid, None)
    await ws.close()
    await api.patch(f"/courses/{world.course_id}/", world.teacher,
                    json={"chat_mode": "private"}, expect=200)
    await api.post(f"/sessions/{sid}/chat-ticket", expect=401)
    await api.post("/sessions/999999/chat-ticket", world.student, expect=404)


async def test_a_plain_request_does_not_spend_the_ticket(api: Api, world: World) -> None:
    sid = await live_session(api, world)
    pass_ = await ticket(api, sid, world.student)
    out = await api.get(f"/sessions/{sid}/chat?ticket={pass_}", expect=400)
    assert out["error"]["code"] == "websocket_required"
    ws = await api.client.ws_connect(f"/sessions/{sid}/chat?ticket={pass_}")
    await ws.close()


async def test_anonymous_tickets_are_limited_per_address(api: Api, world: World) -> None:
    """Each ticket is a database write no account stands behind: an address gets a burst
    of them, then 429 with Retry-After; signed-in readers are not held back by it."""
    sid = await live_session(api, world)
    burst = api.settings.auth.anonymous_ticket_ip_burst
    assert burst > 0
    statuses = []
    for _ in range(burst + 5):
        await api.post(f"/sessions/{sid}/chat-ticket")
        statuses.append(api.last_status)
    assert set(statuses[:burst]) == {201}
    assert set(statuses[burst:]) == {429}
    response = await api.client.post(f"/sessions/{sid}/chat-ticket")
    assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
    await api.post(f"/sessions/{sid}/chat-ticket", world.student, expect=201)
