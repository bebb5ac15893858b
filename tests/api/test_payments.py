"""The payment webhook: signed deliveries, idempotent by transaction id; payments admit
students to paid courses (or waitlist them), refunds end access and free the seat."""

from __future__ import annotations

import json as jsonlib
from collections import Counter
from typing import Any

from sqlalchemy import func, select

from control.models import Enrollment, EnrollmentEvent, Payment, Role
from support.api_client import Api, Person
from support.payment_webhook import deliver, event, paid_course, set_settings, signed
from support.snapshot import snapshot
from support.world import World


async def enroll(api: Api, course_id: int, who: Person) -> dict[str, Any]:
    out: dict[str, Any] = await api.post(f"/courses/{course_id}/enroll", who, expect=201)
    return out


async def enrollment(api: Api, enrollment_id: int) -> Enrollment:
    async with api.database.transaction(write=False) as db:
        found = await db.get(Enrollment, enrollment_id)
        assert found is not None
        return found


async def counts(api: Api) -> tuple[int, int]:
    async with api.database.transaction(write=False) as db:
        payments = await db.scalar(select(func.count(Payment.id)))
        events = await db.scalar(select(func.count(EnrollmentEvent.id)))
    return int(payments or 0), int(events or 0)


async def test_payment_activates_and_is_recorded_by_the_system(api: Api, world: World) -> None:
    course = await paid_course(api, world)
    made = await enroll(api, course, world.student)
    assert made["status"] == "pending_payment"
    out = await deliver(api, event("tx-1", made["id"]))
    assert (out["outcome"], out["enrollment_status"], out["replayed"]) == (
        "activated", "active", False)
    stored = await enrollment(api, made["id"])
    assert stored.status == "active" and stored.paid
    history = await api.get(f"/enrollments/{made['id']}/history", world.student, expect=200)
    last = history["results"][-1]
    assert (last["from_status"], last["to_status"], last["actor_id"]) == (
        "pending_payment", "active", None)


