"""Signing in and out, token expiry and revocation, self-registration, admin user management."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from sqlalchemy import func, select, update

from control.models import AuthToken, Role, User
from control.models.base import utcnow
from support.api_client import Api
from support.world import World


async def test_login_wrong_password_and_unknown_user_are_alike(api: Api, world: World) -> None:
    wrong = await api.post("/auth/login", json={"username": "student1", "password": "nope-nope"})
    assert api.last_status == 401
    unknown = await api.post("/auth/login", json={"username": "ghost", "password": "nope-nope"})
    assert api.last_status == 401
    assert wrong == unknown
    assert wrong["error"]["code"] == "unauthorized"


async def test_username_is_case_insensitive_at_login(api: Api, world: World) -> None:
    out = await api.post(
        "/auth/login", json={"username": "STUDENT1", "password": world.student.password},
        expect=200,
    )
    assert out["user"]["id"] == world.student.id


async def test_logout_revokes_the_token(api: Api, world: World) -> None:
    login = await api.post(
        "/auth/login", json={"username": "teacher", "password": world.teacher.password},
        expect=200,
    )
    headers = {"Authorization": f"Bearer {login['token']}"}
    await api.get("/auth/me", headers=headers, expect=200)
    await api.post("/auth/logout", headers=headers, expect=204)
    gone = await api.get("/auth/me", headers=headers, expect=401)
    assert gone["error"]["code"] == "unauthorized"


async def test_expired_token_is_refused(api: Api, world: World) -> None:
    async with api.database.transaction(write=True) as db:
        await db.execute(
            update(AuthToken)
            .where(AuthToken.user_id == world.student.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    await api.get("/auth/me", world.student, expect=401)


async def test_garbage_authorization_header(api: Api, world: World) -> None:
    out = await api.get("/auth/me", headers={"Authorization": "Basic abc"}, expect=401)
    assert "Bearer" in out["error"]["message"]
    await api.get("/auth/me", headers={"Authorization": "Bearer nonsense"}, expect=401)
    await api.get("/auth/me", expect=401)


async def test_passwords_are_hashed_with_argon2(api: Api, world: World) -> None:
    async with api.database.transaction(write=False) as db:
        stored = await db.scalar(select(User.password_hash).where(User.id == world.student.id))
    assert stored is not None and stored.startswith("$argon2id$")
    assert world.student.password not in stored


async def test_self_registration_creates_a_student(api: Api) -> None:
    out = await api.post(
        "/auth/register", json={"username": "newbie", "password": "long-enough-pw"}, expect=201
    )
    assert out["role"] == "student"
    await api.post(
        "/auth/login", json={"username": "newbie", "password": "long-enough-pw"}, expect=200
    )
    taken = await api.post(
        "/auth/register", json={"username": "NEWBIE", "password": "long-enough-pw"}, expect=409
    )
    assert taken["error"]["code"] == "username_taken"


async def test_registration_cannot_pick_a_role(api: Api) -> None:
    out = await api.post(
        "/auth/register",
        json={"username": "sneaky", "password": "long-enough-pw", "role": "admin"},
        expect=422,
    )
    assert "role" in out["error"]["message"]
    async with api.database.transaction(write=False) as db:
        assert await db.scalar(select(func.count()).where(User.username == "sneaky")) == 0


async def test_registration_can_be_turned_off(aiohttp_client, database, settings) -> None:  # type: ignore[no-untyped-def]
    from control.app import build_app

    closed = dataclasses.replace(
        settings, auth=dataclasses.replace(settings.auth, allow_self_registration=False)
    )
    client = await aiohttp_client(build_app(closed, database))
    response = await client.post(
        "/auth/register", json={"username": "newbie", "password": "long-enough-pw"}
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "forbidden"


async def test_admin_manages_users(api: Api, world: World) -> None:
    made = await api.post(
        "/users/", world.admin,
        json={"username": "prof", "password": "long-enough-pw", "role": "teacher"}, expect=201,
    )
    listed = await api.get("/users/?role=teacher", world.admin, expect=200)
    assert "prof" in [u["username"] for u in listed["results"]]
    promoted = await api.patch(f"/users/{made['id']}/", world.admin, json={"role": "admin"},
                               expect=200)
    assert promoted["role"] == "admin"
    await api.delete(f"/users/{made['id']}/", world.admin, expect=204)
    await api.post("/auth/login", json={"username": "prof", "password": "long-enough-pw"},
                   expect=401)


async def test_deactivation_ends_existing_sessions(api: Api, world: World) -> None:
    await api.get("/auth/me", world.student, expect=200)
    await api.patch(f"/users/{world.student.id}/", world.admin, json={"is_active": False},
                    expect=200)
    await api.get("/auth/me", world.student, expect=401)


async def test_admin_cannot_lock_themself_out(api: Api, world: World) -> None:
    out = await api.patch(f"/users/{world.admin.id}/", world.admin, json={"role": "student"},
                          expect=409)
    assert out["error"]["code"] == "self_lockout"
    await api.delete(f"/users/{world.admin.id}/", world.admin, expect=409)


async def test_non_admins_cannot_manage_users(api: Api, world: World) -> None:
    for who in (world.teacher, world.student):
        await api.get("/users/", who, expect=403)
        await api.post("/users/", who, json={"username": "x" + who.user.username,
                                             "password": "long-enough-pw", "role": "admin"},
                       expect=403)
        await api.patch(f"/users/{world.student2.id}/", who, json={"role": "admin"}, expect=403)
        await api.delete(f"/users/{world.student2.id}/", who, expect=403)
        await api.get(f"/users/{world.student2.id}/", who, expect=403)
    # A user may read themself.
    await api.get(f"/users/{world.student.id}/", world.student, expect=200)
    async with api.database.transaction(write=False) as db:
        roles = dict((await db.execute(select(User.username, User.role))).all())
    assert roles["student2"] == Role.STUDENT
    assert not [name for name in roles if name.startswith("x")]
