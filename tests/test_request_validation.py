"""Bad requests are refused clearly, in one error shape, and change nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from conftest import Api, World
from control.models import Course


async def _course_count(api: Api) -> int:
    async with api.database.transaction(write=False) as db:
        return int(await db.scalar(select(func.count(Course.id))) or 0)


async def test_malformed_json_is_400(api: Api, world: World) -> None:
    response = await api.client.post("/courses/", data=b'{"title": "x",',
                                     headers={**world.teacher.headers,
                                              "Content-Type": "application/json"})
    assert response.status == 400
    body = await response.json()
    assert body["error"]["code"] == "malformed_json"
    assert await _course_count(api) == 1


async def test_missing_body_is_400(api: Api, world: World) -> None:
    out = await api.post("/courses/", world.teacher, expect=400)
    assert out["error"]["code"] == "missing_body"


async def test_wrong_types_are_422_and_name_the_field(api: Api, world: World) -> None:
    out = await api.post("/courses/", world.teacher, json={
        "title": "x", "category_id": str(world.category_id)}, expect=422)
    assert out["error"]["code"] == "invalid"
    assert out["error"]["fields"][0]["field"] == "category_id"
    await api.post("/courses/", world.teacher, json={
        "title": "x", "category_id": world.category_id, "capacity": 1.5}, expect=422)
    await api.post("/courses/", world.teacher, json={
        "title": "x", "category_id": world.category_id, "capacity": 0}, expect=422)
    await api.post("/courses/", world.teacher, json=["a", "list"], expect=422)
    assert await _course_count(api) == 1


async def test_unknown_fields_are_refused(api: Api, world: World) -> None:
    out = await api.post("/courses/", world.teacher, json={
        "title": "x", "category_id": world.category_id, "is_live": True}, expect=422)
    assert "is_live" in out["error"]["message"]
    assert await _course_count(api) == 1


async def test_oversized_body_is_413(api: Api, world: World) -> None:
    huge = "x" * (api.settings.server.max_body_bytes + 10)
    response = await api.client.post("/courses/", json={"title": "x", "description": huge},
                                     headers=world.teacher.headers)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "body_too_large"
    assert await _course_count(api) == 1


async def test_unknown_route_and_method(api: Api) -> None:
    out = await api.get("/no-such-thing", expect=404)
    assert out["error"]["code"] == "not_found"
    out = await api.call("DELETE", "/auth/login", expect=405)
    assert out["error"]["code"] == "method_not_allowed"
    await api.get("/courses/abc/", expect=404)


async def test_trailing_slash_twin_routes(api: Api, world: World) -> None:
    await api.get(f"/courses/{world.course_id}", world.student, expect=200)
    await api.get("/courses", world.student, expect=200)
