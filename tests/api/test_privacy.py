"""Data protection on both databases: a person's export holds everything about them and
no secret; an admin's erasure anonymises them, keeps the course records whole, is audited,
and they never sign in again; a teacher with courses is refused until they are handed on."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from control.models import (
    AttendanceInterval,
    ChatMessage,
    CourseSession,
    Payment,
    PaymentKind,
    SessionStatus,
    User,
)
from control.models.base import utcnow
from support.api_client import Api
from support.world import World


async def ended_session(api: Api, course_id: int) -> int:
    start = utcnow() - timedelta(days=1)
    async with api.database.transaction(write=True) as db:
        session = CourseSession(course_id=course_id, title="Monday", start_time=start,
                                end_time=start + timedelta(hours=1),
                                status=SessionStatus.ENDED, started_at=start,
                                ended_at=start + timedelta(hours=1))
        db.add(session)
        await db.flush()
        return session.id


async def history_of(api: Api, world: World) -> tuple[int, int]:
    """The student enrolled, attended, chatted and paid: (session id, enrollment id)."""
    enrollment = await api.post(f"/courses/{world.course_id}/enroll", world.student,
                                expect=201)
    sid = await ended_session(api, world.course_id)
    now = utcnow()
    async with api.database.transaction(write=True) as db:
        db.add(AttendanceInterval(session_id=sid, user_id=world.student.id,
                                  joined_at=now - timedelta(hours=25),
                                  last_seen_at=now - timedelta(hours=24)))
        db.add(ChatMessage(session_id=sid, user_id=world.student.id, text="hello all"))
        db.add(Payment(transaction_id="tx-42", kind=PaymentKind.PAYMENT,
                       enrollment_id=enrollment["id"], amount_cents=1500, currency="EUR"))
    return sid, enrollment["id"]


async def test_export_holds_everything_about_me_and_no_secret(api: Api, world: World) -> None:
    sid, enrollment_id = await history_of(api, world)
    await api.patch(f"/users/{world.student.id}/", world.admin,
                    json={"email": "s1@example.org", "display_name": "Sam"}, expect=200)
    out = await api.get("/me/export", world.student, expect=200)
    assert out["profile"]["email"] == "s1@example.org"
    assert out["profile"]["display_name"] == "Sam"
    [enrollment] = out["enrollments"]
    assert enrollment["id"] == enrollment_id and enrollment["course_title"] == "Algebra"
    assert [h["to_status"] for h in enrollment["history"]] == ["active"]
    assert out["attendance"][0]["session_id"] == sid
    assert [m["text"] for m in out["chat_messages"]] == ["hello all"]
    assert out["payments"][0]["transaction_id"] == "tx-42"
    actions = {a["action"] for a in out["audit"]}
    assert {"enrollments.enroll", "users.update"} <= actions  # by them, and about them
    assert out["sign_in_tokens"] and "token_hash" not in out["sign_in_tokens"][0]
    text = json.dumps(out)
    assert world.student.token not in text and world.student.password not in text
    assert "argon2" not in text  # no password hash
    # The export itself is audited (who took a copy of whose data).
    audit = await api.get("/audit?action=privacy.export", world.admin, expect=200)
    assert [e["actor_id"] for e in audit["results"]] == [world.student.id]


async def test_a_teachers_export_has_key_metadata_never_the_key(api: Api, world: World
                                                                ) -> None:
    key = await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher, json={},
                         expect=201)
    out = await api.get("/me/export", world.teacher, expect=200)
    assert [k["id"] for k in out["stream_keys"]] == [key["id"]]
    assert out["courses_taught"] == [{"id": world.course_id, "title": "Algebra"}]
    secret = next(v for k, v in key.items() if k == "key")
    assert secret not in json.dumps(out)
    assert {"key_hash", "key_hint", "key"}.isdisjoint(out["stream_keys"][0])


async def test_erasure_anonymises_keeps_records_and_locks_out(api: Api, world: World) -> None:
    _sid, enrollment_id = await history_of(api, world)
    student = world.student
    out = await api.post(f"/users/{student.id}/erase", world.admin, expect=200)
    assert out["username"] == f"erased-{student.id}" and out["erased_at"]
    user = await api.get(f"/users/{student.id}/", world.admin, expect=200)
    assert (user["username"], user["email"], user["display_name"], user["is_active"]) == (
        f"erased-{student.id}", "", "", False)
    # Signed out everywhere, and no way back in: not the old name, not the new one.
    await api.get("/auth/me", student, expect=401)
    for name in (student.user.username, f"erased-{student.id}"):
        await api.post("/auth/login", json={"username": name, "password": student.password},
                       expect=401)
    await api.patch(f"/users/{student.id}/", world.admin,
                    json={"is_active": True, "password": "a-new-password"}, expect=409)
    # The course's records stay whole, pointing at the anonymous account.
    async with api.database.transaction(write=False) as db:
        assert (await db.scalars(select(AttendanceInterval.user_id))).all() == [student.id]
        assert (await db.scalars(select(ChatMessage.text).where(
            ChatMessage.user_id == student.id))).all() == ["hello all"]
        assert (await db.scalars(select(Payment.enrollment_id))).all() == [enrollment_id]
        erased = await db.get(User, student.id)
        assert erased is not None and erased.password_hash == "!erased"
    # Their seat is given up (removed, "erased"), the enrollment and its history kept.
    history = await api.get(f"/enrollments/{enrollment_id}/history", world.admin,
                            expect=200)
    events = history["results"] if isinstance(history, dict) else history
    assert [(e["to_status"], e["reason"]) for e in events][-1] == ("removed", "erased")
    audit = await api.get("/audit?action=privacy.erase", world.admin, expect=200)
    [entry] = audit["results"]
    assert entry["actor_id"] == world.admin.id
    assert entry["detail"]["erased_user_id"] == student.id
    assert student.user.username not in json.dumps(entry)
    again = await api.post(f"/users/{student.id}/erase", world.admin, expect=409)
    assert again["error"]["code"] == "already_erased"


async def test_an_erased_students_seat_goes_to_the_waitlist(api: Api, world: World) -> None:
    full = await api.post("/courses/", world.teacher, json={
        "title": "One seat", "category_id": world.category_id, "capacity": 1}, expect=201)
    await api.post(f"/courses/{full['id']}/enroll", world.student, expect=201)
    waiting = await api.post(f"/courses/{full['id']}/enroll", world.student2, expect=201)
    assert waiting["status"] == "waitlisted"
    await api.post(f"/users/{world.student.id}/erase", world.admin, expect=200)
    promoted = await api.get(f"/enrollments/{waiting['id']}", world.student2, expect=200)
    assert promoted["status"] == "active"


async def test_a_teacher_with_courses_is_refused_until_they_are_handed_on(
        api: Api, world: World) -> None:
    await api.post(f"/courses/{world.course_id}/stream-keys", world.teacher, json={},
                   expect=201)
    out = await api.post(f"/users/{world.teacher.id}/erase", world.admin, expect=409)
    assert out["error"]["code"] == "teaches_courses"
    assert out["error"]["course_ids"] == [world.course_id]
    await api.get("/auth/me", world.teacher, expect=200)  # nothing changed
    await api.patch(f"/courses/{world.course_id}/", world.admin,
                    json={"teacher_id": world.other_teacher.id}, expect=200)
    await api.post(f"/users/{world.teacher.id}/erase", world.admin, expect=200)
    keys = await api.get(f"/courses/{world.course_id}/stream-keys", world.other_teacher,
                         expect=200)
    assert all(k["revoked_at"] for k in keys["results"])


async def test_an_admin_cannot_erase_themself(api: Api, world: World) -> None:
    out = await api.post(f"/users/{world.admin.id}/erase", world.admin, expect=409)
    assert out["error"]["code"] == "self_lockout"
    await api.post("/users/999999/erase", world.admin, expect=404)
