"""Courses: who sees which, who may change them, catalog filters, search, sort, cursors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from control.models import Course
from support.api_client import Api
from support.world import World


async def _make(api: Api, who: Any, category_id: int, title: str, **extra: Any) -> Any:
    return await api.post(
        "/courses/", who, json={"title": title, "category_id": category_id, **extra}, expect=201
    )


async def test_course_fields_and_defaults(api: Api, world: World) -> None:
    course = await api.get(f"/courses/{world.course_id}/", world.student, expect=200)
    assert course["teacher"]["username"] == "teacher"
    assert course["category"]["name"] == "Maths"
    assert course["capacity"] == 30 and course["seats_left"] == 30
    assert f"/embed/{world.course_id}" in course["live_iframe"]
    default = await _make(api, world.teacher, world.category_id, "Defaults")
    assert default["capacity"] == api.settings.courses.course_enrollment_limit == 100
    assert default["access_level"] == "public" and default["chat_mode"] == "public"


async def test_paid_courses_need_a_price(api: Api, world: World) -> None:
    out = await api.post("/courses/", world.teacher, json={
        "title": "Paid", "category_id": world.category_id, "access_level": "paid"}, expect=422)
    assert "price" in out["error"]["message"]
    paid = await _make(api, world.teacher, world.category_id, "Paid", access_level="paid",
                       price_cents=4900)
    assert paid["price_cents"] == 4900 and paid["currency"] == "EUR"
    await api.post("/courses/", world.teacher, json={
        "title": "Free", "category_id": world.category_id, "price_cents": 100}, expect=422)


async def test_visibility_by_role(api: Api, world: World) -> None:
    mine = await _make(api, world.other_teacher, world.category_id, "Other's public")
    hidden = await _make(api, world.teacher, world.category_id, "Invite only",
                         access_level="restricted")
    archived = await _make(api, world.teacher, world.category_id, "Old", is_active=False)

    def titles(page: Any) -> set[str]:
        return {c["title"] for c in page["results"]}

    student = titles(await api.get("/courses/", world.student, expect=200))
    assert student == {"Algebra", "Other's public"}
    anonymous = titles(await api.get("/courses/", expect=200))
    assert anonymous == student
    teacher = titles(await api.get("/courses/", world.teacher, expect=200))
    assert teacher == {"Algebra", "Invite only", "Old"}
    admin = titles(await api.get("/courses/", world.admin, expect=200))
    assert admin == {"Algebra", "Other's public", "Invite only", "Old"}
    # Existence of what one may not see stays private.
    await api.get(f"/courses/{hidden['id']}/", world.student, expect=404)
    await api.get(f"/courses/{archived['id']}/", world.student, expect=404)
    await api.get(f"/courses/{hidden['id']}/", world.other_teacher, expect=404)
    await api.get(f"/courses/{mine['id']}/", world.teacher, expect=200)


async def test_teacher_has_no_power_over_another_teachers_course(api: Api, world: World) -> None:
    other = await _make(api, world.other_teacher, world.category_id, "Not yours")
    path = f"/courses/{other['id']}/"
    full = {"title": "Hijacked", "category_id": world.category_id}
    await api.patch(path, world.teacher, json={"title": "Hijacked"}, expect=403)
    await api.put(path, world.teacher, json=full, expect=403)
    await api.delete(path, world.teacher, expect=403)
    for verb in (api.patch, api.put):
        await verb(path, world.student, json=full, expect=403)
    await api.delete(path, world.student, expect=403)
    await api.patch(path, expect=401, json={"title": "x"})
    after = await api.get(path, world.admin, expect=200)
    assert after["title"] == "Not yours" and after["is_active"]


async def test_only_teachers_and_admins_create(api: Api, world: World) -> None:
    await api.post("/courses/", world.student, json={
        "title": "Mine", "category_id": world.category_id}, expect=403)
    await api.post("/courses/", world.teacher, json={
        "title": "For someone else", "category_id": world.category_id,
        "teacher_id": world.other_teacher.id}, expect=403)
    need = await api.post("/courses/", world.admin, json={
        "title": "Orphan", "category_id": world.category_id}, expect=422)
    assert "teacher_id" in need["error"]["message"]
    made = await _make(api, world.admin, world.category_id, "Assigned",
                       teacher_id=world.other_teacher.id)
    assert made["teacher"]["id"] == world.other_teacher.id
    async with api.database.transaction(write=False) as db:
        titles = set((await db.scalars(select(Course.title))).all())
    assert "Mine" not in titles and "For someone else" not in titles


async def test_owner_updates_and_archives(api: Api, world: World) -> None:
    path = f"/courses/{world.course_id}/"
    out = await api.patch(path, world.teacher, json={"title": "Linear algebra",
                                                     "chat_mode": "private"}, expect=200)
    assert out["title"] == "Linear algebra" and out["chat_mode"] == "private"
    handed = await api.patch(path, world.teacher, json={"teacher_id": world.other_teacher.id},
                             expect=403)
    assert "admin" in handed["error"]["message"]
    await api.patch(path, world.admin, json={"teacher_id": world.other_teacher.id}, expect=200)
    await api.delete(path, world.other_teacher, expect=204)
    await api.get(path, world.student, expect=404)
    assert (await api.get(path, world.admin, expect=200))["is_active"] is False


async def test_prerequisites_are_checked(api: Api, world: World) -> None:
    base = await _make(api, world.teacher, world.category_id, "Basics")
    advanced = await _make(api, world.teacher, world.category_id, "Advanced",
                           prerequisite_ids=[base["id"]])
    assert advanced["prerequisite_ids"] == [base["id"]]
    cycle = await api.patch(f"/courses/{base['id']}/", world.teacher,
                            json={"prerequisite_ids": [advanced["id"]]}, expect=422)
    assert "cycle" in cycle["error"]["message"]
    await api.patch(f"/courses/{base['id']}/", world.teacher,
                    json={"prerequisite_ids": [base["id"]]}, expect=422)
    await api.patch(f"/courses/{base['id']}/", world.teacher,
                    json={"prerequisite_ids": [99999]}, expect=422)


async def test_filter_search_sort_and_cursor_pages(api: Api, world: World) -> None:
    science = await api.post("/categories/", world.admin, json={"name": "Science"}, expect=201)
    for i in range(25):
        await _make(api, world.teacher, science["id"], f"Physics {i:02d}",
                    description="mechanics" if i % 5 == 0 else "waves")
    by_category = await api.get(f"/courses/?category_id={science['id']}&limit=100",
                                world.student, expect=200)
    assert len(by_category["results"]) == 25
    found = await api.get("/courses/?q=MECHANICS", world.student, expect=200)
    assert sorted(c["title"] for c in found["results"]) == [
        "Physics 00", "Physics 05", "Physics 10", "Physics 15", "Physics 20"]
    # Walk every page of a descending sort by following `next`.
    seen: list[str] = []
    url: str | None = f"/courses/?category_id={science['id']}&sort=-title&limit=7"
    pages = 0
    while url:
        page = await api.get(url, world.student, expect=200)
        seen += [c["title"] for c in page["results"]]
        url = page["next"]
        pages += 1
    assert pages == 4
    assert seen == sorted((f"Physics {i:02d}" for i in range(25)), reverse=True)
    # Newest first, by creation time, pages too.
    first = await api.get("/courses/?sort=-created_at&limit=3", world.student, expect=200)
    second = await api.get(first["next"], world.student, expect=200)
    ids = [c["id"] for c in first["results"] + second["results"]]
    assert len(set(ids)) == 6
    bad = await api.get("/courses/?cursor=garbage!!", world.student, expect=400)
    assert bad["error"]["code"] == "bad_cursor"
    other_sort = await api.get(f"/courses/?sort=id&cursor={first['next'].split('cursor=')[1]}",
                               world.student, expect=400)
    assert other_sort["error"]["code"] == "bad_cursor"
    await api.get("/courses/?sort=price", world.student, expect=422)


async def test_inactive_category_refused(api: Api, world: World) -> None:
    await api.patch(f"/categories/{world.category_id}/", world.admin, json={"is_active": False},
                    expect=200)
    out = await api.post("/courses/", world.teacher, json={
        "title": "Nowhere", "category_id": world.category_id}, expect=422)
    assert "category" in out["error"]["message"]


async def test_raising_capacity_promotes_the_waitlist(api: Api, world: World) -> None:
    course = await _make(api, world.teacher, world.category_id, "Small", capacity=1)
    first = await api.post(f"/courses/{course['id']}/enroll", world.student, expect=201)
    second = await api.post(f"/courses/{course['id']}/enroll", world.student2, expect=201)
    assert (first["status"], second["status"]) == ("active", "waitlisted")
    out = await api.patch(f"/courses/{course['id']}/", world.teacher, json={"capacity": 2},
                          expect=200)
    assert out["seats_left"] == 0
    now = await api.get(f"/enrollments/{second['id']}", world.student2, expect=200)
    assert now["status"] == "active"
