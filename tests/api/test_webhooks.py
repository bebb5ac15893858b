"""Webhooks: an admin registers an endpoint; deliveries are signed as Standard Webhooks
says (verified by the reference library on a real HTTP receiver), retried with backoff,
logged, and a dead endpoint is disabled and reported; no internal address is reached; the
event kinds to subscribe to are listed for admins."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from config.settings import Settings
from control.models.base import utcnow
from control.notifications.address_guard import allowed_networks
from control.notifications.webhooks import GuardedResolver
from control.notifications.worker import NotificationWorker
from support.api_client import Api
from support.payment_webhook import set_settings
from support.webhook_receiver import Receiver, webhook_receiver
from support.world import World

LOOPBACK = "127.0.0.1/32"


@pytest.fixture
async def receiver(api: Api) -> AsyncIterator[Receiver]:
    # The admin setting that lets webhooks reach this machine (the receiver is on it).
    set_settings(api, "notifications", webhook_allowed_networks=LOOPBACK)
    async with webhook_receiver() as got:
        yield got


def worker_for(settings: Settings, api: Api, **changes: Any) -> NotificationWorker:
    notify = dataclasses.replace(settings.notifications, webhook_allowed_networks=LOOPBACK,
                                 **changes)
    return NotificationWorker(dataclasses.replace(settings, notifications=notify),
                              api.database)


async def register(api: Api, world: World, receiver: Receiver, events: list[str]) -> int:
    made = await api.post("/webhooks", world.admin, json={"url": receiver.url,
                                                          "events": events}, expect=201)
    assert made["secret"].startswith("whsec_")
    receiver.secret = made["secret"]
    listed = await api.get("/webhooks", world.admin, expect=200)
    assert "secret" not in listed["results"][0]  # shown once, at creation
    return int(made["id"])


async def test_signed_delivery_with_a_log(
    api: Api, world: World, settings: Settings, receiver: Receiver
) -> None:
    hook = await register(api, world, receiver, ["enrolment.active", "session.live"])
    await api.post(f"/courses/{world.course_id}/enroll", world.student, expect=201)
    await api.post(f"/courses/{world.course_id}/invites", world.teacher, json={},
                   expect=201)  # not an event
    worker = worker_for(settings, api)
    await worker.run_once()
    await worker.run_once()
    await worker.close()
    assert receiver.bad_signatures == 0
    assert [p["type"] for p in receiver.received] == ["enrolment.active"]
    data = receiver.received[0]["data"]
    assert data["course_title"] == "Algebra" and data["student_id"] == world.student.id
    log = await api.get(f"/webhooks/{hook}/deliveries", world.admin, expect=200)
    [entry] = log["results"]
    assert entry["status"] == "sent" and entry["event"] == "enrolment.active"
    assert entry["message_id"] == receiver.ids[0]
    assert [a["status_code"] for a in entry["attempts"]] == [200]


async def test_retries_with_backoff_then_the_dead_endpoint_is_disabled_and_reported(
    api: Api, world: World, settings: Settings, receiver: Receiver
) -> None:
    hook = await register(api, world, receiver, ["*"])
    receiver.status = 500
    c = world.course_id
    await api.post(f"/courses/{c}/enroll", world.student, expect=201)
    await api.post(f"/courses/{c}/enroll", world.student2, expect=201)
    worker = worker_for(settings, api, delivery_retry_seconds=10, webhook_failure_limit=5,
                        delivery_max_attempts=3)
    now = utcnow()
    try:
        await worker.run_once(now)  # both fail: 2 in a row
        await worker.run_once(now + timedelta(seconds=5))  # backoff: not due yet
        assert len(receiver.received) == 2
        await worker.run_once(now + timedelta(seconds=10))  # second tries: 4
        log = await api.get(f"/webhooks/{hook}/deliveries", world.admin, expect=200)
        assert [len(e["attempts"]) for e in log["results"]] == [2, 2]
        assert all(e["status"] == "pending" for e in log["results"])
        # The third try waits twice as long (20 s after the second).
        await worker.run_once(now + timedelta(seconds=25))
        assert len(receiver.received) == 4
        await worker.run_once(now + timedelta(seconds=31))  # the fifth failure in a row
    finally:
        await worker.close()
    [endpoint] = (await api.get("/webhooks", world.admin, expect=200))["results"]
    assert endpoint["enabled"] is False and "HTTP 500" in endpoint["disabled_reason"]
    log = await api.get(f"/webhooks/{hook}/deliveries", world.admin, expect=200)
    assert sorted(e["status"] for e in log["results"]) == ["failed", "failed"]
    assert all(a["status_code"] == 500 for e in log["results"] for a in e["attempts"])
    # Reported to the admins in the app.
    mine = await api.get("/me/notifications", world.admin, expect=200)
    assert mine["results"][0]["kind"] == "webhook.disabled"
    assert receiver.url in mine["results"][0]["body"]
    # A disabled endpoint is sent nothing new until an admin enables it again.
    await api.post(f"/courses/{c}/enroll", world.student3, expect=201)
    assert len((await api.get(f"/webhooks/{hook}/deliveries", world.admin))["results"]) == 2
    again = await api.patch(f"/webhooks/{hook}", world.admin, json={"enabled": True},
                            expect=200)
    assert again["enabled"] is True and again["consecutive_failures"] == 0


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/",
    "http://192.168.0.10/", "http://169.254.169.254/latest/meta-data", "http://[::1]/",
    "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "ftp://hooks.example.com/",
    "http://user:pw@hooks.example.com/",
])
async def test_internal_targets_are_refused(api: Api, world: World, url: str) -> None:
    out = await api.post("/webhooks", world.admin, json={"url": url, "events": ["*"]},
                         expect=422)
    assert out["error"]["code"] == "url_refused"


async def test_a_name_resolving_inside_is_refused_at_delivery() -> None:
    resolver = GuardedResolver(allowed_networks(""))
    try:
        with pytest.raises(OSError, match="internal address"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
    allowed = GuardedResolver(allowed_networks("127.0.0.0/8,::1/128"))
    try:
        assert await allowed.resolve("localhost", 80)
    finally:
        await allowed.close()


async def test_unknown_event_kinds_are_refused(api: Api, world: World) -> None:
    out = await api.post("/webhooks", world.admin, json={
        "url": "https://hooks.example.com/x", "events": ["enrolment.exploded"]}, expect=422)
    assert set(out) == {"error"} and "unknown event kinds" in out["error"]["message"]


async def test_the_event_kinds_to_subscribe_to_are_listed_for_admins(
    api: Api, world: World
) -> None:
    kinds = await api.get("/webhooks/events", world.admin, expect=200)
    assert kinds["all"] == "*"
    assert "enrolment.active" in kinds["results"] and "session.live" in kinds["results"]
    assert "webhook.disabled" not in kinds["results"]  # the admins' own report
    assert kinds["results"] == sorted(kinds["results"])
    # Every listed kind is one an endpoint may subscribe to.
    await api.post("/webhooks", world.admin, expect=201, json={
        "url": "https://hooks.example.com/all", "events": kinds["results"]})
    await api.get("/webhooks/events", world.teacher, expect=403)
    await api.get("/webhooks/events", expect=401)
