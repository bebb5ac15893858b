"""Enrollments: access levels and the settings that shape them, invites, seeding, the
roster, capacity and the waitlist, prerequisites, history, illegal transitions, and
who may call what (a refused call changes nothing)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from control.enrolment.rules import promote_waitlist
from control.http.state import STATE
from control.models import (
    AuditEntry,
    Course,
    Enrollment,
    EnrollmentEvent,
    EnrollmentStatus,
    InviteCode,
    Role,
)
from control.models.base import utcnow
from support.api_client import Api, Person
from support.snapshot import snapshot
from support.world import World


def set_courses(api: Api, **changes: Any) -> None:
    """Change courses.* settings of the running app."""
    state = api.client.app[STATE]
    state.settings = dataclasses.replace(
        state.settings, courses=dataclasses.replace(state.settings.courses, **changes)
    )


async def make_course(api: Api, world: World, teacher: Person | None = None,
                      **fields: Any) -> int:
    body = {"title": "Course", "category_id": world.category_id, "access_level": "public",
            "capacity": 30, **fields}
    made = await api.post("/courses/", teacher or world.teacher, json=body, expect=201)
    return int(made["id"])


async def statuses(api: Api, course_id: int) -> Counter[str]:
    async with api.database.transaction(write=False) as db:
        rows = await db.scalars(select(Enrollment.status).where(Enrollment.course_id == course_id))
        return Counter(s.value for s in rows)


async def status_of(api: Api, enrollment_id: int) -> str:
    async with api.database.transaction(write=False) as db:
        enrollment = await db.get(Enrollment, enrollment_id)
        assert enrollment is not None
        return enrollment.status.value


async def enroll(api: Api, course_id: int, who: Person | None, expect: int = 201,
                 **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = await api.post(f"/courses/{course_id}/enroll", who, expect=expect,
                                         **kw)
    return out


async def students(api: Api, n: int) -> list[Person]:
    return [await api.person(Role.STUDENT) for _ in range(n)]


# --- access levels -------------------------------------------------------------------------


async def test_public_enroll_is_active_and_enrolling_again_returns_it(
    api: Api, world: World
) -> None:
    first = await enroll(api, world.course_id, world.student)
    assert {"id", "course_id", "student_id", "status"} <= first.keys()
    assert first["status"] == "active"
    assert (first["course_id"], first["student_id"]) == (world.course_id, world.student.id)
    again = await enroll(api, world.course_id, world.student, expect=200)
    assert again["id"] == first["id"] and again["status"] == "active"
    assert await statuses(api, world.course_id) == Counter({"active": 1})


async def test_body_is_optional_but_strict(api: Api, world: World) -> None:
    # No body, an empty object and a null code all mean "no invite code".
    await enroll(api, world.course_id, world.student)
    await enroll(api, world.course_id, world.student2, json={})
    await enroll(api, world.course_id, world.student3, json={"invite_code": None})
    other = await api.person(Role.STUDENT)
    bad = await enroll(api, world.course_id, other, expect=422, json={"code": "x"})
    assert bad["error"]["code"] == "invalid"
    await enroll(api, world.course_id, other, expect=400, data=b"{not json",
                 headers={"Content-Type": "application/json"})
    assert await statuses(api, world.course_id) == Counter({"active": 3})


async def test_public_without_auto_enrollment_waits_for_approval(
    api: Api, world: World
) -> None:
    set_courses(api, auto_enrollment_enabled=False)
    made = await enroll(api, world.course_id, world.student)
    assert made["status"] == "requested"
    approved = await api.post(f"/enrollments/{made['id']}/approve", world.teacher, expect=200)
    assert approved["status"] == "active"


async def test_private_waits_for_the_teacher(api: Api, world: World) -> None:
    course = await make_course(api, world, access_level="private")
    a = await enroll(api, course, world.student)
    b = await enroll(api, course, world.student2)
    assert a["status"] == b["status"] == "requested"
    assert (await api.post(f"/enrollments/{a['id']}/approve", world.teacher,
                           expect=200))["status"] == "active"
    assert (await api.post(f"/enrollments/{b['id']}/reject", world.admin,
                           expect=200))["status"] == "rejected"
    assert await statuses(api, course) == Counter({"active": 1, "rejected": 1})


async def test_private_without_approval_required_is_like_public(api: Api, world: World) -> None:
    set_courses(api, enrollment_approval_required=False)
    course = await make_course(api, world, access_level="private")
    assert (await enroll(api, course, world.student))["status"] == "active"


async def test_approving_when_full_waitlists(api: Api, world: World) -> None:
    course = await make_course(api, world, access_level="private", capacity=1)
    a = await enroll(api, course, world.student)
    b = await enroll(api, course, world.student2)
    await api.post(f"/enrollments/{a['id']}/approve", world.teacher, expect=200)
    late = await api.post(f"/enrollments/{b['id']}/approve", world.teacher, expect=200)
    assert late["status"] == "waitlisted" and late["queued_at"] is not None


async def test_rejected_student_may_enroll_again_on_the_same_row(
    api: Api, world: World
) -> None:
    course = await make_course(api, world, access_level="private")
    first = await enroll(api, course, world.student)
    await api.post(f"/enrollments/{first['id']}/reject", world.teacher, expect=200)
    again = await enroll(api, course, world.student)
    assert again["id"] == first["id"] and again["status"] == "requested"
    history = await api.get(f"/enrollments/{first['id']}/history", world.student, expect=200)
    assert [(e["from_status"], e["to_status"]) for e in history["results"]] == [
        (None, "requested"), ("requested", "rejected"), ("rejected", "requested")]


async def test_removed_student_may_enroll_again(api: Api, world: World) -> None:
    first = await enroll(api, world.course_id, world.student)
    await api.post(f"/enrollments/{first['id']}/withdraw", world.student, expect=200)
    again = await enroll(api, world.course_id, world.student, expect=201)
    assert again["id"] == first["id"] and again["status"] == "active"


async def test_completed_student_keeps_the_completed_enrollment(api: Api, world: World) -> None:
    made = await enroll(api, world.course_id, world.student)
    await api.post(f"/enrollments/{made['id']}/complete", world.teacher, expect=200)
    again = await enroll(api, world.course_id, world.student, expect=200)
    assert again["status"] == "completed"


async def test_archived_course_cannot_be_joined(api: Api, world: World) -> None:
    await api.delete(f"/courses/{world.course_id}/", world.teacher, expect=204)
    await enroll(api, world.course_id, world.student, expect=404)
    await enroll(api, 99999, world.student, expect=404)
    assert await statuses(api, world.course_id) == Counter()


# --- restricted courses and invites ---------------------------------------------------------


async def test_restricted_needs_a_valid_invite(api: Api, world: World) -> None:
    course = await make_course(api, world, access_level="restricted")
    other_course = await make_course(api, world, access_level="restricted")
    await api.get(f"/courses/{course}/", world.student, expect=404)
    invite = await api.post(f"/courses/{course}/invites", world.teacher, json={}, expect=201)
    assert invite["max_uses"] == 1 and invite["code"]
    elsewhere = await api.post(f"/courses/{other_course}/invites", world.teacher, json={},
                               expect=201)
    before = await snapshot(api.database)
    # Hidden from the student: without one of its codes, the same answer as GET.
    missing = await enroll(api, course, world.student, expect=404)
    assert missing["error"]["code"] == "not_found"
    wrong = await enroll(api, course, world.student, expect=404, json={"invite_code": "nope"})
    assert wrong["error"]["code"] == "not_found"
    crossed = await enroll(api, course, world.student, expect=404,
                           json={"invite_code": elsewhere["code"]})
    assert crossed["error"]["code"] == "not_found"
    assert await snapshot(api.database) == before
    made = await enroll(api, course, world.student, json={"invite_code": invite["code"]})
    assert made["status"] == "active"
    await api.get(f"/courses/{course}/", world.student, expect=200)
    used = await enroll(api, course, world.student2, expect=403,
                        json={"invite_code": invite["code"]})
    assert used["error"]["code"] == "invite_used_up"
    listed = await api.get(f"/courses/{course}/invites", world.teacher, expect=200)
    assert [(i["uses"], i["state"]) for i in listed["results"]] == [(1, "used_up")]
    # Already in: enrolling again needs no code and uses none.
    assert (await enroll(api, course, world.student, expect=200))["id"] == made["id"]


async def test_expired_and_revoked_invites_are_refused(api: Api, world: World) -> None:
    course = await make_course(api, world, access_level="restricted")
    soon = (utcnow() + timedelta(hours=1)).isoformat()
    expiring = await api.post(f"/courses/{course}/invites", world.teacher,
                              json={"max_uses": 5, "expires_at": soon}, expect=201)
    revoked = await api.post(f"/courses/{course}/invites", world.teacher,
                             json={"max_uses": 5}, expect=201)
    async with api.database.transaction(write=True) as db:
        await db.execute(update(InviteCode).where(InviteCode.id == expiring["id"])
                         .values(expires_at=utcnow() - timedelta(seconds=1)))
    await api.delete(f"/invites/{revoked['id']}", world.teacher, expect=204)
    out = await enroll(api, course, world.student, expect=403,
                       json={"invite_code": expiring["code"]})
    assert out["error"]["code"] == "invite_expired"
    out = await enroll(api, course, world.student, expect=403,
                       json={"invite_code": revoked["code"]})
    assert out["error"]["code"] == "invite_revoked"
    assert await statuses(api, course) == Counter()


async def test_multi_use_invite_and_capacity(api: Api, world: World) -> None:
    course = await make_course(api, world, access_level="restricted", capacity=1)
    invite = await api.post(f"/courses/{course}/invites", world.teacher, json={"max_uses": 3},
                            expect=201)
    code = {"invite_code": invite["code"]}
    assert (await enroll(api, course, world.student, json=code))["status"] == "active"
    assert (await enroll(api, course, world.student2, json=code))["status"] == "waitlisted"


async def test_invite_body_is_checked(api: Api, world: World) -> None:
    past = (utcnow() - timedelta(hours=1)).isoformat()
    await api.post(f"/courses/{world.course_id}/invites", world.teacher,
                   json={"expires_at": past}, expect=422)
    await api.post(f"/courses/{world.course_id}/invites", world.teacher,
                   json={"max_uses": 0}, expect=422)
    await api.post(f"/courses/{world.course_id}/invites", world.teacher,
                   json={"expires_at": "2099-01-01T00:00:00"}, expect=422)  # no zone
    assert (await api.get(f"/courses/{world.course_id}/invites", world.teacher,
                          expect=200))["results"] == []


async def test_invites_belong_to_the_courses_staff(api: Api, world: World) -> None:
    restricted = await make_course(api, world, access_level="restricted")
    made = await api.post(f"/courses/{world.course_id}/invites", world.teacher, json={},
                          expect=201)
    hidden = await api.post(f"/courses/{restricted}/invites", world.teacher, json={},
                            expect=201)
    await api.get(f"/courses/{restricted}/invites", world.admin, expect=200)
    before = await snapshot(api.database)
    for who, public_status, hidden_status in (
        (world.student, 403, 404), (world.other_teacher, 403, 404),
    ):
        await api.post(f"/courses/{world.course_id}/invites", who, json={},
                       expect=public_status)
        await api.get(f"/courses/{world.course_id}/invites", who, expect=public_status)
        await api.delete(f"/invites/{made['id']}", who, expect=public_status)
        await api.post(f"/courses/{restricted}/invites", who, json={}, expect=hidden_status)
        await api.get(f"/courses/{restricted}/invites", who, expect=hidden_status)
        await api.delete(f"/invites/{hidden['id']}", who, expect=hidden_status)
    await api.post(f"/courses/{world.course_id}/invites", json={}, expect=401)
    assert await snapshot(api.database) == before
    await api.delete(f"/invites/{made['id']}", world.admin, expect=204)
    await api.delete("/invites/99999", world.admin, expect=404)


# --- the teacher's seed calls ---------------------------------------------------------------


async def test_enroll_student_bypasses_approval_payment_and_invites(
    api: Api, world: World
) -> None:
    set_courses(api, payment_required=True)
    private = await make_course(api, world, access_level="private")
    paid = await make_course(api, world, access_level="paid", price_cents=1000)
    restricted = await make_course(api, world, access_level="restricted")
    for course in (private, paid, restricted):
        out = await api.post(f"/courses/{course}/enroll-student", world.teacher,
                             json={"student_id": world.student.id}, expect=201)
        assert out["status"] == "active" and out["student_id"] == world.student.id
        again = await api.post(f"/courses/{course}/enroll-student", world.admin,
                               json={"student_id": world.student.id}, expect=200)
        assert again["id"] == out["id"]
    # A student who asked (private) or owes money (paid) is admitted as they are.
    asked = await enroll(api, private, world.student2)
    owing = await enroll(api, paid, world.student2)
    assert (asked["status"], owing["status"]) == ("requested", "pending_payment")
    for course, made in ((private, asked), (paid, owing)):
        out = await api.post(f"/courses/{course}/enroll-student", world.teacher,
                             json={"student_id": world.student2.id}, expect=200)
        assert out["id"] == made["id"] and out["status"] == "active"


async def test_enroll_student_respects_capacity(api: Api, world: World) -> None:
    course = await make_course(api, world, capacity=1)
    await api.post(f"/courses/{course}/enroll-student", world.teacher,
                   json={"student_id": world.student.id}, expect=201)
    out = await api.post(f"/courses/{course}/enroll-student", world.teacher,
                         json={"student_id": world.student2.id}, expect=201)
    assert out["status"] == "waitlisted"


async def test_enroll_student_needs_an_active_student(api: Api, world: World) -> None:
    for user_id in (world.teacher.id, world.admin.id, 99999):
        await api.post(f"/courses/{world.course_id}/enroll-student", world.teacher,
                       json={"student_id": user_id}, expect=422)
    await api.post(f"/courses/{world.course_id}/enroll-student", world.teacher,
                   json={"student_id": "1"}, expect=422)  # strict: no coercion
    assert await statuses(api, world.course_id) == Counter()


async def test_remove_student_frees_the_seat(api: Api, world: World) -> None:
    course = await make_course(api, world, capacity=1)
    a = await enroll(api, course, world.student)
    b = await enroll(api, course, world.student2)
    assert b["status"] == "waitlisted"
    out = await api.post(f"/courses/{course}/remove-student", world.teacher,
                         json={"student_id": world.student.id}, expect=200)
    assert out["id"] == a["id"] and out["status"] == "removed"
    assert await status_of(api, b["id"]) == "active"
    # Removing takes anyone who holds a place, not only active students.
    c = await enroll(api, course, world.student3)
    assert c["status"] == "waitlisted"
    await api.post(f"/courses/{course}/remove-student", world.admin,
                   json={"student_id": world.student3.id}, expect=200)
    assert await status_of(api, c["id"]) == "removed"
    again = await api.post(f"/courses/{course}/remove-student", world.teacher,
                           json={"student_id": world.student3.id}, expect=409)
    assert again["error"]["code"] == "illegal_transition"
    await api.post(f"/courses/{course}/remove-student", world.teacher,
                   json={"student_id": world.admin.id}, expect=404)


async def test_remove_student_takes_out_requests_and_unpaid(api: Api, world: World) -> None:
    set_courses(api, payment_required=True)
    private = await make_course(api, world, access_level="private")
    paid = await make_course(api, world, access_level="paid", price_cents=500)
    for course in (private, paid):
        made = await enroll(api, course, world.student)
        assert made["status"] in ("requested", "pending_payment")
        await api.post(f"/courses/{course}/remove-student", world.teacher,
                       json={"student_id": world.student.id}, expect=200)
        assert await status_of(api, made["id"]) == "removed"


# --- reads ----------------------------------------------------------------------------------


async def test_roster_with_status_filter_is_audited(api: Api, world: World) -> None:
    course = await make_course(api, world, capacity=1)
    await enroll(api, course, world.student)
    await enroll(api, course, world.student2)
    await enroll(api, course, world.student3)
    roster = await api.get(f"/courses/{course}/enrollments", world.teacher, expect=200)
    assert [e["student"]["username"] for e in roster["results"]] == [
        "student1", "student2", "student3"]
    waiting = await api.get(f"/courses/{course}/enrollments?status=waitlisted", world.admin,
                            expect=200)
    assert [e["student_id"] for e in waiting["results"]] == [world.student2.id,
                                                              world.student3.id]
    await api.get(f"/courses/{course}/enrollments?status=bogus", world.admin, expect=422)
    async with api.database.transaction(write=False) as db:
        audited = (await db.scalars(select(AuditEntry).where(
            AuditEntry.action == "enrollments.roster").order_by(AuditEntry.id))).all()
    assert [(a.actor_id, a.method) for a in audited] == [
        (world.teacher.id, "GET"), (world.admin.id, "GET")]
    assert audited[1].detail["status"] == "waitlisted"


async def test_my_enrollments(api: Api, world: World) -> None:
    other = await make_course(api, world, title="Geometry", access_level="private")
    await enroll(api, world.course_id, world.student)
    await enroll(api, other, world.student)
    await enroll(api, world.course_id, world.student2)
    mine = await api.get("/me/enrollments", world.student, expect=200)
    assert [(e["course_id"], e["status"], e["course_title"]) for e in mine["results"]] == [
        (world.course_id, "active", "Algebra"), (other, "requested", "Geometry")]
    asked = await api.get("/me/enrollments?status=requested", world.student, expect=200)
    assert [e["course_id"] for e in asked["results"]] == [other]
    for who in (world.teacher, world.admin):
        await api.get("/me/enrollments", who, expect=403)
    await api.get("/me/enrollments", expect=401)


async def test_one_enrollment_and_its_history(api: Api, world: World) -> None:
    made = await enroll(api, world.course_id, world.student)
    path = f"/enrollments/{made['id']}"
    for who in (world.student, world.teacher, world.admin):
        assert (await api.get(path, who, expect=200))["id"] == made["id"]
    await api.post(f"{path}/complete", world.teacher, expect=200)
    history = await api.get(f"{path}/history", world.student, expect=200)
    events = history["results"]
    assert [(e["from_status"], e["to_status"], e["actor_id"]) for e in events] == [
        (None, "active", world.student.id), ("active", "completed", world.teacher.id)]
    assert all(e["at"].endswith("Z") for e in events)
    await api.get("/enrollments/99999", world.admin, expect=404)
    await api.get("/enrollments/99999/history", world.admin, expect=404)


# --- transitions ----------------------------------------------------------------------------


async def test_complete_withdraw_and_illegal_transitions(api: Api, world: World) -> None:
    course = await make_course(api, world, access_level="private")
    asked = await enroll(api, course, world.student)
    before = await snapshot(api.database)
    out = await api.post(f"/enrollments/{asked['id']}/complete", world.teacher, expect=409)
    assert out["error"]["code"] == "illegal_transition"
    assert (out["error"]["from"], out["error"]["to"]) == ("requested", "completed")
    assert await snapshot(api.database) == before
    await api.post(f"/enrollments/{asked['id']}/approve", world.teacher, expect=200)
    out = await api.post(f"/enrollments/{asked['id']}/approve", world.teacher, expect=409)
    assert (out["error"]["code"], out["error"]["from"]) == ("illegal_transition", "active")
    out = await api.post(f"/enrollments/{asked['id']}/reject", world.teacher, expect=409)
    assert (out["error"]["from"], out["error"]["to"]) == ("active", "rejected")
    done = await api.post(f"/enrollments/{asked['id']}/complete", world.teacher, expect=200)
    assert done["status"] == "completed"
    out = await api.post(f"/enrollments/{asked['id']}/withdraw", world.student, expect=409)
    assert (out["error"]["from"], out["error"]["to"]) == ("completed", "removed")
    # Withdrawing works from every state that holds a place.
    for status_wanted, path in (("requested", None), ("waitlisted", "full")):
        course2 = await make_course(api, world, access_level="private", capacity=1)
        if path == "full":
            await api.post(f"/courses/{course2}/enroll-student", world.teacher,
                           json={"student_id": world.student3.id}, expect=201)
        made = await enroll(api, course2, world.student2)
        if status_wanted == "waitlisted":
            made = await api.post(f"/enrollments/{made['id']}/approve", world.teacher,
                                  expect=200)
        assert made["status"] == status_wanted
        left = await api.post(f"/enrollments/{made['id']}/withdraw", world.student2,
                              expect=200)
        assert left["status"] == "removed" and left["queued_at"] is None


# --- capacity and the waitlist --------------------------------------------------------------


async def test_waitlist_is_first_in_first_out(api: Api, world: World) -> None:
    course = await make_course(api, world, capacity=2)
    people = await students(api, 5)
    made = [await enroll(api, course, p) for p in people]
    assert [m["status"] for m in made] == ["active"] * 2 + ["waitlisted"] * 3
    assert made[2]["queued_at"] <= made[3]["queued_at"] <= made[4]["queued_at"]
    # A student leaves: the oldest waitlisted takes the seat.
    await api.post(f"/enrollments/{made[0]['id']}/withdraw", people[0], expect=200)
    assert await status_of(api, made[2]["id"]) == "active"
    assert await status_of(api, made[3]["id"]) == "waitlisted"
    # The teacher removes one: the next is promoted.
    await api.post(f"/courses/{course}/remove-student", world.teacher,
                   json={"student_id": people[1].id}, expect=200)
    assert await status_of(api, made[3]["id"]) == "active"
    # Completion frees a seat too (capacity counts active enrollments).
    await api.post(f"/enrollments/{made[2]['id']}/complete", world.teacher, expect=200)
    assert await status_of(api, made[4]["id"]) == "active"
    assert await statuses(api, course) == Counter(
        {"active": 2, "removed": 2, "completed": 1})
    history = await api.get(f"/enrollments/{made[4]['id']}/history", people[4], expect=200)
    last = history["results"][-1]
    assert (last["from_status"], last["to_status"], last["actor_id"]) == (
        "waitlisted", "active", world.teacher.id)
    assert "waitlist" in last["reason"]


async def test_waitlist_order_is_queue_time_not_signup_order(api: Api, world: World) -> None:
    course = await make_course(api, world, capacity=1)
    first, early, late = await students(api, 3)
    a = await enroll(api, course, first)
    x = await enroll(api, course, early)
    y = await enroll(api, course, late)
    # x leaves the queue and joins it again: now behind y, though x's row is older.
    await api.post(f"/enrollments/{x['id']}/withdraw", early, expect=200)
    back = await enroll(api, course, early)
    assert back["id"] == x["id"] and back["queued_at"] > y["queued_at"]
    await api.post(f"/enrollments/{a['id']}/withdraw", first, expect=200)
    assert await status_of(api, y["id"]) == "active"
    assert await status_of(api, x["id"]) == "waitlisted"


async def test_a_withdrawn_waitlisted_student_frees_no_seat(api: Api, world: World) -> None:
    course = await make_course(api, world, capacity=1)
    people = await students(api, 3)
    made = [await enroll(api, course, p) for p in people]
    await api.post(f"/enrollments/{made[1]['id']}/withdraw", people[1], expect=200)
    assert await statuses(api, course) == Counter({"active": 1, "waitlisted": 1, "removed": 1})


async def test_promote_waitlist_after_capacity_is_raised(api: Api, world: World) -> None:
    course_id = await make_course(api, world, capacity=1)
    people = await students(api, 4)
    for p in people:
        await enroll(api, course_id, p)
    async with api.database.transaction(write=True) as db:
        course = await db.get(Course, course_id)
        assert course is not None
        course.capacity = 3
        await db.flush()
        moved = await promote_waitlist(db, course, world.teacher.id, api.settings.courses)
    assert [e.student_id for e in moved] == [people[1].id, people[2].id]
    assert await statuses(api, course_id) == Counter({"active": 3, "waitlisted": 1})
    async with api.database.transaction(write=True) as db:
        course = await db.get(Course, course_id)
        assert course is not None
        assert await promote_waitlist(db, course, None, api.settings.courses) == []


# --- prerequisites --------------------------------------------------------------------------


async def test_prerequisites_must_be_completed(api: Api, world: World) -> None:
    basics = await make_course(api, world, title="Basics")
    more = await make_course(api, world, title="More basics")
    advanced = await make_course(api, world, title="Advanced",
                                 prerequisite_ids=[basics, more])
    out = await enroll(api, advanced, world.student, expect=403)
    assert out["error"]["code"] == "prerequisites_missing"
    assert out["error"]["missing_course_ids"] == [basics, more]
    # Being active in a prerequisite is not enough: it must be completed.
    b = await enroll(api, basics, world.student)
    m = await enroll(api, more, world.student)
    await api.post(f"/enrollments/{b['id']}/complete", world.teacher, expect=200)
    out = await enroll(api, advanced, world.student, expect=403)
    assert out["error"]["missing_course_ids"] == [more]
    # The teacher's enroll-student enforces them too, and says so.
    seeded = await api.post(f"/courses/{advanced}/enroll-student", world.teacher,
                            json={"student_id": world.student.id}, expect=403)
    assert seeded["error"]["code"] == "prerequisites_missing"
    assert "enroll-student" in seeded["error"]["message"]
    assert await statuses(api, advanced) == Counter()
    await api.post(f"/enrollments/{m['id']}/complete", world.teacher, expect=200)
    assert (await enroll(api, advanced, world.student))["status"] == "active"


async def test_prerequisites_are_ignored_when_enforcement_is_off(
    api: Api, world: World
) -> None:
    set_courses(api, prerequisite_enforcement=False)
    basics = await make_course(api, world, title="Basics")
    advanced = await make_course(api, world, title="Advanced", prerequisite_ids=[basics])
    assert (await enroll(api, advanced, world.student))["status"] == "active"
    await api.post(f"/courses/{advanced}/enroll-student", world.teacher,
                   json={"student_id": world.student2.id}, expect=201)


# --- who may call what ----------------------------------------------------------------------


async def test_only_students_enroll_themselves(api: Api, world: World) -> None:
    before = await snapshot(api.database)
    for who in (world.teacher, world.other_teacher, world.admin):
        out = await enroll(api, world.course_id, who, expect=403)
        assert "enroll-student" in out["error"]["message"]
    await enroll(api, world.course_id, None, expect=401)
    assert await snapshot(api.database) == before


async def test_forbidden_calls_change_nothing(api: Api, world: World) -> None:
    """Every enrollment endpoint, called by each role that may not: 403 where the caller
    may see the course, 404 where it is hidden from them; the database is unchanged."""
    set_courses(api, auto_enrollment_enabled=False)  # so approve/reject have a request
    hidden = await make_course(api, world, title="Hidden", access_level="restricted")
    targets: dict[str, dict[str, Any]] = {}
    for name, course in (("public", world.course_id), ("hidden", hidden)):
        made = await api.post(f"/courses/{course}/enroll-student", world.teacher,
                              json={"student_id": world.student.id}, expect=201)
        asked = await api.post(f"/courses/{course}/enroll-student", world.teacher,
                               json={"student_id": world.student3.id}, expect=201)
        # A request to approve or reject, made by the teacher's seed then reset in the DB.
        async with api.database.transaction(write=True) as db:
            await db.execute(update(Enrollment).where(Enrollment.id == asked["id"])
                             .values(status=EnrollmentStatus.REQUESTED))
        targets[name] = {"course": course, "enrollment": made["id"], "request": asked["id"]}

    def calls(t: dict[str, Any]) -> list[tuple[str, str, Any]]:
        c, e, r = t["course"], t["enrollment"], t["request"]
        return [
            ("POST", f"/courses/{c}/enroll-student", {"student_id": world.student2.id}),
            ("POST", f"/courses/{c}/remove-student", {"student_id": world.student.id}),
            ("GET", f"/courses/{c}/enrollments", None),
            ("POST", f"/enrollments/{r}/approve", None),
            ("POST", f"/enrollments/{r}/reject", None),
            ("POST", f"/enrollments/{e}/complete", None),
        ]

    def reads(t: dict[str, Any]) -> list[tuple[str, str, Any]]:
        e = t["enrollment"]
        return [("GET", f"/enrollments/{e}", None), ("GET", f"/enrollments/{e}/history", None),
                ("POST", f"/enrollments/{e}/withdraw", None)]

    before = await snapshot(api.database)
    # The enrolled student themself: sees both courses, manages neither.
    for t in targets.values():
        for method, path, body in calls(t):
            await api.call(method, path, world.student, json=body, expect=403)
    # Another student: the public course is visible (403), the hidden one is not (404).
    for name, t in targets.items():
        for method, path, body in calls(t) + reads(t):
            await api.call(method, path, world.student2, json=body,
                           expect=403 if name == "public" else 404)
    # Another course's teacher has no power here.
    for name, t in targets.items():
        for method, path, body in calls(t) + reads(t):
            await api.call(method, path, world.other_teacher, json=body,
                           expect=403 if name == "public" else 404)
    # Withdrawing is the student's own act: not even the teacher or an admin may.
    for t in targets.values():
        for who in (world.teacher, world.admin):
            await api.post(f"/enrollments/{t['enrollment']}/withdraw", who, expect=403)
    # Nobody signed in.
    for t in targets.values():
        for method, path, body in calls(t) + reads(t):
            await api.call(method, path, None, json=body, expect=401)
    assert await snapshot(api.database) == before
    # And the allowed callers can, so the refusals above were about roles.
    for t in targets.values():
        await api.get(f"/enrollments/{t['enrollment']}", world.student, expect=200)
        await api.get(f"/courses/{t['course']}/enrollments", world.teacher, expect=200)
        await api.post(f"/enrollments/{t['request']}/approve", world.admin, expect=200)
        await api.post(f"/enrollments/{t['enrollment']}/withdraw", world.student, expect=200)


async def test_events_record_every_change(api: Api, world: World) -> None:
    course = await make_course(api, world, capacity=1, access_level="private")
    a = await enroll(api, course, world.student)
    b = await enroll(api, course, world.student2)
    await api.post(f"/enrollments/{a['id']}/approve", world.teacher, expect=200)
    await api.post(f"/enrollments/{b['id']}/approve", world.teacher, expect=200)
    await api.post(f"/enrollments/{a['id']}/withdraw", world.student, expect=200)
    async with api.database.transaction(write=False) as db:
        rows = (await db.scalars(select(EnrollmentEvent).order_by(EnrollmentEvent.id))).all()
    assert [(r.enrollment_id, r.from_status, r.to_status, r.actor_id) for r in rows] == [
        (a["id"], None, "requested", world.student.id),
        (b["id"], None, "requested", world.student2.id),
        (a["id"], "requested", "active", world.teacher.id),
        (b["id"], "requested", "waitlisted", world.teacher.id),
        (a["id"], "active", "removed", world.student.id),
        (b["id"], "waitlisted", "active", world.student.id),
    ]
    assert all(r.at is not None for r in rows)
