"""Bad requests are refused clearly, in one error shape, and change nothing."""

from __future__ import annotations

import base64
import logging

import pytest
from sqlalchemy import func, select

from control.models import Course
from support.api_client import Api
from support.world import World


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


async def test_every_405_names_the_allowed_methods(api: Api, world: World) -> None:
    response = await api.client.request("TRACE", f"/courses/{world.course_id}/",
                                        headers=world.admin.headers)
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) == {"GET", "PUT", "PATCH", "DELETE"}
    assert (await response.json())["error"]["code"] == "method_not_allowed"
    response = await api.client.request("DELETE", "/auth/login")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"


async def test_who_calls_is_settled_before_what_they_sent(api: Api, world: World) -> None:
    # A body of the wrong shape, or no body at all, from no one or from a dead token: 401.
    wrong = {"title": 5, "category_id": "x"}
    for headers in ({}, {"Authorization": "Bearer at_not-a-real-token"}):
        out = await api.post("/courses/", json=wrong, headers=headers, expect=401)
        assert out["error"]["code"] == "unauthorized"
        await api.post("/courses/", headers=headers, expect=401)
        await api.get("/users/?limit=0", headers=headers, expect=401)
    await api.post("/courses/", world.teacher, json=wrong, expect=422)


async def test_huge_ids_are_not_found_and_log_nothing(
    api: Api, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    huge = "99999999999999999999999"
    with caplog.at_level(logging.WARNING):
        for path in (f"/courses/{huge}/", f"/courses/{2**31}/", f"/sessions/{huge}/",
                     f"/users/{huge}/", f"/courses/{huge}/enrollments"):
            out = await api.get(path, world.admin, expect=404)
            assert out["error"]["code"] == "not_found"
        await api.delete(f"/categories/{huge}/", world.admin, expect=404)
        # The chat WebSocket sits beside the JSON endpoints, with the same rule.
        await api.get(f"/sessions/{huge}/chat", expect=404)
        # In a filter or a body, a number no id column can hold fails its declared maximum.
        for query in (f"/courses/?category_id={huge}", f"/sessions/?course_id={huge}",
                      f"/audit?actor_id={huge}", f"/users/?offset={huge}"):
            out = await api.get(query, world.admin, expect=422)
            assert out["error"]["code"] == "invalid"
        out = await api.post("/courses/", world.teacher, expect=422, json={
            "title": "x", "category_id": int(huge)})
        assert out["error"]["fields"][0]["field"] == "category_id"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_deeply_nested_cursor_is_400_and_logs_nothing(
    api: Api, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # (Sent raw, 5000 "[" percent-encode past aiohttp's 8190-byte request line: its parser
    # answers 400 before the app sees the request.)
    nested = base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")
    huge_id = base64.urlsafe_b64encode(b'["id", 1, 99999999999999999999]').decode()
    with caplog.at_level(logging.WARNING):
        for cursor in (nested, "[" * 2000, huge_id):
            for path in ("/courses/", "/sessions/", "/schedules/"):
                out = await api.get(f"{path}?cursor={cursor}", world.admin, expect=400)
                assert out["error"]["code"] == "bad_cursor"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_query_times_are_dates_not_numbers(api: Api, world: World) -> None:
    for query in ("/audit?since=0.5", "/audit?since=1700000000", "/sessions/?to=0.5",
                  "/sessions/?from=1e3"):
        await api.get(query, world.admin, expect=422)
    await api.get("/audit?since=2026-01-01T00:00:00Z", world.admin, expect=200)
    await api.get("/sessions/?from=2026-01-01T00:00:00", world.admin, expect=200)


async def test_a_whole_number_written_with_a_point_is_an_integer(api: Api, world: World) -> None:
    # JSON has one number type: 30.0 is the integer 30 (so says JSON Schema); 30.5 is not.
    course = await api.post("/courses/", world.teacher, expect=201, json={
        "title": "Geometry", "category_id": float(world.category_id), "capacity": 30.0})
    assert course["capacity"] == 30
    await api.post("/courses/", world.teacher, expect=422, json={
        "title": "Geometry", "category_id": world.category_id, "capacity": 30.5})
    await api.post("/courses/", world.teacher, expect=400, data=b'{"title": NaN}',
                   headers={"Content-Type": "application/json"})


async def test_null_in_a_category_patch_leaves_the_field_alone(api: Api, world: World) -> None:
    out = await api.patch(f"/categories/{world.category_id}/", world.admin, expect=200,
                          json={"name": None, "description": None, "is_active": None})
    assert out["name"] == "Maths"


async def test_dates_at_the_ends_of_the_calendar_are_refused_not_500(
    api: Api, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    course = world.course_id
    late, early = "9999-12-31T23:00:00", "0001-01-01T00:00:00"
    calls = [
        ("/schedules/", {"course_id": course, "title": "x", "start_time": late,
                         "duration_minutes": 60, "timezone": "UTC"}),
        ("/sessions/", {"course_id": course, "title": "x", "start_time": f"{late}-14:00",
                        "end_time": "9999-12-31T23:59:59-14:00"}),
        ("/sessions/", {"course_id": course, "title": "x", "start_time": f"{early}+14:00",
                        "end_time": "0001-01-01T01:00:00+14:00"}),
        (f"/courses/{course}/stream-keys", {"expires_at": "9999-12-31T23:59:59-14:00"}),
    ]
    with caplog.at_level(logging.WARNING):
        for path, body in calls:
            out = await api.post(path, world.teacher, json=body, expect=422)
            assert out["error"]["code"] == "date_out_of_range"
        out = await api.get("/sessions/?from=9999-12-31T23:59:59-14:00", world.admin,
                            expect=422)
        assert out["error"]["message"].startswith("from:")
        await api.get("/audit?since=0001-01-01T00:00:00%2B14:00", world.admin, expect=422)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
