"""A course hidden from someone answers them exactly like a missing course, wherever they
name it: enrolling in a restricted course without one of its invite codes is 404 like
GET, and a teacher can name as prerequisites only courses they may see (the ids of a
course's prerequisites show to everyone who sees it).
"""

from __future__ import annotations

from support.api_client import Api, Person
from support.snapshot import snapshot
from support.world import World


async def _course(api: Api, world: World, teacher: Person | None = None,
                  **fields: object) -> int:
    made = await api.post("/courses/", teacher or world.teacher, expect=201, json={
        "title": "Course", "category_id": world.category_id, "capacity": 30, **fields})
    return int(made["id"])


async def test_enrolling_in_a_hidden_course_is_404_like_get(api: Api, world: World) -> None:
    hidden = await _course(api, world, access_level="restricted")
    other = await _course(api, world, access_level="restricted")
    foreign = await api.post(f"/courses/{other}/invites", world.teacher, json={}, expect=201)
    missing_id = hidden + other + 1000
    before = await snapshot(api.database)
    gone = await api.post(f"/courses/{missing_id}/enroll", world.student, expect=404)
    got = await api.get(f"/courses/{hidden}/", world.student, expect=404)
    assert got == gone
    for body in (None, {"invite_code": "no-such-code"}, {"invite_code": foreign["code"]}):
        answer = await api.post(f"/courses/{hidden}/enroll", world.student, json=body,
                                expect=404)
        assert answer == gone, body
    assert await snapshot(api.database) == before


async def test_an_invite_code_still_opens_the_hidden_course(api: Api, world: World) -> None:
    hidden = await _course(api, world, access_level="restricted")
    invite = await api.post(f"/courses/{hidden}/invites", world.teacher, json={}, expect=201)
    made = await api.post(f"/courses/{hidden}/enroll", world.student, expect=201,
                          json={"invite_code": invite["code"]})
    assert made["status"] == "active"
    await api.get(f"/courses/{hidden}/", world.student, expect=200)
    # The code is used up: its holder knows the course, so they are told why.
    used = await api.post(f"/courses/{hidden}/enroll", world.student2, expect=403,
                          json={"invite_code": invite["code"]})
    assert used["error"]["code"] == "invite_used_up"


async def test_prerequisites_only_among_courses_the_teacher_sees(api: Api, world: World) -> None:
    theirs = await _course(api, world, access_level="restricted")
    inactive = await _course(api, world, is_active=False)
    public = await _course(api, world, access_level="public")
    mine = await _course(api, world, world.other_teacher)
    missing_id = theirs + inactive + public + 1000
    before = await snapshot(api.database)
    gone = await api.patch(f"/courses/{mine}/", world.other_teacher, expect=422,
                           json={"prerequisite_ids": [missing_id]})
    for hidden in (theirs, inactive):
        answer = await api.patch(f"/courses/{mine}/", world.other_teacher, expect=422,
                                 json={"prerequisite_ids": [hidden]})
        assert answer["error"]["code"] == gone["error"]["code"]
        assert answer["error"]["message"] == gone["error"]["message"].replace(
            str(missing_id), str(hidden))
        await api.post("/courses/", world.other_teacher, expect=422, json={
            "title": "New", "category_id": world.category_id, "prerequisite_ids": [hidden]})
    assert await snapshot(api.database) == before
    # A course they may see is fine; the course's own teacher and admins may name theirs.
    done = await api.patch(f"/courses/{mine}/", world.other_teacher, expect=200,
                           json={"prerequisite_ids": [public]})
    assert done["prerequisite_ids"] == [public]
    await api.patch(f"/courses/{public}/", world.teacher, expect=200,
                    json={"prerequisite_ids": [theirs, inactive]})
    await api.patch(f"/courses/{mine}/", world.admin, expect=200,
                    json={"prerequisite_ids": [theirs, public]})
    # Links already in place (an admin's) survive the teacher sending them back.
    kept = await api.patch(f"/courses/{mine}/", world.other_teacher, expect=200,
                           json={"prerequisite_ids": [theirs, public], "title": "Kept"})
    assert kept["prerequisite_ids"] == sorted([theirs, public])
