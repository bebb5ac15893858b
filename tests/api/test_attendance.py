"""Attendance on both databases: heartbeats become intervals (merged within two heartbeat
periods, split after a longer gap), the report sums a student's intervals within the live
window, decides who was present, comes as JSON or CSV, and is for staff only."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from control.api import attendance as attendance_api
from control.models import AttendanceInterval, AuditEntry, CourseSession
from control.sessions.attendance import record_presence, total_attendance, union_seconds
from support.api_client import Api, Person
from support.chat_client import connect
from support.frozen_time import EPOCH, Clock, freeze
from support.world import World


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = freeze(monkeypatch)
    monkeypatch.setattr(attendance_api, "utcnow", clock)
    return clock


async def go_live(api: Api, world: World) -> int:
    live = await api.post(f"/courses/{world.course_id}/start-live", world.teacher, expect=200)
    return int(live["session_id"])


async def intervals(api: Api, session_id: int, user_id: int) -> list[tuple[datetime, datetime]]:
    async with api.database.transaction(write=False) as db:
        rows = await db.scalars(
            select(AttendanceInterval)
            .where(AttendanceInterval.session_id == session_id,
                   AttendanceInterval.user_id == user_id)
            .order_by(AttendanceInterval.joined_at)
        )
        return [(r.joined_at, r.last_seen_at) for r in rows]


async def beat(api: Api, clock: Clock, sid: int, who: Person, at_minutes: float) -> None:
    clock.now = EPOCH + timedelta(minutes=at_minutes)
    await api.post(f"/sessions/{sid}/heartbeat", who, expect=204)


def test_union_counts_overlaps_once_and_clips_to_the_window() -> None:
    t = datetime(2031, 1, 1, tzinfo=UTC)

    def m(minutes: float) -> datetime:
        return t + timedelta(minutes=minutes)

    spans = [(m(-5), m(10)), (m(5), m(15)), (m(20), m(25)), (m(50), m(70))]
    assert union_seconds(spans, m(0), m(60)) == (15 + 5 + 10) * 60
    assert union_seconds([], m(0), m(60)) == 0


async def test_heartbeats_merge_within_two_periods_and_split_after(
    api: Api, world: World, clock: Clock
) -> None:
    sid = await go_live(api, world)
    period = api.settings.courses.heartbeat_seconds
    await api.post(f"/courses/{world.course_id}/enroll", world.student, expect=201)
    for seconds in (0, period, 3 * period):  # the last after a gap of exactly 2 periods
        clock.now = EPOCH + timedelta(seconds=seconds)
        await api.post(f"/sessions/{sid}/heartbeat", world.student, expect=204)
    assert await intervals(api, sid, world.student.id) == [
        (EPOCH, EPOCH + timedelta(seconds=3 * period))
    ]
    # A gap longer than two periods: a new interval of the same attendee.
    clock.now = EPOCH + timedelta(seconds=5 * period + 1)
    await api.post(f"/sessions/{sid}/heartbeat", world.student, expect=204)
    assert len(await intervals(api, sid, world.student.id)) == 2
    # An empty JSON body is accepted too.
    await api.post(f"/sessions/{sid}/heartbeat", world.student, json={}, expect=204)


async def test_heartbeat_needs_a_live_session_and_the_right_to_watch(
    api: Api, world: World, clock: Clock
) -> None:
    sid = await go_live(api, world)
    await api.post(f"/courses/{world.course_id}/end-live", world.teacher, expect=200)
    out = await api.post(f"/sessions/{sid}/heartbeat", world.student, expect=409)
    assert out["error"]["code"] == "not_live"
    sid = await go_live(api, world)
    await api.patch(f"/courses/{world.course_id}/", world.teacher,
                    json={"access_level": "private"}, expect=200)
    await api.post(f"/sessions/{sid}/heartbeat", world.student, expect=403)
    await api.post(f"/sessions/{sid}/heartbeat", expect=401)


async def test_the_report_sums_reconnects_decides_presence_and_skips_staff(
    api: Api, world: World, clock: Clock
) -> None:
    sid = await go_live(api, world)  # live from EPOCH
    for minute in range(0, 11):  # 0..10: ten minutes
        await beat(api, clock, sid, world.student, minute)
    for minute in range(20, 26):  # reconnect 20..25: five more
        await beat(api, clock, sid, world.student, minute)
    for half in range(5):  # every 30 s for two minutes
        await beat(api, clock, sid, world.student2, half / 2)
    for minute in range(0, 30):
        await beat(api, clock, sid, world.teacher, minute)

    # Read while live (at 20 min): window 0..20, student has 10 + 0 = 10.0 -> present.
    clock.now = EPOCH + timedelta(minutes=20)
    rows = await api.get(f"/sessions/{sid}/attendance", world.teacher, expect=200)
    assert rows == [
        {"user_id": world.student.id, "username": "student1", "minutes": 10.0, "present": True},
        {"user_id": world.student2.id, "username": "student2", "minutes": 2.0, "present": False},
    ]
    session = await api.get(f"/sessions/{sid}/", world.teacher, expect=200)
    assert session["attendance_count"] == 1

    # Ended at 32 minutes: 15 of 32 is under half; the admin reads it too.
    clock.now = EPOCH + timedelta(minutes=32)
    await api.post(f"/courses/{world.course_id}/end-live", world.teacher, expect=200)
    rows = await api.get(f"/sessions/{sid}/attendance", world.admin, expect=200)
    assert [(r["username"], r["minutes"], r["present"]) for r in rows] == [
        ("student1", 15.0, False), ("student2", 2.0, False),
    ]
    # Later reads clip to the live window, whatever the time now.
    clock.now = EPOCH + timedelta(days=2)
    text = await api.get(f"/sessions/{sid}/attendance?format=csv", world.teacher, expect=200)
    assert list(csv.reader(io.StringIO(text))) == [
        ["user_id", "username", "minutes", "present"],
        [str(world.student.id), "student1", "15.0", "false"],
        [str(world.student2.id), "student2", "2.0", "false"],
    ]
    assert (await api.get(f"/sessions/{sid}/", world.teacher))["attendance_count"] == 0


async def test_total_attendance_stores_the_count(
    api: Api, world: World, clock: Clock
) -> None:
    sid = await go_live(api, world)
    for minute in range(0, 31):
        await beat(api, clock, sid, world.student, minute)
    await beat(api, clock, sid, world.student2, 0)
    async with api.database.transaction(write=True) as db:
        session = await db.get(CourseSession, sid)
        assert session is not None
        assert await total_attendance(db, session, EPOCH + timedelta(minutes=60)) == 1
        assert session.attendance_count == 1
        # 30 of 90 minutes is a third: under the default 50 %, over 30 %.
        assert await total_attendance(db, session, EPOCH + timedelta(minutes=90)) == 0
        assert await total_attendance(
            db, session, EPOCH + timedelta(minutes=90), present_percent=30
        ) == 1


async def test_record_presence_directly(api: Api, world: World, clock: Clock) -> None:
    sid = await go_live(api, world)
    async with api.database.transaction(write=True) as db:
        first = await record_presence(db, sid, world.student.id, EPOCH, 30)
        same = await record_presence(db, sid, world.student.id, EPOCH + timedelta(seconds=60), 30)
        assert same.id == first.id and same.last_seen_at == EPOCH + timedelta(seconds=60)
        new = await record_presence(db, sid, world.student.id, EPOCH + timedelta(seconds=121), 30)
        assert new.id != first.id


async def test_report_is_for_staff_only(api: Api, world: World, clock: Clock) -> None:
    sid = await go_live(api, world)
    await api.get(f"/sessions/{sid}/attendance", world.student, expect=403)
    await api.get(f"/sessions/{sid}/attendance", world.other_teacher, expect=403)
    await api.get(f"/sessions/{sid}/attendance", expect=401)
    await api.get(f"/sessions/{sid}/attendance?format=xml", world.teacher, expect=422)


async def test_an_open_chat_records_presence(api: Api, world: World) -> None:
    live = await api.post(f"/courses/{world.course_id}/start-live", world.teacher, expect=200)
    sid = int(live["session_id"])
    ws = await connect(api, sid, world.student)
    await ws.send_json({"type": "message", "text": "here"})
    assert (await ws.receive_json(timeout=10))["text"] == "here"
    await ws.close()
    # The socket's presence is written by the server; wait for it, within reason.
    for _ in range(200):
        if await intervals(api, sid, world.student.id):
            break
        await asyncio.sleep(0.05)
    assert len(await intervals(api, sid, world.student.id)) == 1


async def test_ending_the_class_totals_its_attendance(
    api: Api, world: World, clock: Clock
) -> None:
    """attendance_count is set when the class ends, with nobody reading the report."""
    sid = await go_live(api, world)
    for minute in range(0, 9):
        await beat(api, clock, sid, world.student, minute)
    await beat(api, clock, sid, world.student2, 0)
    clock.now = EPOCH + timedelta(minutes=10)
    ended = await api.post(f"/courses/{world.course_id}/end-live", world.teacher, expect=200)
    assert ended["ended_session"]["attendance_count"] == 1
    assert (await api.get(f"/sessions/{sid}/", world.teacher))["attendance_count"] == 1
    # The same when a live session is cancelled by hand.
    sid = await go_live(api, world)
    for at in (10.0, 10.5, 11.0):
        await beat(api, clock, sid, world.student2, at)
    await api.post(f"/sessions/{sid}/cancel", world.teacher, expect=200)
    assert (await api.get(f"/sessions/{sid}/", world.teacher))["attendance_count"] == 1


async def test_heartbeats_do_not_fill_the_audit_log(api: Api, world: World, clock: Clock) -> None:
    """One row per viewer every 30 s would drown the log; other writes are still audited."""
    sid = await go_live(api, world)
    for minute in range(3):
        await beat(api, clock, sid, world.student, minute)
    async with api.database.transaction(write=False) as db:
        actions = list(await db.scalars(select(AuditEntry.action)))
    assert "live.start" in actions
    assert "attendance.heartbeat" not in actions
