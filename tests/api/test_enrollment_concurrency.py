"""Capacity holds under concurrent requests, on SQLite and on PostgreSQL: seat counts are
decided with the course row locked, so no two requests fill the same seat."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json as jsonlib
from collections import Counter

from sqlalchemy import func, select

from control.http.state import STATE
from control.models import Enrollment, EnrollmentEvent, Payment, Role
from support.api_client import Api
from support.world import World


async def _statuses(api: Api, course_id: int) -> Counter[str]:
    async with api.database.transaction(write=False) as db:
        rows = await db.scalars(select(Enrollment.status).where(Enrollment.course_id == course_id))
        return Counter(s.value for s in rows)


async def _course(api: Api, world: World, capacity: int, **fields: object) -> int:
    made = await api.post("/courses/", world.teacher, json={
        "title": "Popular", "category_id": world.category_id, "access_level": "public",
        "capacity": capacity, **fields}, expect=201)
    return int(made["id"])


async def test_200_students_race_for_50_seats(api: Api, world: World) -> None:
    course = await _course(api, world, capacity=50)
    people = [await api.person(Role.STUDENT) for _ in range(200)]

    async def enroll(i: int) -> int:
        response = await api.client.post(f"/courses/{course}/enroll",
                                         headers=people[i].headers)
        await response.read()
        return response.status

    codes = await asyncio.gather(*(enroll(i) for i in range(200)))
    assert Counter(codes) == Counter({201: 200})
    assert await _statuses(api, course) == Counter({"active": 50, "waitlisted": 150})
    async with api.database.transaction(write=False) as db:
        queued = (await db.scalars(select(Enrollment.queued_at).where(
            Enrollment.course_id == course, Enrollment.status == "waitlisted"))).all()
    assert all(q is not None for q in queued)


async def test_one_student_clicking_many_times_gets_one_enrollment(
    api: Api, world: World
) -> None:
    async def enroll() -> int:
        response = await api.client.post(f"/courses/{world.course_id}/enroll",
                                         headers=world.student.headers)
        await response.read()
        return response.status

    codes = await asyncio.gather(*(enroll() for _ in range(20)))
    assert Counter(codes) == Counter({201: 1, 200: 19})
    assert await _statuses(api, world.course_id) == Counter({"active": 1})


async def test_concurrent_leaving_promotes_exactly_as_many(api: Api, world: World) -> None:
    course = await _course(api, world, capacity=10)
    people = [await api.person(Role.STUDENT) for _ in range(30)]
    made = []
    for p in people:
        response = await api.post(f"/courses/{course}/enroll", p, expect=201)
        made.append(response["id"])

    async def withdraw(i: int) -> int:
        response = await api.client.post(f"/enrollments/{made[i]}/withdraw",
                                         headers=people[i].headers)
        await response.read()
        return response.status

    codes = await asyncio.gather(*(withdraw(i) for i in range(5)))
    assert set(codes) == {200}
    assert await _statuses(api, course) == Counter(
        {"active": 10, "waitlisted": 15, "removed": 5})


async def test_duplicate_webhook_deliveries_apply_once(api: Api, world: World) -> None:
    state = api.client.app[STATE]
    state.settings = dataclasses.replace(
        state.settings,
        courses=dataclasses.replace(state.settings.courses, payment_required=True))
    course = await _course(api, world, capacity=5, access_level="paid", price_cents=900,
                           currency="EUR")
    made = await api.post(f"/courses/{course}/enroll", world.student, expect=201)
    raw = jsonlib.dumps({"transaction_id": "tx-dup", "type": "payment",
                         "enrollment_id": made["id"], "amount_cents": 900,
                         "currency": "EUR"}).encode()
    signature = hmac.new(b"test-webhook-secret", raw, hashlib.sha256).hexdigest()

    async def deliver() -> int:
        response = await api.client.post("/payments/webhook", data=raw, headers={
            "X-Academia-Signature": signature, "Content-Type": "application/json"})
        await response.read()
        return response.status

    codes = await asyncio.gather(*(deliver() for _ in range(10)))
    assert set(codes) == {200}
    async with api.database.transaction(write=False) as db:
        payments = await db.scalar(select(func.count(Payment.id)))
        events = await db.scalar(select(func.count(EnrollmentEvent.id)).where(
            EnrollmentEvent.enrollment_id == made["id"]))
    assert (payments, events) == (1, 2)  # enrolled, then activated once
    assert await _statuses(api, course) == Counter({"active": 1})
