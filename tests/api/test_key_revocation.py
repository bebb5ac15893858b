"""Stream keys stop authorising when access to the course goes, and the media edge is told.

Revoking or rotating a key, handing the course to another teacher, deactivating or
demoting its teacher: the keys concerned no longer authorise a publish (the in-process
ControlPort's answer, as the RTMP and WHIP servers ask it), and the live observer hears
which keys of which course went, so it can disconnect an encoder live on one (that part
end to end with a real encoder: test_key_revocation_live.py). Both databases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from config.settings import Settings
from control.app import build_app
from control.db.database import Database
from mediaserver.control_inprocess import InProcessControl
from mediaserver.control_port import PublishAllowed, PublishDenied
from support.api_client import Api, Person
from support.world import World


@dataclass
class Observer:
    """A LiveObserver that only records what it is told."""

    revoked: list[tuple[int, frozenset[int]]] = field(default_factory=list)

    async def session_ended(self, course_id: int, session_id: int) -> None:
        return None

    async def keys_revoked(self, course_id: int, key_ids: frozenset[int]) -> None:
        self.revoked.append((course_id, key_ids))

    async def details(self, course_id: int) -> dict[str, Any] | None:
        return None


@pytest.fixture
def observer() -> Observer:
    return Observer()


@pytest.fixture
async def api(aiohttp_client: Any, database: Database, settings: Settings,
              observer: Observer) -> Api:
    client = await aiohttp_client(build_app(settings, database, live_observer=observer))
    return Api(client, database, settings)


async def _key(api: Api, who: Person, course_id: int) -> tuple[int, str]:
    made = await api.post(f"/courses/{course_id}/stream-keys", who, json={}, expect=201)
    return int(made["id"]), str(made["key"])


def _control(api: Api) -> InProcessControl:
    return InProcessControl(api.database, api.settings.courses)


async def _works(api: Api, key: str, course_id: int, key_id: int) -> bool:
    answer = await _control(api).authorize_publish("live", key)
    if isinstance(answer, PublishAllowed):
        assert answer == PublishAllowed(course_id, key_id)
        return True
    return False


async def test_revoke_and_delete(api: Api, world: World, observer: Observer) -> None:
    c = world.course_id
    for action in ("POST revoke", "DELETE"):
        key_id, key = await _key(api, world.teacher, c)
        assert await _works(api, key, c, key_id)
        if action == "DELETE":
            await api.delete(f"/stream-keys/{key_id}", world.teacher, expect=204)
        else:
            await api.post(f"/stream-keys/{key_id}/revoke", world.teacher, expect=200)
        assert await _control(api).authorize_publish("live", key) == PublishDenied("revoked")
        assert observer.revoked[-1] == (c, frozenset({key_id}))


async def test_rotate(api: Api, world: World, observer: Observer) -> None:
    c = world.course_id
    key_id, old = await _key(api, world.teacher, c)
    rotated = await api.post(f"/stream-keys/{key_id}/rotate", world.teacher, expect=200)
    assert await _control(api).authorize_publish("live", old) == PublishDenied("unknown_key")
    assert await _works(api, rotated["key"], c, key_id)
    # The key id is the same: the encoder live on the old secret is the one cut off.
    assert observer.revoked == [(c, frozenset({key_id}))]


async def test_handing_the_course_on(api: Api, world: World, observer: Observer) -> None:
    c = world.course_id
    mine = [await _key(api, world.teacher, c), await _key(api, world.admin, c)]
    other_course = (await api.post("/courses/", world.teacher, expect=201, json={
        "title": "Other", "category_id": world.category_id}))["id"]
    kept_id, kept = await _key(api, world.teacher, other_course)
    # Naming the same teacher again hands nothing on.
    await api.patch(f"/courses/{c}/", world.admin, json={"teacher_id": world.teacher.id},
                    expect=200)
    assert all([await _works(api, key, c, key_id) for key_id, key in mine])
    assert observer.revoked == []
    await api.patch(f"/courses/{c}/", world.admin, json={"teacher_id": world.other_teacher.id},
                    expect=200)
    for _, key in mine:
        assert await _control(api).authorize_publish("live", key) == PublishDenied("revoked")
    assert observer.revoked == [(c, frozenset(key_id for key_id, _ in mine))]
    listed = await api.get(f"/courses/{c}/stream-keys", world.other_teacher, expect=200)
    assert [k["active"] for k in listed["results"]] == [False, False]
    # The new teacher makes their own; the old teacher's other course is untouched.
    new_id, new = await _key(api, world.other_teacher, c)
    assert await _works(api, new, c, new_id)
    assert await _works(api, kept, other_course, kept_id)


@pytest.mark.parametrize("how", ["delete", "patch"])
async def test_deactivating_the_teacher(api: Api, world: World, observer: Observer,
                                        how: str) -> None:
    c = world.course_id
    theirs = await _key(api, world.teacher, c)
    from_admin = await _key(api, world.admin, c)  # for the teacher's course: they know it
    other_course = (await api.post("/courses/", world.other_teacher, expect=201, json={
        "title": "Other", "category_id": world.category_id}))["id"]
    elsewhere = await _key(api, world.other_teacher, other_course)
    if how == "delete":
        await api.delete(f"/users/{world.teacher.id}/", world.admin, expect=204)
    else:
        await api.patch(f"/users/{world.teacher.id}/", world.admin, json={"is_active": False},
                        expect=200)
    for _, key in (theirs, from_admin):
        assert await _control(api).authorize_publish("live", key) == PublishDenied("revoked")
    assert observer.revoked == [(c, frozenset({theirs[0], from_admin[0]}))]
    assert await _works(api, elsewhere[1], other_course, elsewhere[0])


async def test_demoting_the_teacher(api: Api, world: World, observer: Observer) -> None:
    c = world.course_id
    key_id, key = await _key(api, world.teacher, c)
    await api.patch(f"/users/{world.teacher.id}/", world.admin, json={"display_name": "T"},
                    expect=200)
    assert await _works(api, key, c, key_id)
    await api.patch(f"/users/{world.teacher.id}/", world.admin, json={"role": "student"},
                    expect=200)
    assert await _control(api).authorize_publish("live", key) == PublishDenied("revoked")
    assert observer.revoked == [(c, frozenset({key_id}))]


async def test_an_admin_made_teacher_loses_keys_made_for_others_courses(
    api: Api, world: World, observer: Observer
) -> None:
    second_admin = await api.person(world.admin.user.role, "admin2")
    foreign = await _key(api, second_admin, world.course_id)  # made for someone's course
    await api.patch(f"/users/{second_admin.id}/", world.admin, json={"role": "teacher"},
                    expect=200)
    assert await _control(api).authorize_publish("live", foreign[1]) == PublishDenied("revoked")
    assert observer.revoked == [(world.course_id, frozenset({foreign[0]}))]