async def test_a_replay_changes_nothing_and_answers_the_same(api: Api, world: World) -> None:
    course = await paid_course(api, world)
    made = await enroll(api, course, world.student)
    first = await deliver(api, event("tx-1", made["id"]))
    before = await counts(api)
    again = await deliver(api, event("tx-1", made["id"]))
    assert again["replayed"] is True
    assert {k: v for k, v in again.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"}
    assert await counts(api) == before
    # The same transaction id with other details is not a replay.
    clash = await deliver(api, event("tx-1", made["id"], amount=1), expect=409)
    assert clash["error"]["code"] == "transaction_id_reused"
    assert await counts(api) == before


async def test_wrong_amount_or_currency_is_refused(api: Api, world: World) -> None:
    course = await paid_course(api, world)
    made = await enroll(api, course, world.student)
    free = await api.post(f"/courses/{world.course_id}/enroll", world.student2, expect=201)
    before = await snapshot(api.database)
    for body in (event("tx-a", made["id"], amount=2499),
                 event("tx-b", made["id"], currency="USD"),
                 event("tx-c", free["id"])):  # a course that has no price at all
        out = await deliver(api, body, expect=422)
        assert out["error"]["code"] == "payment_mismatch"
    assert await snapshot(api.database) == before
    stored = await enrollment(api, made["id"])
    assert stored.status == "pending_payment" and not stored.paid


async def test_signature_is_required(api: Api, world: World) -> None:
    course = await paid_course(api, world)
    made = await enroll(api, course, world.student)
    before = await snapshot(api.database)
    raw, _ = signed(event("tx-1", made["id"]))
    await api.post("/payments/webhook", data=raw, expect=401)
    out = await deliver(api, event("tx-1", made["id"]), secret="wrong", expect=401)
    assert out["error"]["code"] == "bad_signature"
    _, headers = signed(event("tx-1", made["id"]))
    tampered = event("tx-1", made["id"]) | {"amount_cents": 2500, "enrollment_id": 0}
    await api.post("/payments/webhook", data=jsonlib.dumps(tampered).encode(),
                   headers=headers, expect=401)
    await api.post("/payments/webhook", data=raw,
                   headers={"X-Academia-Signature": "zz\u00e9"}, expect=401)
    assert await snapshot(api.database) == before
    # A bearer token is no substitute for the signature.
    await api.post("/payments/webhook", world.admin, data=raw, expect=401)
    assert await snapshot(api.database) == before


async def test_webhook_is_disabled_without_a_secret(api: Api, world: World) -> None:
    course = await paid_course(api, world)
    made = await enroll(api, course, world.student)
    set_settings(api, "payments", payment_webhook_secret="")
    before = await snapshot(api.database)
    out = await deliver(api, event("tx-1", made["id"]), secret="", expect=503)
    assert out["error"]["code"] == "webhook_disabled"
    assert await snapshot(api.database) == before


async def test_malformed_or_unknown_deliveries(api: Api, world: World) -> None:
    course = await paid_course(api, world)
    made = await enroll(api, course, world.student)
    before = await snapshot(api.database)
    await deliver(api, b"{not json", expect=400)
    await deliver(api, event("tx-1", made["id"]) | {"extra": 1}, expect=422)
    await deliver(api, event("tx-1", made["id"], kind="chargeback"), expect=422)
    await deliver(api, event("tx-1", 99999), expect=404)
    assert await snapshot(api.database) == before


async def test_payment_when_full_waitlists_and_promotion_skips_paying_again(
    api: Api, world: World
) -> None:
    course = await paid_course(api, world, capacity=1)
    a = await enroll(api, course, world.student)
    b = await enroll(api, course, world.student2)
    assert b["status"] == "pending_payment"  # a seat is free until someone pays
    await deliver(api, event("tx-a", a["id"]))
    out = await deliver(api, event("tx-b", b["id"]))
    assert (out["outcome"], out["enrollment_status"]) == ("waitlisted", "waitlisted")
    assert (await enrollment(api, b["id"])).paid
    # A full paid course waitlists newcomers without asking them to pay.
    c = await enroll(api, course, world.student3)
    assert c["status"] == "waitlisted"
    # The seat frees: b paid already, so b goes straight to active.
    await api.post(f"/enrollments/{a['id']}/withdraw", world.student, expect=200)
    assert (await enrollment(api, b["id"])).status == "active"
    assert (await enrollment(api, c["id"])).status == "waitlisted"
    # Another seat frees: c has not paid, so c is offered it (pending_payment) and
    # activated by the payment.
    await api.post(f"/courses/{course}/remove-student", world.teacher,
                   json={"student_id": world.student2.id}, expect=200)
    assert (await enrollment(api, c["id"])).status == "pending_payment"
    out = await deliver(api, event("tx-c", c["id"]))
    assert out["outcome"] == "activated"


async def test_paying_while_waitlisted_is_recorded_then_skips_the_offer(
    api: Api, world: World
) -> None:
    course = await paid_course(api, world, capacity=1)
    await api.post(f"/courses/{course}/enroll-student", world.teacher,
                   json={"student_id": world.student3.id}, expect=201)
    waiting = await enroll(api, course, world.student)
    assert waiting["status"] == "waitlisted"
    out = await deliver(api, event("tx-w", waiting["id"]))
    assert (out["outcome"], out["enrollment_status"]) == ("recorded", "waitlisted")
    assert (await enrollment(api, waiting["id"])).paid
    assert (await deliver(api, event("tx-w", waiting["id"])))["outcome"] == "recorded"
    await api.post(f"/courses/{course}/remove-student", world.teacher,
                   json={"student_id": world.student3.id}, expect=200)
    assert (await enrollment(api, waiting["id"])).status == "active"


async def test_one_freed_seat_is_offered_to_one_student(api: Api, world: World) -> None:
    course = await paid_course(api, world, capacity=1)
    first = await api.person(Role.STUDENT)
    await api.post(f"/courses/{course}/enroll-student", world.teacher,
                   json={"student_id": first.id}, expect=201)
    people = (world.student, world.student2, world.student3)
    waiting = [await enroll(api, course, p) for p in people]
    assert [w["status"] for w in waiting] == ["waitlisted"] * 3
    await api.post(f"/courses/{course}/remove-student", world.teacher,
                   json={"student_id": first.id}, expect=200)

    async def states() -> list[str]:
        return [(await enrollment(api, w["id"])).status.value for w in waiting]

    assert await states() == ["pending_payment", "waitlisted", "waitlisted"]
    # Someone else leaving the queue frees no seat: the open offer still stands alone.
    await api.post(f"/enrollments/{waiting[2]['id']}/withdraw", world.student3, expect=200)
    assert await states() == ["pending_payment", "waitlisted", "removed"]
    # The offer is declined: the seat is offered to the next in line.
    await api.post(f"/enrollments/{waiting[0]['id']}/withdraw", world.student, expect=200)
    assert await states() == ["removed", "pending_payment", "removed"]


async def test_refund_ends_access_and_promotes_the_waitlist(api: Api, world: World) -> None:
    course = await paid_course(api, world, capacity=1)
    a = await enroll(api, course, world.student)
    await deliver(api, event("tx-a", a["id"]))
    await api.post(f"/courses/{course}/enroll-student", world.teacher,
                   json={"student_id": world.student2.id}, expect=201)
    out = await deliver(api, event("rf-a", a["id"], kind="refund"))
    assert (out["outcome"], out["enrollment_status"]) == ("refunded", "refunded")
    stored = await enrollment(api, a["id"])
    assert stored.status == "refunded" and not stored.paid
    async with api.database.transaction(write=False) as db:
        b = await db.scalar(select(Enrollment).where(Enrollment.student_id == world.student2.id))
    assert b is not None and b.status == "active"  # seeded students owe nothing
    # A refund replayed changes nothing; a refunded student may enroll (and pay) again.
    before = await counts(api)
    assert (await deliver(api, event("rf-a", a["id"], kind="refund")))["replayed"] is True
    assert await counts(api) == before
    again = await enroll(api, course, world.student)
    assert again["id"] == a["id"] and again["status"] == "waitlisted"


async def test_refund_after_leaving_is_only_recorded(api: Api, world: World) -> None:
    course = await paid_course(api, world)
    a = await enroll(api, course, world.student)
    await deliver(api, event("tx-a", a["id"]))
    await api.post(f"/enrollments/{a['id']}/withdraw", world.student, expect=200)
    out = await deliver(api, event("rf-a", a["id"], kind="refund"))
    assert (out["outcome"], out["enrollment_status"]) == ("recorded", "removed")
    assert not (await enrollment(api, a["id"])).paid


async def test_paid_courses_are_public_when_payment_is_not_required(
    api: Api, world: World
) -> None:
    course = await paid_course(api, world)
    set_settings(api, "courses", payment_required=False)
    made = await enroll(api, course, world.student)
    assert made["status"] == "active"
    set_settings(api, "courses", payment_required=False, auto_enrollment_enabled=False)
    assert (await enroll(api, course, world.student2))["status"] == "requested"


async def test_enrollment_status_counts(api: Api, world: World) -> None:
    course = await paid_course(api, world, capacity=2)
    people = [await api.person(Role.STUDENT) for _ in range(4)]
    made = [await enroll(api, course, p) for p in people]
    for i, m in enumerate(made):
        await deliver(api, event(f"tx-{i}", m["id"]))
    async with api.database.transaction(write=False) as db:
        rows = await db.scalars(select(Enrollment.status).where(Enrollment.course_id == course))
        found = Counter(s.value for s in rows)
    assert found == Counter({"active": 2, "waitlisted": 2})
