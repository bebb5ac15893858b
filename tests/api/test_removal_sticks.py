"""A student the course's teacher (or an admin) removed stays out until staff re-admit them.

Enrolling again by themself is refused (403 removed_from_course) whatever they hold: an
open public course, an invite code with uses left, a payment kept from before, a payment
delivered after the removal. Staff re-admit with enroll-student. A student who left by
themself (withdraw) may still come back on their own.
"""

from __future__ import annotations

from support.api_client import Api, Person
from support.payment_webhook import deliver, event, paid_course
from support.snapshot import snapshot
from support.world import World


async def _course(api: Api, world: World, **fields: object) -> int:
    made = await api.post("/courses/", world.teacher, expect=201, json={
        "title": "Course", "category_id": world.category_id, "capacity": 30, **fields})
    return int(made["id"])


async def _remove(api: Api, who: Person, course: int, student: Person) -> None:
    out = await api.post(f"/courses/{course}/remove-student", who, expect=200,
                         json={"student_id": student.id})
    assert out["status"] == "removed"


async def _refused(api: Api, course: int, student: Person, **body: object) -> None:
    before = await snapshot(api.database)
    out = await api.post(f"/courses/{course}/enroll", student, json=body or None, expect=403)
    assert out["error"]["code"] == "removed_from_course", out
    assert "teacher" in out["error"]["message"]
    assert await snapshot(api.database) == before  # no invite use spent, nothing moved


async def test_public_course(api: Api, world: World) -> None:
    course = world.course_id
    await api.post(f"/courses/{course}/enroll", world.student, expect=201)
    await _remove(api, world.teacher, course, world.student)
    await _refused(api, course, world.student)
    # Removed by an admin: the same.
    await api.post(f"/courses/{course}/enroll", world.student2, expect=201)
    await _remove(api, world.admin, course, world.student2)
    await _refused(api, course, world.student2)


async def test_invite_code_with_uses_left(api: Api, world: World) -> None:
    course = await _course(api, world, access_level="restricted")
    invite = await api.post(f"/courses/{course}/invites", world.teacher, json={"max_uses": 5},
                            expect=201)
    code = invite["code"]
    await api.post(f"/courses/{course}/enroll", world.student, json={"invite_code": code},
                   expect=201)
    await _remove(api, world.teacher, course, world.student)
    await _refused(api, course, world.student, invite_code=code)
    # A fresh code from elsewhere is no way back either.
    fresh = await api.post(f"/courses/{course}/invites", world.teacher, json={}, expect=201)
    await _refused(api, course, world.student, invite_code=fresh["code"])


async def test_kept_payment_and_payment_after_removal(api: Api, world: World) -> None:
    course = await paid_course(api, world)
    made = await api.post(f"/courses/{course}/enroll", world.student, expect=201)
    assert made["status"] == "pending_payment"
    assert (await deliver(api, event("tx-1", made["id"])))["enrollment_status"] == "active"
    await _remove(api, world.teacher, course, world.student)
    # The payment is kept (paid stays true), yet it does not buy the way back in.
    await _refused(api, course, world.student)
    # Nor does a payment the provider delivers after the removal.
    late = await deliver(api, event("tx-2", made["id"]))
    assert (late["outcome"], late["enrollment_status"]) == ("recorded", "removed")
    await _refused(api, course, world.student)


async def test_staff_re_admit(api: Api, world: World) -> None:
    course = world.course_id
    made = await api.post(f"/courses/{course}/enroll", world.student, expect=201)
    for staff in (world.teacher, world.admin):
        await _remove(api, staff, course, world.student)
        await _refused(api, course, world.student)
        back = await api.post(f"/courses/{course}/enroll-student", staff, expect=201,
                              json={"student_id": world.student.id})
        assert (back["id"], back["status"]) == (made["id"], "active")
    # Re-admitted, then leaving by themself: coming back is theirs to decide again.
    await api.post(f"/enrollments/{made['id']}/withdraw", world.student, expect=200)
    again = await api.post(f"/courses/{course}/enroll", world.student, expect=201)
    assert again["status"] == "active"


async def test_a_student_who_withdrew_may_come_back(api: Api, world: World) -> None:
    course = await paid_course(api, world)
    made = await api.post(f"/courses/{course}/enroll", world.student, expect=201)
    await deliver(api, event("tx-w", made["id"]))
    await api.post(f"/enrollments/{made['id']}/withdraw", world.student, expect=200)
    # Their payment still counts: straight back to active.
    back = await api.post(f"/courses/{course}/enroll", world.student, expect=201)
    assert back["status"] == "active"
