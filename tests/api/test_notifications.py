"""Notifications: each event reaches the people concerned once, in the app and by mail
(read from a real SMTP server), through preferences and unsubscribe links; the outbox
worker sends after commit, with several workers never sending anything twice."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import func, select, update

from config.settings import Settings
from control.app import build_app
from control.models import Channel, DeliveryStatus, OutboxMessage, User
from control.models.base import utcnow
from control.notifications.announce import enrolment_kind
from control.notifications.kinds import EventKind
from control.notifications.worker import NotificationWorker
from control.streaming.edge_questions import EdgeQuestions
from support.api_client import Api, Person
from support.payment_webhook import deliver, event, paid_course
from support.smtp_server import Mailbox, smtp_server
from support.world import World


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


def worker_for(settings: Settings, api: Api, box: Mailbox | None = None,
               **changes: Any) -> NotificationWorker:
    given = {"smtp_url": box.url if box else "", **changes}
    notify = dataclasses.replace(settings.notifications, **given)
    return NotificationWorker(dataclasses.replace(settings, notifications=notify),
                              api.database)


async def give_email(api: Api, *people: Person) -> None:
    async with api.database.transaction(write=True) as db:
        for person in people:
            await db.execute(update(User).where(User.id == person.id)
                             .values(email=f"{person.user.username}@school.test"))


def address(person: Person) -> str:
    return f"{person.user.username}@school.test"


async def inbox(api: Api, person: Person) -> dict[str, Any]:
    found: dict[str, Any] = await api.get("/me/notifications?limit=100", person, expect=200)
    return found


async def kinds(api: Api, person: Person) -> list[str]:
    return [n["kind"] for n in reversed((await inbox(api, person))["results"])]


async def drain(worker: NotificationWorker) -> None:
    try:
        while await worker.run_once():
            pass
    finally:
        await worker.close()


async def course(api: Api, world: World, **fields: Any) -> int:
    made = await api.post("/courses/", world.teacher, json={
        "title": "Topology", "category_id": world.category_id, "access_level": "public",
        "capacity": 30, **fields}, expect=201)
    return int(made["id"])


async def test_enrolment_decisions_reach_the_student_in_app_and_by_mail(
    api: Api, world: World, settings: Settings, mailbox: Mailbox
) -> None:
    await give_email(api, world.student, world.student2, world.teacher)
    c = await course(api, world, access_level="private")
    asked = await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    await api.post(f"/enrollments/{asked['id']}/approve", world.teacher, expect=200)
    other = await api.post(f"/courses/{c}/enroll", world.student2, expect=201)
    await api.post(f"/enrollments/{other['id']}/reject", world.teacher, expect=200)
    assert await kinds(api, world.student) == ["enrolment.requested", "enrolment.approved"]
    assert await kinds(api, world.student2) == ["enrolment.requested", "enrolment.rejected"]
    # The teacher has two requests to decide.
    assert await kinds(api, world.teacher) == ["enrolment.requested"] * 2
    assert mailbox.messages == []  # nothing is sent by the request itself
    await drain(worker_for(settings, api, mailbox))
    # Mail is sent concurrently, so it may arrive in either order (as mail may anyway).
    mails = {m["Subject"]: m for m in mailbox.to(address(world.student))}
    assert sorted(mails) == [
        "Your place in Topology was approved", "Your request to join Topology was received"]
    approved = mails["Your place in Topology was approved"]
    text = approved.get_content()
    assert "Course: Topology" in text and f"http://127.0.0.1:8080/learn/{c}" in text
    assert "/unsubscribe?token=" in text and approved["List-Unsubscribe"]
    assert approved["From"] == settings.notifications.mail_from
    assert len(mailbox.to(address(world.student2))) == 2
    assert len(mailbox.to(address(world.teacher))) == 2


async def test_waitlist_promotion_and_removal(api: Api, world: World) -> None:
    c = await course(api, world, capacity=1)
    await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    await api.post(f"/courses/{c}/enroll", world.student2, expect=201)
    await api.post(f"/courses/{c}/remove-student", world.teacher,
                   json={"student_id": world.student.id}, expect=200)
    assert await kinds(api, world.student) == ["enrolment.active", "enrolment.removed"]
    assert await kinds(api, world.student2) == ["enrolment.waitlisted", "enrolment.promoted"]


async def test_payment_confirmed(api: Api, world: World) -> None:
    c = await paid_course(api, world)
    made = await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    await deliver(api, event("tx-n1", made["id"]))
    assert (await kinds(api, world.student))[-1] == "enrolment.payment_confirmed"


def test_every_enrolment_decision_has_a_kind() -> None:
    from control.models import EnrollmentStatus as S

    assert enrolment_kind("enroll", S.ACTIVE) == EventKind.ENROLMENT_ACTIVE
    assert enrolment_kind("enroll", S.PENDING_PAYMENT) == EventKind.ENROLMENT_REQUESTED
    assert enrolment_kind("pay", S.ACTIVE) == EventKind.ENROLMENT_PAYMENT_CONFIRMED
    assert enrolment_kind("approve", S.WAITLISTED) == EventKind.ENROLMENT_WAITLISTED
    assert enrolment_kind("complete", S.COMPLETED) is None


async def test_a_refused_change_announces_nothing(api: Api, world: World) -> None:
    c = await course(api, world, access_level="private")
    asked = await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    await api.post(f"/enrollments/{asked['id']}/reject", world.teacher, expect=200)
    # Rejecting twice is an illegal transition (409): its transaction, outbox included,
    # rolls back.
    await api.post(f"/enrollments/{asked['id']}/reject", world.teacher, expect=409)
    assert await kinds(api, world.student) == ["enrolment.requested", "enrolment.rejected"]


async def test_live_moved_cancelled_and_recording_ready(
    api: Api, world: World, settings: Settings
) -> None:
    c = world.course_id
    await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    start = utcnow() + timedelta(days=2)
    session = await api.post("/sessions/", world.teacher, json={
        "course_id": c, "title": "Rings", "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat()}, expect=201)
    later = start + timedelta(days=1)
    await api.patch(f"/sessions/{session['id']}/", world.teacher, json={
        "start_time": later.isoformat(), "end_time": (later + timedelta(hours=1)).isoformat()},
        expect=200)
    await api.patch(f"/sessions/{session['id']}/", world.teacher, json={"title": "Fields"},
                    expect=200)  # not a move: nobody is told
    await api.post(f"/sessions/{session['id']}/cancel", world.teacher, expect=200)
    live = await api.post(f"/courses/{c}/start-live", world.teacher, expect=200)
    await api.post(f"/courses/{c}/end-live", world.teacher, expect=200)
    questions = EdgeQuestions(api.database, settings.courses, public_url=settings.public_url)
    await questions.recording_ready(live["session_id"])
    await questions.recording_ready(live["session_id"])  # finalised again: told once
    assert await kinds(api, world.student) == [
        "enrolment.active", "session.moved", "session.cancelled", "session.live",
        "session.recording_ready"]
    moved = (await inbox(api, world.student))["results"][3]
    assert f"Starts: {later.replace(microsecond=0).isoformat()}" in moved["body"]
    assert "Was: " in moved["body"] and moved["link"] == f"/learn/{c}"
    # The teacher hears of the recording, not of their own going live.
    assert await kinds(api, world.teacher) == ["session.recording_ready"]


async def test_schedule_changes_reach_the_students(api: Api, world: World) -> None:
    c = world.course_id
    await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    schedule = await api.post("/schedules/", world.teacher, json={
        "course_id": c, "title": "Weekly", "start_time": "2031-03-03T09:00",
        "duration_minutes": 60, "timezone": "Europe/Paris", "rrule": "FREQ=WEEKLY;COUNT=3",
    }, expect=201)
    await api.patch(f"/schedules/{schedule['id']}/", world.teacher,
                    json={"start_time": "2031-03-03T10:00"}, expect=200)
    await api.patch(f"/schedules/{schedule['id']}/", world.teacher,
                    json={"description": "new words"}, expect=200)  # same times
    assert await kinds(api, world.student) == [
        "enrolment.active", "schedule.changed", "schedule.changed"]
    await api.delete(f"/schedules/{schedule['id']}/", world.teacher, expect=204)
    assert (await kinds(api, world.student))[-1] == "schedule.changed"


async def test_reminders_once_even_with_two_workers(
    api: Api, world: World, settings: Settings, mailbox: Mailbox
) -> None:
    await give_email(api, world.student, world.teacher)
    c = world.course_id
    await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    start = utcnow() + timedelta(minutes=40)
    await api.post("/sessions/", world.teacher, json={
        "course_id": c, "title": "Rings", "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=1)).isoformat()}, expect=201)
    one, two = worker_for(settings, api, mailbox), worker_for(settings, api, mailbox)
    try:
        await asyncio.gather(one.run_once(), two.run_once())
        assert "session.reminder" not in await kinds(api, world.student)  # 40 min ahead
        soon = start - timedelta(minutes=settings.notifications.reminder_minutes - 1)
        for _ in range(3):
            await asyncio.gather(one.run_once(soon), two.run_once(soon))
    finally:
        await one.close()
        await two.close()
    assert (await kinds(api, world.student)).count("session.reminder") == 1
    assert (await kinds(api, world.teacher)).count("session.reminder") == 1
    reminders = [m for m in mailbox.messages if "starts soon" in str(m["Subject"])]
    assert sorted(m["To"] for m in reminders) == sorted(
        [address(world.student), address(world.teacher)])
    assert f"Starts: {start.replace(microsecond=0).isoformat()}" in reminders[0].get_content()


async def test_several_workers_send_each_mail_once(
    api: Api, world: World, settings: Settings, mailbox: Mailbox
) -> None:
    students = [await api.person(world.student.user.role, f"many{i}") for i in range(12)]
    await give_email(api, *students)
    c = world.course_id
    for person in students:
        await api.post(f"/courses/{c}/enroll", person, expect=201)
    await api.post(f"/courses/{c}/start-live", world.teacher, expect=200)
    workers = [worker_for(settings, api, mailbox) for _ in range(3)]
    try:
        for _ in range(3):
            await asyncio.gather(*(w.run_once() for w in workers))
    finally:
        for w in workers:
            await w.close()
    ids = [m["Message-ID"] for m in mailbox.messages]
    assert len(ids) == 24 and len(set(ids)) == 24  # 12 enrolments + 12 "live now", once each
    async with api.database.transaction(write=False) as db:
        pending = await db.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status != DeliveryStatus.SENT))
    assert pending == 0


async def test_mail_is_retried_with_backoff_until_the_server_answers(
    api: Api, world: World, settings: Settings, mailbox: Mailbox
) -> None:
    await give_email(api, world.student)
    await api.post(f"/courses/{world.course_id}/enroll", world.student, expect=201)
    dead = worker_for(settings, api, None, smtp_url="smtp://127.0.0.1:9",
                      delivery_retry_seconds=60)
    now = utcnow()
    await dead.run_once(now)
    await dead.run_once(now + timedelta(seconds=30))  # not due yet: nothing tried
    async with api.database.transaction(write=False) as db:
        row = await db.scalar(select(OutboxMessage).where(
            OutboxMessage.channel == Channel.EMAIL))
        assert row is not None
        assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
        assert row.next_attempt_at >= now + timedelta(seconds=60) and row.last_error
    await dead.close()
    await drain(worker_for(settings, api, mailbox))
    assert mailbox.messages == []  # still waiting out its backoff
    alive = worker_for(settings, api, mailbox)
    await alive.run_once(now + timedelta(seconds=61))
    await alive.close()
    assert len(mailbox.to(address(world.student))) == 1


async def test_preferences_and_the_unsubscribe_link(
    api: Api, world: World, settings: Settings, mailbox: Mailbox
) -> None:
    await give_email(api, world.student)
    assert await api.get("/me/notification-preferences", world.student, expect=200) == {
        "email": True, "in_app": True, "email_address": address(world.student)}
    c = await course(api, world, capacity=1)
    await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    await drain(worker_for(settings, api, mailbox))
    text = mailbox.to(address(world.student))[0].get_content()
    token = unquote(re.search(r"/unsubscribe\?token=(\S+)", text)[1])  # type: ignore[index]
    bad = await api.post("/mail/unsubscribe?token=1.email.forged", expect=400)
    assert bad["error"]["code"] == "bad_token"
    # No sign-in: the link alone does it.
    assert await api.post(f"/mail/unsubscribe?token={token}", expect=200) == {
        "unsubscribed": "email"}
    prefs = await api.get("/me/notification-preferences", world.student, expect=200)
    assert prefs["email"] is False and prefs["in_app"] is True
    await api.put("/me/notification-preferences", world.student, json={"in_app": False},
                  expect=200)
    await api.post(f"/courses/{c}/remove-student", world.teacher,
                   json={"student_id": world.student.id}, expect=200)
    await drain(worker_for(settings, api, mailbox))
    assert len(mailbox.to(address(world.student))) == 1  # nothing more by mail
    assert await kinds(api, world.student) == ["enrolment.active"]  # nor in the app


async def test_unread_count_and_marking_read(api: Api, world: World) -> None:
    c = await course(api, world, access_level="private")
    asked = await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    await api.post(f"/enrollments/{asked['id']}/approve", world.teacher, expect=200)
    mine = await inbox(api, world.student)
    assert mine["unread"] == 2
    newest = mine["results"][0]
    # Someone else's notification is not theirs to know of.
    missing = await api.post(f"/me/notifications/{newest['id']}/read", world.student2,
                             expect=404)
    assert missing["error"]["code"] == "not_found"
    read = await api.post(f"/me/notifications/{newest['id']}/read", world.student, expect=200)
    assert read["read_at"] is not None
    assert (await inbox(api, world.student))["unread"] == 1
    unread = await api.get("/me/notifications?unread=true", world.student, expect=200)
    assert [n["kind"] for n in unread["results"]] == ["enrolment.requested"]
    assert await api.post("/me/notifications/read-all", world.student, expect=200) == {
        "marked": 1}
    assert (await inbox(api, world.student))["unread"] == 0
    await api.get("/me/notifications", None, expect=401)


async def test_the_app_sends_in_the_background(
    aiohttp_client: Any, api: Api, world: World, settings: Settings, mailbox: Mailbox
) -> None:
    """The worker started with the app drains the outbox by itself, after the request."""
    notify = dataclasses.replace(settings.notifications, smtp_url=mailbox.url,
                                 outbox_poll_seconds=1)
    client = await aiohttp_client(
        build_app(dataclasses.replace(settings, notifications=notify), api.database))
    await give_email(api, world.student)
    answer = await client.post(f"/courses/{world.course_id}/enroll",
                               headers=world.student.headers)
    assert answer.status == 201
    for _ in range(100):
        if mailbox.to(address(world.student)):
            break
        await asyncio.sleep(0.1)
    [mail] = mailbox.to(address(world.student))
    assert mail["Subject"] == "You are enrolled in Algebra"
