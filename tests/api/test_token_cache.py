"""The per-process token cache: reads use it, writes do not, and this process's own
logouts, deactivations, password and role changes take effect at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from control.accounts.token_cache import TokenCache
from control.models import AuthToken, Role, User
from control.secrets_hashing import digest
from support.api_client import Api
from support.world import World


async def _revoke_behind_the_apps_back(api: Api, token: str) -> None:
    # A plain Core connection: what another process sharing the database would do.
    async with api.database.engine.begin() as conn:
        await conn.execute(
            update(AuthToken.__table__)  # type: ignore[arg-type]
            .where(AuthToken.__table__.c.token_hash == digest(token))
            .values(revoked_at=datetime.now(UTC))
        )


async def test_reads_use_the_cache_and_writes_ask_the_database(api: Api, world: World) -> None:
    await api.get("/courses/", world.student, expect=200)
    await _revoke_behind_the_apps_back(api, world.student.token)
    # Within the cache's lifetime a read still passes: the documented revocation lag.
    await api.get("/courses/", world.student, expect=200)
    # A write resolves its token in the database and sees the revocation.
    await api.post(f"/courses/{world.course_id}/enroll", world.student, expect=401)
    api.database.token_cache.clear()
    await api.get("/courses/", world.student, expect=401)


async def test_logout_here_is_refused_at_once(api: Api, world: World) -> None:
    login = await api.post(
        "/auth/login", json={"username": "student1", "password": world.student.password},
        expect=200,
    )
    headers = {"Authorization": f"Bearer {login['token']}"}
    await api.get("/courses/", headers=headers, expect=200)
    assert api.database.token_cache.get(digest(login["token"])) is not None
    await api.post("/auth/logout", headers=headers, expect=204)
    await api.get("/courses/", headers=headers, expect=401)
    await api.get("/auth/me", headers=headers, expect=401)


async def test_deactivation_and_password_change_are_refused_at_once(
    api: Api, world: World
) -> None:
    await api.get("/auth/me", world.student, expect=200)
    await api.get("/auth/me", world.student2, expect=200)
    await api.patch(f"/users/{world.student.id}/", world.admin,
                    json={"password": "a-brand-new-password"}, expect=200)
    await api.get("/auth/me", world.student, expect=401)
    await api.delete(f"/users/{world.student2.id}/", world.admin, expect=204)
    await api.get("/auth/me", world.student2, expect=401)


async def test_role_change_is_seen_at_once(api: Api, world: World) -> None:
    promoted = await api.person(Role.ADMIN, "deputy")
    await api.get("/users/", promoted, expect=200)
    await api.patch(f"/users/{promoted.id}/", world.admin, json={"role": "student"},
                    expect=200)
    await api.get("/users/", promoted, expect=403)
    me = await api.get("/auth/me", promoted, expect=200)
    assert me["role"] == "student"


def _user(user_id: int = 7) -> User:
    return User(id=user_id, username="u", password_hash="x", role=Role.STUDENT, email="",
                display_name="U", is_active=True, created_at=datetime.now(UTC))


def test_entries_end_with_the_ttl_and_with_the_token() -> None:
    clock = [100.0]
    wall = [1_000_000.0]
    cache = TokenCache(ttl_seconds=5, monotonic=lambda: clock[0], wall=lambda: wall[0])
    token_end = datetime.fromtimestamp(wall[0] + 60, UTC)
    cache.put("a", _user(), token_end, cache.generation)
    hit = cache.get("a")
    assert hit is not None and hit.id == 7 and hit.role == Role.STUDENT
    clock[0] += 5
    assert cache.get("a") is None  # the cache's own lifetime
    cache.put("b", _user(), datetime.fromtimestamp(wall[0] + 2, UTC), cache.generation)
    assert cache.get("b") is not None
    wall[0] += 2
    assert cache.get("b") is None  # the token expired before the cache entry would
    assert len(cache) == 0


def test_a_lookup_that_raced_an_eviction_is_not_stored() -> None:
    cache = TokenCache()
    started = cache.generation
    cache.clear()  # e.g. a logout committed while the lookup was running
    cache.put("a", _user(), datetime.now(UTC) + timedelta(hours=1), started)
    assert cache.get("a") is None
    cache.put("a", _user(), datetime.now(UTC) + timedelta(hours=1), cache.generation)
    assert cache.get("a") is not None


def test_cached_users_are_detached_copies() -> None:
    cache = TokenCache()
    original = _user()
    cache.put("a", original, datetime.now(UTC) + timedelta(hours=1), cache.generation)
    cached = cache.get("a")
    assert cached is not None and cached is not original
    assert (cached.id, cached.username, cached.display_name) == (7, "u", "U")
