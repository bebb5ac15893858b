"""Schedules: CRUD, recurrence across DST, teacher double-booking, session generation."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from control.app import build_app
from control.models import CourseSession, Schedule, SessionStatus
from control.scheduling.session_generation import generate_sessions
from support.api_client import Api, Person
from support.frozen_time import EPOCH, Clock, freeze, iso
from support.snapshot import snapshot
from support.world import World

# EPOCH is Monday 2031-01-06 12:00 UTC; the class below is on Mondays from the 13th.
WEEKLY = {
    "title": "Algebra lecture",
    "description": "Weekly lecture",
    "start_time": "2031-01-13T09:00",
    "end_time": "2031-01-13T10:00",
    "timezone": "Europe/Paris",
    "rrule": "FREQ=WEEKLY;BYDAY=MO",
}
HORIZON = timedelta(days=60)  # settings.courses.schedule_horizon_days


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return freeze(monkeypatch)


async def new_course(api: Api, who: Person, world: World, **fields: Any) -> int:
    body = {"title": "Geometry", "category_id": world.category_id, "capacity": 10, **fields}
    return int((await api.post("/courses/", who, json=body, expect=201))["id"])


async def make_schedule(api: Api, who: Person, course_id: int, **fields: Any) -> Any:
    body = {**WEEKLY, "course_id": course_id, **fields}
    return await api.post("/schedules/", who, json=body, expect=201)


async def sessions_of(api: Api, schedule_id: int | None = None) -> list[CourseSession]:
    async with api.database.transaction(write=False) as db:
        stmt = select(CourseSession).order_by(CourseSession.start_time, CourseSession.id)
        if schedule_id is not None:
            stmt = stmt.where(CourseSession.schedule_id == schedule_id)
        return list((await db.scalars(stmt)).all())


def mondays(first: datetime, until: datetime) -> list[datetime]:
    found = []
    while first < until:
        found.append(first)
        first += timedelta(days=7)
    return found


# --- create, read, shape -------------------------------------------------------------------


async def test_create_weekly_schedule_shape_and_sessions(
    api: Api, world: World, clock: Clock
) -> None:
    created = await make_schedule(api, world.teacher, world.course_id)
    assert created["is_recurring"] is True
    assert created["course_id"] == world.course_id
    assert created["title"] == "Algebra lecture"
    assert created["start_time"] == "2031-01-13T09:00:00"
    assert created["end_time"] == "2031-01-13T10:00:00"
    assert created["duration_minutes"] == 60
    assert created["timezone"] == "Europe/Paris"
    assert created["rrule"] == "FREQ=WEEKLY;BYDAY=MO"
    assert created["exdates"] == []
    assert created["is_active"] is True
    upcoming = created["next_occurrences"]
    assert len(upcoming) == 5
    assert upcoming[0] == {
        "start": "2031-01-13T08:00:00Z",  # Paris is UTC+1 in winter
        "end": "2031-01-13T09:00:00Z",
        "start_local": "2031-01-13T09:00:00",
        "end_local": "2031-01-13T10:00:00",
    }
    # Sessions were generated for the horizon, one per Monday, with the schedule's text.
    generated = await sessions_of(api, created["id"])
    expected = mondays(datetime(2031, 1, 13, 8, tzinfo=UTC), EPOCH + HORIZON)
    assert [s.start_time for s in generated] == expected
    assert [s.occurrence_start for s in generated] == expected
    assert all(s.end_time - s.start_time == timedelta(hours=1) for s in generated)
    assert {s.title for s in generated} == {"Algebra lecture"}
    assert {s.status for s in generated} == {SessionStatus.SCHEDULED}
    assert {s.course_id for s in generated} == {world.course_id}


async def test_one_off_schedule_is_not_recurring(api: Api, world: World, clock: Clock) -> None:
    created = await make_schedule(
        api, world.teacher, world.course_id, rrule=None, end_time=None, duration_minutes=90
    )
    assert created["is_recurring"] is False
    assert created["end_time"] == "2031-01-13T10:30:00"
    assert [o["start"] for o in created["next_occurrences"]] == ["2031-01-13T08:00:00Z"]
    generated = await sessions_of(api, created["id"])
    assert len(generated) == 1
    assert generated[0].end_time - generated[0].start_time == timedelta(minutes=90)


async def test_weekly_class_keeps_local_time_across_dst(
    api: Api, world: World, clock: Clock
) -> None:
    created = await make_schedule(api, world.teacher, world.course_id)
    # Generate through the summer with an explicit "now" and horizon.
    async with api.database.transaction(write=True) as db:
        await generate_sessions(db, now=EPOCH, horizon=timedelta(days=200))
    by_day = {s.start_time.date(): s for s in await sessions_of(api, created["id"])}
    january = by_day[datetime(2031, 1, 20).date()]
    july = by_day[datetime(2031, 7, 7).date()]
    assert january.start_time == datetime(2031, 1, 20, 8, tzinfo=UTC)  # 09:00 CET
    assert july.start_time == datetime(2031, 7, 7, 7, tzinfo=UTC)  # 09:00 CEST
    assert july.end_time == datetime(2031, 7, 7, 8, tzinfo=UTC)
    # And the schedule's own view in summer says 09:00 local, 07:00 UTC.
    clock.now = datetime(2031, 7, 1, tzinfo=UTC)
    shown = await api.get(f"/schedules/{created['id']}/", world.teacher, expect=200)
    first = shown["next_occurrences"][0]
    assert first["start"] == "2031-07-07T07:00:00Z"
    assert first["start_local"] == "2031-07-07T09:00:00"


async def test_list_filters_by_course_and_get_one(api: Api, world: World, clock: Clock) -> None:
    other_course = await new_course(api, world.teacher, world)
    a = await make_schedule(api, world.teacher, world.course_id)
    b = await make_schedule(
        api, world.teacher, other_course, start_time="2031-01-14T09:00",
        end_time="2031-01-14T10:00", rrule="FREQ=WEEKLY;BYDAY=TU",
    )
    everything = await api.get("/schedules/", world.teacher, expect=200)
    assert [s["id"] for s in everything["results"]] == [a["id"], b["id"]]
    only_b = await api.get(f"/schedules/?course_id={other_course}", world.teacher, expect=200)
    assert [s["id"] for s in only_b["results"]] == [b["id"]]
    one = await api.get(f"/schedules/{a['id']}/", world.student, expect=200)
    assert one["id"] == a["id"] and one["is_recurring"] is True


async def test_list_pages_with_a_cursor(api: Api, world: World, clock: Clock) -> None:
    ids = []
    for day in (13, 14, 15):
        made = await make_schedule(
            api, world.teacher, world.course_id, rrule=None,
            start_time=f"2031-01-{day}T09:00", end_time=f"2031-01-{day}T10:00",
        )
        ids.append(made["id"])
    first = await api.get("/schedules/?limit=2", world.teacher, expect=200)
    assert [s["id"] for s in first["results"]] == ids[:2]
    second = await api.get(first["next"], world.teacher, expect=200)
    assert [s["id"] for s in second["results"]] == ids[2:]
    assert second["next"] is None


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"timezone": "Mars/Olympus_Mons"},
        {"rrule": "FREQ=SOMETIMES"},
        {"rrule": "BYDAY=MO;NOT_A_PART=1"},
        {"end_time": "2031-01-13T08:00"},  # before the start
        {"end_time": "2031-01-13T09:00"},  # zero length
        {"end_time": "2031-01-13T12:01"},  # 181 minutes > session_duration_limit (180)
        {"end_time": None, "duration_minutes": 181},
        {"end_time": None},  # neither end nor duration
        {"start_time": "2031-01-13T09:00:00Z"},  # must be naive wall-clock time
        {"exdates": ["2031-01-20T09:00:00+01:00"]},
        {"is_recurring": True},  # unknown field
    ],
)
async def test_invalid_schedule_is_422_and_saves_nothing(
    api: Api, world: World, clock: Clock, fields: dict[str, Any]
) -> None:
    before = await snapshot(api.database)
    body = {**WEEKLY, "course_id": world.course_id, **fields}
    await api.post("/schedules/", world.teacher, json=body, expect=422)
    assert await snapshot(api.database) == before


async def test_duration_limit_is_the_setting(api: Api, world: World, clock: Clock) -> None:
    await make_schedule(api, world.teacher, world.course_id, end_time="2031-01-13T12:00")
    reply = await api.post(
        "/schedules/", world.teacher, expect=422,
        json={**WEEKLY, "course_id": world.course_id, "start_time": "2031-01-14T09:00",
              "end_time": None, "duration_minutes": 181, "rrule": None},
    )
    assert "180" in reply["error"]["message"]


async def test_patch_with_bad_rrule_changes_nothing(api: Api, world: World, clock: Clock) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    before = await snapshot(api.database)
    await api.patch(f"/schedules/{made['id']}/", world.teacher, json={"rrule": "FREQ=NEVER"},
                    expect=422)
    await api.patch(f"/schedules/{made['id']}/", world.teacher, json={"timezone": "Nowhere"},
                    expect=422)
    await api.patch(f"/schedules/{made['id']}/", world.teacher,
                    json={"duration_minutes": 500}, expect=422)
    assert await snapshot(api.database) == before


# --- teacher double-booking ----------------------------------------------------------------


async def test_overlapping_schedule_of_same_teacher_is_refused(
    api: Api, world: World, clock: Clock
) -> None:
    first = await make_schedule(api, world.teacher, world.course_id)
    other_course = await new_course(api, world.teacher, world)
    before = await snapshot(api.database)
    reply = await api.post(
        "/schedules/", world.teacher, expect=409,
        json={**WEEKLY, "course_id": other_course, "title": "Geometry",
              "start_time": "2031-02-03T09:30", "end_time": "2031-02-03T10:30"},
    )
    error = reply["error"]
    assert error["code"] == "schedule_conflict"
    assert error["conflict"]["schedule_id"] == first["id"]
    assert error["conflict"]["start"] == "2031-02-03T08:00:00Z"
    assert error["conflict"]["end"] == "2031-02-03T09:00:00Z"
    assert error["occurrence"] == {"start": "2031-02-03T08:30:00Z", "end": "2031-02-03T09:30:00Z"}
    assert "2031-02-03T08:00:00Z" in error["message"]
    assert "2031-02-03T08:30:00Z" in error["message"]
    assert await snapshot(api.database) == before


async def test_admin_creating_for_a_teacher_is_checked_too(
    api: Api, world: World, clock: Clock
) -> None:
    await make_schedule(api, world.teacher, world.course_id)
    other_course = await new_course(api, world.teacher, world)
    # Daily 09:45 clashes with Monday 09:00-10:00 on the first Monday.
    reply = await api.post(
        "/schedules/", world.admin, expect=409,
        json={**WEEKLY, "course_id": other_course, "rrule": "FREQ=DAILY",
              "start_time": "2031-01-07T09:45", "end_time": "2031-01-07T10:15"},
    )
    assert reply["error"]["conflict"]["start"] == "2031-01-13T08:00:00Z"


async def test_clash_with_a_one_off_session(api: Api, world: World, clock: Clock) -> None:
    session = await api.post(
        "/sessions/", world.teacher, expect=201,
        json={"course_id": world.course_id, "title": "Exam",
              "start_time": "2031-03-17T08:30:00Z", "end_time": "2031-03-17T09:30:00Z"},
    )
    before = await snapshot(api.database)
    reply = await make_schedule_raw(api, world.teacher, world.course_id, expect=409)
    assert reply["error"]["code"] == "schedule_conflict"
    assert reply["error"]["conflict"]["session_id"] == session["id"]
    assert "schedule_id" not in reply["error"]["conflict"]
    assert reply["error"]["conflict"]["start"] == "2031-03-17T08:30:00Z"
    assert await snapshot(api.database) == before
    # Once the exam is cancelled, the slot is free.
    await api.post(f"/sessions/{session['id']}/cancel", world.teacher, expect=200)
    await make_schedule(api, world.teacher, world.course_id)


async def make_schedule_raw(
    api: Api, who: Person, course_id: int, *, expect: int, **fields: Any
) -> Any:
    return await api.post(
        "/schedules/", who, json={**WEEKLY, "course_id": course_id, **fields}, expect=expect
    )


async def test_no_clash_cases(api: Api, world: World, clock: Clock) -> None:
    await make_schedule(api, world.teacher, world.course_id)
    other_course = await new_course(api, world.teacher, world)
    # Back to back is not a clash (half-open intervals).
    await make_schedule(api, world.teacher, other_course, start_time="2031-01-13T10:00",
                        end_time="2031-01-13T11:00")
    # Another teacher may teach at the same time.
    theirs = await new_course(api, world.other_teacher, world, title="Physics")
    await make_schedule(api, world.other_teacher, theirs)
    # An inactive schedule does not book the teacher.
    await make_schedule(api, world.teacher, other_course, start_time="2031-01-13T09:30",
                        end_time="2031-01-13T10:00", is_active=False)
    # A clash beyond conflict_horizon_days (365) is not looked for.
    far = await make_schedule(api, world.teacher, other_course, rrule=None,
                              start_time="2032-02-02T09:00", end_time="2032-02-02T10:00")
    assert far["is_recurring"] is False


async def test_clash_inside_the_horizon_is_found_months_ahead(
    api: Api, world: World, clock: Clock
) -> None:
    # A one-off class in November clashes with the weekly Monday class (past the
    # 60-day session horizon, inside the 365-day conflict horizon).
    await make_schedule(api, world.teacher, world.course_id)
    reply = await make_schedule_raw(
        api, world.teacher, world.course_id, expect=409, rrule=None,
        start_time="2031-11-03T09:15", end_time="2031-11-03T09:45",
    )
    assert reply["error"]["conflict"]["start"] == "2031-11-03T08:00:00Z"


async def test_moving_into_a_clash_is_refused(api: Api, world: World, clock: Clock) -> None:
    await make_schedule(api, world.teacher, world.course_id)
    other_course = await new_course(api, world.teacher, world)
    tuesday = await make_schedule(
        api, world.teacher, other_course, start_time="2031-01-14T09:00",
        end_time="2031-01-14T10:00", rrule="FREQ=WEEKLY;BYDAY=TU",
    )
    before = await snapshot(api.database)
    path = f"/schedules/{tuesday['id']}/"
    reply = await api.patch(path, world.teacher, expect=409,
                            json={"rrule": "FREQ=WEEKLY;BYDAY=MO,TU"})
    assert reply["error"]["code"] == "schedule_conflict"
    await api.put(path, world.teacher, expect=409,
                  json={**WEEKLY, "course_id": other_course, "start_time": "2031-01-20T09:59",
                        "end_time": "2031-01-20T10:59"})
    assert await snapshot(api.database) == before
    # Editing only the title of a schedule is not a move: no check, and it works.
    await api.patch(path, world.teacher, json={"title": "Renamed"}, expect=200)


async def test_schedule_does_not_clash_with_itself(api: Api, world: World, clock: Clock) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    moved = await api.patch(
        f"/schedules/{made['id']}/", world.teacher, expect=200,
        json={"start_time": "2031-01-13T09:30", "end_time": "2031-01-13T10:30"},
    )
    assert moved["start_time"] == "2031-01-13T09:30:00"


# --- generation ----------------------------------------------------------------------------


async def test_generation_is_idempotent_and_follows_the_clock(
    api: Api, world: World, clock: Clock
) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    count = len(await sessions_of(api, made["id"]))
    async with api.database.transaction(write=True) as db:
        report = await generate_sessions(db, now=EPOCH, horizon=HORIZON)
    async with api.database.transaction(write=True) as db:
        again = await generate_sessions(db, now=EPOCH, horizon=HORIZON)
    assert (report.created, report.removed, again.created, again.removed) == (0, 0, 0, 0)
    assert len(await sessions_of(api, made["id"])) == count
    # A week later the horizon has moved by one Monday.
    async with api.database.transaction(write=True) as db:
        later = await generate_sessions(db, now=EPOCH + timedelta(days=7), horizon=HORIZON)
    assert later.created == 1
    starts = [s.occurrence_start for s in await sessions_of(api, made["id"])]
    assert len(starts) == len(set(starts)) == count + 1


async def test_generation_skips_inactive_schedules_and_courses(
    api: Api, world: World, clock: Clock
) -> None:
    made = await make_schedule(api, world.teacher, world.course_id, is_active=False)
    assert await sessions_of(api, made["id"]) == []
    await api.patch(f"/schedules/{made['id']}/", world.teacher, json={"is_active": True},
                    expect=200)
    assert len(await sessions_of(api, made["id"])) > 0
    await api.delete(f"/courses/{world.course_id}/", world.teacher, expect=204)
    async with api.database.transaction(write=True) as db:
        report = await generate_sessions(db, now=EPOCH + timedelta(days=30), horizon=HORIZON)
    assert report.created == 0


async def mark(api: Api, session_id: int, status: SessionStatus, **fields: Any) -> None:
    async with api.database.transaction(write=True) as db:
        row = await db.get(CourseSession, session_id)
        assert row is not None
        row.status = status
        for name, value in fields.items():
            setattr(row, name, value)


async def test_editing_keeps_past_live_and_ended_sessions(
    api: Api, world: World, clock: Clock
) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    first, second, third, *rest = await sessions_of(api, made["id"])
    # Three weeks on: the first class ended, the second never happened (still
    # "scheduled" but in the past), the third is live right now.
    await mark(api, first.id, SessionStatus.ENDED)
    await mark(api, third.id, SessionStatus.LIVE)
    clock.now = third.start_time + timedelta(minutes=10)
    # The class moves to Wednesdays 14:00.
    await api.patch(
        f"/schedules/{made['id']}/", world.teacher, expect=200,
        json={"rrule": "FREQ=WEEKLY;BYDAY=WE", "start_time": "2031-01-15T14:00",
              "end_time": "2031-01-15T15:00"},
    )
    after = {s.id: s for s in await sessions_of(api, made["id"])}
    assert after[first.id].status == SessionStatus.ENDED
    assert after[second.id].status == SessionStatus.SCHEDULED  # past: left alone
    assert after[third.id].status == SessionStatus.LIVE
    assert after[third.id].start_time == third.start_time
    assert not any(s.id in after for s in rest)  # future Mondays are gone
    new = [s for s in after.values() if s.id not in (first.id, second.id, third.id)]
    assert new and all(s.start_time.weekday() == 2 for s in new)  # Wednesdays
    assert all(s.start_time > clock.now for s in new)
    assert {s.start_time.hour for s in new} == {13}  # 14:00 Paris = 13:00 UTC


async def test_editing_title_and_duration_updates_future_sessions(
    api: Api, world: World, clock: Clock
) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    ids = [s.id for s in await sessions_of(api, made["id"])]
    await api.patch(f"/schedules/{made['id']}/", world.teacher, expect=200,
                    json={"title": "New title", "duration_minutes": 90})
    after = await sessions_of(api, made["id"])
    assert [s.id for s in after] == ids  # same rows, updated in place
    assert {s.title for s in after} == {"New title"}
    assert {s.end_time - s.start_time for s in after} == {timedelta(minutes=90)}


async def test_exdate_removes_that_future_session(api: Api, world: World, clock: Clock) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    before = await sessions_of(api, made["id"])
    skipped = datetime(2031, 1, 27, 8, tzinfo=UTC)
    assert skipped in [s.start_time for s in before]
    updated = await api.patch(f"/schedules/{made['id']}/", world.teacher, expect=200,
                              json={"exdates": ["2031-01-27T09:00"]})
    assert updated["exdates"] == ["2031-01-27T09:00:00"]
    assert iso(skipped) not in [o["start"] for o in updated["next_occurrences"]]
    after = await sessions_of(api, made["id"])
    assert [s.start_time for s in after] == [s.start_time for s in before if s.start_time
                                              != skipped]
    # Removing the exdate brings the class back.
    await api.patch(f"/schedules/{made['id']}/", world.teacher, json={"exdates": []},
                    expect=200)
    assert skipped in [s.start_time for s in await sessions_of(api, made["id"])]


async def test_deactivate_and_delete_remove_only_future_scheduled_sessions(
    api: Api, world: World, clock: Clock
) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    first, second, *_ = await sessions_of(api, made["id"])
    await mark(api, first.id, SessionStatus.ENDED)
    clock.now = second.start_time + timedelta(days=1)  # `second` is in the past now
    await api.patch(f"/schedules/{made['id']}/", world.teacher, json={"is_active": False},
                    expect=200)
    assert [s.id for s in await sessions_of(api, made["id"])] == [first.id, second.id]
    await api.patch(f"/schedules/{made['id']}/", world.teacher, json={"is_active": True},
                    expect=200)
    assert len(await sessions_of(api, made["id"])) > 2
    await api.delete(f"/schedules/{made['id']}/", world.teacher, expect=204)
    await api.get(f"/schedules/{made['id']}/", world.teacher, expect=404)
    kept = await sessions_of(api)
    assert [s.id for s in kept] == [first.id, second.id]
    assert {s.schedule_id for s in kept} == {None}


async def test_moving_a_schedule_to_another_course(api: Api, world: World, clock: Clock) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    other_course = await new_course(api, world.teacher, world)
    moved = await api.patch(f"/schedules/{made['id']}/", world.teacher,
                            json={"course_id": other_course}, expect=200)
    assert moved["course_id"] == other_course
    assert {s.course_id for s in await sessions_of(api, made["id"])} == {other_course}
    # ...but not to a course the teacher does not teach.
    theirs = await new_course(api, world.other_teacher, world, title="Physics")
    before = await snapshot(api.database)
    await api.patch(f"/schedules/{made['id']}/", world.teacher, json={"course_id": theirs},
                    expect=403)
    assert await snapshot(api.database) == before


# --- who may do what -----------------------------------------------------------------------


async def test_forbidden_writes_change_nothing(api: Api, world: World, clock: Clock) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    path = f"/schedules/{made['id']}/"
    full = {**WEEKLY, "course_id": world.course_id, "title": "Hijacked"}
    before = await snapshot(api.database)
    for who in (world.student, world.other_teacher):
        await api.post("/schedules/", who, json=full, expect=403)
        await api.put(path, who, json=full, expect=403)
        await api.patch(path, who, json={"title": "Hijacked"}, expect=403)
        await api.delete(path, who, expect=403)
    for call in (api.get, api.delete):
        await call(path, None, expect=401)
    await api.post("/schedules/", None, json=full, expect=401)
    await api.patch(path, None, json={"title": "x"}, expect=401)
    await api.put(path, None, json=full, expect=401)
    await api.get("/schedules/", None, expect=401)
    assert await snapshot(api.database) == before


async def test_admin_may_write_any_schedule(api: Api, world: World, clock: Clock) -> None:
    made = await make_schedule(api, world.admin, world.course_id)
    path = f"/schedules/{made['id']}/"
    await api.patch(path, world.admin, json={"title": "By admin"}, expect=200)
    await api.put(path, world.admin, json={**WEEKLY, "course_id": world.course_id},
                  expect=200)
    await api.delete(path, world.admin, expect=204)


async def test_restricted_course_schedules_are_invisible(
    api: Api, world: World, clock: Clock
) -> None:
    hidden = await new_course(api, world.teacher, world, access_level="restricted")
    made = await make_schedule(api, world.teacher, hidden)
    path = f"/schedules/{made['id']}/"
    full = {**WEEKLY, "course_id": hidden}
    before = await snapshot(api.database)
    await api.get(path, world.student, expect=404)
    await api.get(f"/schedules/?course_id={hidden}", world.student, expect=404)
    listed = await api.get("/schedules/", world.student, expect=200)
    assert made["id"] not in [s["id"] for s in listed["results"]]
    await api.post("/schedules/", world.student, json=full, expect=404)
    await api.put(path, world.student, json=full, expect=404)
    await api.patch(path, world.student, json={"title": "x"}, expect=404)
    await api.delete(path, world.student, expect=404)
    assert await snapshot(api.database) == before
    # Staff see it.
    await api.get(path, world.admin, expect=200)
    await api.get(path, world.teacher, expect=200)


async def test_students_see_only_active_schedules(api: Api, world: World, clock: Clock) -> None:
    active = await make_schedule(api, world.teacher, world.course_id)
    inactive = await make_schedule(api, world.teacher, world.course_id, is_active=False,
                                   start_time="2031-01-13T11:00", end_time="2031-01-13T12:00")
    listed = await api.get(f"/schedules/?course_id={world.course_id}", world.student,
                           expect=200)
    assert [s["id"] for s in listed["results"]] == [active["id"]]
    await api.get(f"/schedules/{inactive['id']}/", world.student, expect=404)
    staff = await api.get(f"/schedules/?course_id={world.course_id}", world.teacher,
                          expect=200)
    assert [s["id"] for s in staff["results"]] == [active["id"], inactive["id"]]


async def test_schedule_rows_are_what_the_api_says(api: Api, world: World, clock: Clock) -> None:
    made = await make_schedule(api, world.teacher, world.course_id,
                               exdates=["2031-01-20T09:00"])
    async with api.database.transaction(write=False) as db:
        row = await db.get(Schedule, made["id"])
    assert row is not None
    assert row.start_local == datetime(2031, 1, 13, 9, 0)
    assert row.duration_minutes == 60
    assert row.exdates == ["2031-01-20T09:00:00"]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        # 25-hour classes every day would overlap each other.
        ({"rrule": "FREQ=DAILY", "end_time": "2031-01-14T10:00"}, "overlapping_occurrences"),
        # Every day for 6000 days is more classes than anyone teaches.
        ({"rrule": "FREQ=DAILY"}, "too_many_occurrences"),
    ],
)
async def test_absurd_rules_are_422(
    aiohttp_client: Any, api: Api, world: World, clock: Clock, fields: dict[str, Any], code: str
) -> None:
    # Classes repeat at most daily (FREQ=HOURLY, which this test used, is now refused), so
    # these need settings that allow day-long classes and look 6000 days ahead.
    roomy = dataclasses.replace(
        api.settings,
        courses=dataclasses.replace(
            api.settings.courses, session_duration_limit=25 * 60, conflict_horizon_days=6000
        ),
    )
    wide = Api(await aiohttp_client(build_app(roomy, api.database)), api.database, roomy)
    before = await snapshot(api.database)
    reply = await make_schedule_raw(wide, world.teacher, world.course_id, expect=422, **fields)
    assert reply["error"]["code"] == code
    assert await snapshot(api.database) == before


@pytest.mark.parametrize(
    ("rrule", "part"),
    [
        ("FREQ=HOURLY", "FREQ=HOURLY"),
        ("FREQ=MINUTELY;INTERVAL=30", "FREQ=MINUTELY"),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", "BYSETPOS"),
        ("FREQ=DAILY;BYHOUR=9,14", "BYHOUR"),
        ("FREQ=YEARLY;BYWEEKNO=20", "BYWEEKNO"),
        ("FREQ=YEARLY;BYYEARDAY=100", "BYYEARDAY"),
    ],
)
async def test_rules_classes_do_not_need_are_422_naming_the_part(
    api: Api, world: World, clock: Clock, rrule: str, part: str
) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    before = await snapshot(api.database)
    reply = await make_schedule_raw(api, world.teacher, world.course_id, expect=422, rrule=rrule)
    assert reply["error"]["code"] == "invalid_recurrence"
    assert f"{part} is not supported" in reply["error"]["message"]
    reply = await api.patch(f"/schedules/{made['id']}/", world.teacher, json={"rrule": rrule},
                            expect=422)
    assert reply["error"]["code"] == "invalid_recurrence"
    assert await snapshot(api.database) == before


async def test_a_rule_that_never_matches_is_422(api: Api, world: World, clock: Clock) -> None:
    # Every 7 days from a Monday never lands on a Tuesday.
    before = await snapshot(api.database)
    reply = await make_schedule_raw(api, world.teacher, world.course_id, expect=422,
                                    rrule="FREQ=DAILY;INTERVAL=7;BYDAY=TU")
    assert reply["error"]["code"] == "invalid_recurrence"
    assert "never matches" in reply["error"]["message"]
    assert await snapshot(api.database) == before


async def test_database_refuses_a_second_session_for_one_occurrence(
    api: Api, world: World, clock: Clock
) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    existing = (await sessions_of(api, made["id"]))[0]
    with pytest.raises(IntegrityError):
        async with api.database.transaction(write=True) as db:
            db.add(CourseSession(
                course_id=world.course_id, schedule_id=made["id"],
                occurrence_start=existing.occurrence_start, title="twin",
                start_time=existing.start_time, end_time=existing.end_time,
            ))
            await db.flush()


async def test_concurrent_double_booking_lets_one_through(
    api: Api, world: World, clock: Clock
) -> None:
    courses = [world.course_id, await new_course(api, world.teacher, world)]
    replies = await asyncio.gather(*(
        api.call("POST", "/schedules/", world.teacher, json={**WEEKLY, "course_id": c})
        for c in courses
    ))
    codes = sorted("created" if "id" in r else r["error"]["code"] for r in replies)
    assert codes == ["created", "schedule_conflict"]
    async with api.database.transaction(write=False) as db:
        assert len((await db.scalars(select(Schedule))).all()) == 1


async def test_a_cancelled_class_frees_its_slot(api: Api, world: World, clock: Clock) -> None:
    made = await make_schedule(api, world.teacher, world.course_id)
    first = (await sessions_of(api, made["id"]))[0]
    other_course = await new_course(api, world.teacher, world)
    exam = {"course_id": other_course, "title": "Exam", "start_time": iso(first.start_time),
            "end_time": iso(first.end_time)}
    reply = await api.post("/sessions/", world.teacher, json=exam, expect=409)
    assert reply["error"]["conflict"] == {
        "schedule_id": made["id"], "session_id": first.id, "start": iso(first.start_time),
        "end": iso(first.end_time), "title": "Algebra lecture",
    }
    await api.post(f"/sessions/{first.id}/cancel", world.teacher, expect=200)
    await api.post("/sessions/", world.teacher, json=exam, expect=201)
    # The schedule's other Mondays are still booked.
    next_week = {**exam, "start_time": iso(first.start_time + timedelta(days=7)),
                 "end_time": iso(first.end_time + timedelta(days=7))}
    await api.post("/sessions/", world.teacher, json=next_week, expect=409)


async def test_periodic_generation_cleans_up_and_survives_a_broken_schedule(
    api: Api, world: World, clock: Clock
) -> None:
    other_course = await new_course(api, world.teacher, world)
    switched_off = await make_schedule(api, world.teacher, world.course_id)
    broken = await make_schedule(api, world.teacher, other_course, start_time="2031-01-14T09:00",
                                 end_time="2031-01-14T10:00", rrule="FREQ=WEEKLY;BYDAY=TU")
    fine = await make_schedule(api, world.teacher, other_course, start_time="2031-01-15T09:00",
                               end_time="2031-01-15T10:00", rrule="FREQ=WEEKLY;BYDAY=WE")
    async with api.database.transaction(write=True) as db:
        # Changed behind the API's back: one switched off, one with a zone that is gone.
        for schedule_id, field, value in ((switched_off["id"], "is_active", False),
                                          (broken["id"], "timezone", "Gone/Away")):
            row = await db.get(Schedule, schedule_id)
            assert row is not None
            setattr(row, field, value)
    fine_before = len(await sessions_of(api, fine["id"]))
    async with api.database.transaction(write=True) as db:
        report = await generate_sessions(db, now=EPOCH + timedelta(days=14), horizon=HORIZON)
    assert report.removed > 0
    assert report.failed_schedule_ids == [broken["id"]]
    left = await sessions_of(api, switched_off["id"])  # only the two past Mondays
    assert [s.start_time.day for s in left] == [13, 20]
    assert len(await sessions_of(api, fine["id"])) == fine_before + 2
