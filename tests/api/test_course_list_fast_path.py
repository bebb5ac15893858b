"""The course list's precompiled driver-level path: the same JSON as the ORM's single-course
view, with and without the plain reader, for every role, sort, page and search."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import update

from control.app import build_app
from control.db.database import Database
from control.http.cursor import encode_cursor
from control.models import Course, Enrollment, EnrollmentStatus, Role
from support.api_client import Api
from support.world import World

SORTS = ("title", "-title", "created_at", "-created_at", "id", "-id")


async def _make(api: Api, who: Any, category_id: int, title: str, **extra: Any) -> Any:
    return await api.post(
        "/courses/", who, json={"title": title, "category_id": category_id, **extra}, expect=201
    )


@pytest.fixture
async def school(api: Api, world: World) -> World:
    """Courses that exercise every field of the JSON."""
    cid, teacher = world.category_id, world.teacher
    first = await _make(api, teacher, cid, "snake_case basics", capacity=1)
    second = await _make(api, teacher, cid, "100% fun", access_level="paid",
                         price_cents=4900, description="A <b>bold</b> \"course\"")
    await _make(api, teacher, cid, "Needs two", prerequisite_ids=[second["id"], first["id"]])
    hidden = await _make(api, teacher, cid, "Invite only", access_level="restricted")
    await _make(api, world.other_teacher, cid, "Archived", is_active=False)
    await api.post(f"/courses/{first['id']}/enroll", world.student2, expect=201)
    async with api.database.transaction(write=True) as db:
        # An invitation's request: it lets the student see the restricted course.
        db.add(Enrollment(course_id=hidden["id"], student_id=world.student.id,
                          status=EnrollmentStatus.REQUESTED))
        await db.execute(update(Course).where(Course.id == first["id"]).values(is_live=True))
    return world


async def _all(api: Api, who: Any, url: str) -> list[dict[str, Any]]:
    """Every item, following `next`."""
    items: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        page = await api.get(next_url, who, expect=200)
        items += page["results"]
        next_url = page["next"]
    return items


def _viewers(world: World) -> list[Any]:
    return [None, world.student, world.student2, world.teacher, world.other_teacher, world.admin]


async def test_items_match_the_single_course_view(api: Api, school: World) -> None:
    seen_by: dict[str, set[str]] = {}
    for who in _viewers(school):
        items = await _all(api, who, "/courses/?limit=100")
        seen_by[who.user.username if who else "anonymous"] = {c["title"] for c in items}
        for item in items:
            single = await api.get(f"/courses/{item['id']}/", school.admin, expect=200)
            assert item == single
    assert seen_by["student1"] == seen_by["anonymous"] | {"Invite only"}
    assert "Archived" not in seen_by["student2"] and "Invite only" not in seen_by["student2"]
    assert seen_by["other_teacher"] == {"Archived"}
    assert len(seen_by["admin"]) == 6
    detail = {c["title"]: c for c in await _all(api, school.admin, "/courses/?limit=100")}
    assert detail["Needs two"]["prerequisite_ids"] == sorted(
        [detail["100% fun"]["id"], detail["snake_case basics"]["id"]])
    basics = detail["snake_case basics"]
    assert (basics["enrolled_count"], basics["seats_left"], basics["is_live"]) == (1, 0, True)
    assert detail["100% fun"]["currency"] == "EUR" and detail["Algebra"]["currency"] is None
    assert detail["Algebra"]["created_at"].endswith("Z")


async def test_same_answers_without_the_plain_reader(
    aiohttp_client: Any, api: Api, school: World
) -> None:
    fallback = Database(api.database.url, plain_reads=False)
    try:
        assert fallback.plain_reads is None
        other = Api(await aiohttp_client(build_app(api.settings, fallback)), fallback,
                    api.settings)
        for who in _viewers(school):
            for sort in SORTS:
                url = f"/courses/?limit=2&sort={sort}"
                assert await _all(other, who, url) == await _all(api, who, url)
    finally:
        await fallback.close()


async def test_every_sort_pages_through_everything_in_order(api: Api, school: World) -> None:
    everything = await _all(api, school.admin, "/courses/?limit=100")
    for sort in SORTS:
        field = sort.lstrip("-")
        paged = await _all(api, school.admin, f"/courses/?limit=2&sort={sort}")
        expected = sorted(everything, key=lambda c: (c[field], c["id"]),
                          reverse=sort.startswith("-"))
        assert [c["id"] for c in paged] == [c["id"] for c in expected], sort


async def test_filters_and_search_wildcards(api: Api, school: World) -> None:
    async def titles(query: str, who: Any = school.student) -> list[str]:
        return sorted(c["title"] for c in await _all(api, who, f"/courses/?{query}"))

    assert await titles("q=" + quote("%")) == ["100% fun"]
    assert await titles("q=_") == ["snake_case basics"]
    assert await titles("q=BOLD") == ["100% fun"]
    assert await titles("access_level=paid") == ["100% fun"]
    assert await titles("is_live=true") == ["snake_case basics"]
    assert "snake_case basics" not in await titles("is_live=false")
    assert await titles(f"teacher_id={school.other_teacher.id}", school.admin) == ["Archived"]
    assert len(await titles(f"category_id={school.category_id}")) == 5
    assert await titles("category_id=999999") == []


@pytest.mark.parametrize(("sort", "value"), [
    ("title", 5), ("id", "5"), ("id", True), ("created_at", "yesterday"),
    ("created_at", "2024-01-01T00:00:00"),  # no zone: not one this server gives
])
async def test_forged_cursors_are_refused(api: Api, world: World, sort: str, value: Any) -> None:
    cursor = encode_cursor(sort, value, 1)
    out = await api.get(f"/courses/?sort={sort}&cursor={cursor}", world.student, expect=400)
    assert out["error"]["code"] == "bad_cursor"


async def test_a_teacher_sees_only_their_own(api: Api, school: World) -> None:
    fresh = await api.person(Role.TEACHER, "newcomer")
    assert await api.get("/courses/", fresh, expect=200) == {"results": [], "next": None}


async def test_remembered_items_follow_every_change(api: Api, world: World) -> None:
    def algebra(page: Any) -> dict[str, Any]:
        return next(c for c in page["results"] if c["id"] == world.course_id)

    before = algebra(await api.get("/courses/", world.student, expect=200))
    assert algebra(await api.get("/courses/", world.student, expect=200)) == before
    await api.patch(f"/courses/{world.course_id}/", world.teacher, json={"title": "Algebra II"},
                    expect=200)
    await api.post(f"/courses/{world.course_id}/enroll", world.student2, expect=201)
    await api.patch(f"/users/{world.teacher.id}/", world.admin,
                    json={"display_name": "Dr. T"}, expect=200)
    after = algebra(await api.get("/courses/", world.student, expect=200))
    assert (after["title"], after["enrolled_count"], after["teacher"]["display_name"]) == (
        "Algebra II", 1, "Dr. T")
    assert after == await api.get(f"/courses/{world.course_id}/", world.student, expect=200)
