"""Stream keys: shown once, stored hashed, listed without secrets, rotated, revoked;
and the publish lookup the media server will use."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from control.models import StreamKey
from control.models.base import utcnow
from control.streaming.stream_keys import PublishGrant, PublishRefused, Refusal, authorize_publish
from support.api_client import Api
from support.world import World


async def _authorize(api: Api, app: str, key: str) -> PublishGrant | PublishRefused:
    async with api.database.transaction(write=True) as db:
        return await authorize_publish(db, app, key)


async def test_key_is_returned_once_with_the_obs_settings(api: Api, world: World) -> None:
    made = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher,
                          json={"label": "OBS at home"}, expect=201)
    assert made["key"].startswith("sk_") and len(made["key"]) > 30
    assert made["rtmp_url"] == f"rtmp://127.0.0.1:{api.settings.streaming.rtmp_port}/live"
    assert made["obs"]["stream_key"] == made["key"]
    listed = await api.get(f"/courses/{world.course_id}/stream-keys", world.teacher, expect=200)
    assert [k["label"] for k in listed["results"]] == ["OBS at home"]
    assert made["key"] not in str(listed)
    async with api.database.transaction(write=False) as db:
        stored = (await db.scalars(select(StreamKey))).one()
    assert made["key"] not in (stored.key_hash, stored.key_hint)
    grant = await _authorize(api, "live", made["key"])
    assert grant == PublishGrant(course_id=world.course_id, key_id=made["id"])


async def test_query_suffix_and_wrong_app(api: Api, world: World) -> None:
    made = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher, json={},
                          expect=201)
    assert isinstance(await _authorize(api, "live", made["key"] + "?obs=30"), PublishGrant)
    assert await _authorize(api, "other", made["key"]) == PublishRefused(Refusal.WRONG_APP)
    assert await _authorize(api, "live", "sk_wrong") == PublishRefused(Refusal.UNKNOWN_KEY)


async def test_rotate_and_revoke(api: Api, world: World) -> None:
    made = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher, json={},
                          expect=201)
    rotated = await api.post(f"/stream-keys/{made['id']}/rotate", world.teacher, expect=200)
    assert rotated["key"] != made["key"]
    assert await _authorize(api, "live", made["key"]) == PublishRefused(Refusal.UNKNOWN_KEY)
    assert isinstance(await _authorize(api, "live", rotated["key"]), PublishGrant)
    revoked = await api.post(f"/stream-keys/{made['id']}/revoke", world.teacher, expect=200)
    assert revoked["active"] is False
    assert await _authorize(api, "live", rotated["key"]) == PublishRefused(Refusal.REVOKED)
    await api.post(f"/stream-keys/{made['id']}/rotate", world.teacher, expect=409)


async def test_expiry(api: Api, world: World) -> None:
    soon = (utcnow() + timedelta(hours=1)).isoformat()
    made = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher,
                          json={"expires_at": soon}, expect=201)
    async with api.database.transaction(write=True) as db:
        later = utcnow() + timedelta(hours=2)
        assert await authorize_publish(db, "live", made["key"], now=later) == PublishRefused(
            Refusal.EXPIRED
        )
    past = (utcnow() - timedelta(hours=1)).isoformat()
    await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher,
                   json={"expires_at": past}, expect=422)


async def test_archived_course_cannot_publish(api: Api, world: World) -> None:
    made = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher, json={},
                          expect=201)
    await api.delete(f"/courses/{world.course_id}/", world.teacher, expect=204)
    assert await _authorize(api, "live", made["key"]) == PublishRefused(Refusal.COURSE_INACTIVE)


async def test_only_the_courses_staff_touch_keys(api: Api, world: World) -> None:
    made = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher, json={},
                          expect=201)
    for who in (world.other_teacher, world.student):
        await api.post(f"/courses/{world.course_id}/stream-keys", who, json={}, expect=403)
        await api.get(f"/courses/{world.course_id}/stream-keys", who, expect=403)
        await api.post(f"/stream-keys/{made['id']}/rotate", who, expect=403)
        await api.post(f"/stream-keys/{made['id']}/revoke", who, expect=403)
        await api.patch(f"/stream-keys/{made['id']}", who, json={"label": "x"}, expect=403)
        await api.delete(f"/stream-keys/{made['id']}", who, expect=403)
    await api.post(f"/courses/{world.course_id}/stream-keys", expect=401, json={})
    # Still the one key, still working, still unlabelled.
    assert isinstance(await _authorize(api, "live", made["key"]), PublishGrant)
    listed = await api.get(f"/courses/{world.course_id}/stream-keys", world.admin, expect=200)
    assert [(k["label"], k["active"]) for k in listed["results"]] == [("", True)]
