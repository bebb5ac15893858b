"""Sessions: one-off sessions, lists and filters, the status lifecycle, deleting, roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from control.errors import ApiError
from control.models import (
    Course,
    CourseSession,
    Enrollment,
    EnrollmentStatus,
    Schedule,
    SessionStatus,
)
from control.scheduling.session_generation import generate_sessions
from control.sessions.states import ALLOWED, can_transition, check_transition
from support.api_client import Api, Person
from support.frozen_time import EPOCH, Clock, freeze, iso
from support.snapshot import snapshot
from support.world import World

START = EPOCH + timedelta(days=7)  # Monday 2031-01-13 12:00 UTC


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return freeze(monkeypatch)


def one_off(course_id: int, start: datetime = START, minutes: int = 60, **fields: Any) -> Any:
    return {
        "course_id": course_id,
        "title": "Office hour",
        "description": "Questions welcome",
        "start_time": iso(start),
        "end_time": iso(start + timedelta(minutes=minutes)),
        **fields,
    }


async def make_session(api: Api, who: Person, course_id: int, **kw: Any) -> Any:
    return await api.post("/sessions/", who, json=one_off(course_id, **kw), expect=201)


async def new_course(api: Api, who: Person, world: World, **fields: Any) -> int:
    body = {"title": "Geometry", "category_id": world.category_id, "capacity": 10, **fields}
    return int((await api.post("/courses/", who, json=body, expect=201))["id"])


async def enroll(api: Api, student: Person, course_id: int, status: EnrollmentStatus) -> None:
    async with api.database.transaction(write=True) as db:
        db.add(Enrollment(course_id=course_id, student_id=student.id, status=status))


async def row(api: Api, session_id: int) -> CourseSession | None:
    async with api.database.transaction(write=False) as db:
        return await db.get(CourseSession, session_id)


# --- one-off sessions ----------------------------------------------------------------------


async def test_create_one_off_session(api: Api, world: World, clock: Clock) -> None:
    made = await make_session(api, world.teacher, world.course_id)
    assert made["course_id"] == world.course_id
    assert made["schedule_id"] is None
    assert made["title"] == "Office hour"
    assert made["start_time"] == iso(START)
    assert made["end_time"] == iso(START + timedelta(hours=1))
    assert made["status"] == "scheduled"
    assert made["duration_minutes"] == 60
    again = await api.get(f"/sessions/{made['id']}/", world.student, expect=200)
    assert again == made


async def test_times_with_offsets_are_stored_in_utc(api: Api, world: World, clock: Clock) -> None:
    made = await api.post(
        "/sessions/", world.teacher, expect=201,
        json={**one_off(world.course_id), "start_time": "2031-01-13T13:00:00+01:00",
              "end_time": "2031-01-13T14:00:00+01:00"},
    )
    assert made["start_time"] == "2031-01-13T12:00:00Z"


@pytest.mark.parametrize(
    "fields",
    [
        {"end_time": iso(START - timedelta(minutes=1))},  # end before start
        {"end_time": iso(START)},  # zero length
        {"end_time": iso(START + timedelta(minutes=181))},  # > session_duration_limit
        {"start_time": "2031-01-13T12:00:00"},  # naive: times must carry a zone
        {"title": ""},
        {"status": "live"},  # not a create field
    ],
)
async def test_invalid_session_is_422(
    api: Api, world: World, clock: Clock, fields: dict[str, Any]
) -> None:
    before = await snapshot(api.database)
    await api.post("/sessions/", world.teacher, json={**one_off(world.course_id), **fields},
                   expect=422)
    assert await snapshot(api.database) == before


async def test_duration_limit_allows_exactly_the_limit(
    api: Api, world: World, clock: Clock
) -> None:
    await make_session(api, world.teacher, world.course_id, minutes=180)


async def test_one_off_double_booking_is_refused(api: Api, world: World, clock: Clock) -> None:
    first = await make_session(api, world.teacher, world.course_id)
    other_course = await new_course(api, world.teacher, world)
    before = await snapshot(api.database)
    reply = await api.post(
        "/sessions/", world.teacher, expect=409,
        json=one_off(other_course, START + timedelta(minutes=30)),
    )
    assert reply["error"]["code"] == "schedule_conflict"
    assert reply["error"]["conflict"]["session_id"] == first["id"]
    assert reply["error"]["conflict"]["start"] == iso(START)
    assert await snapshot(api.database) == before
    # Right after is fine; so is another teacher at the same time.
    await make_session(api, world.teacher, other_course, start=START + timedelta(hours=1))
    theirs = await new_course(api, world.other_teacher, world, title="Physics")
    await make_session(api, world.other_teacher, theirs)


async def test_one_off_clashing_with_a_schedule_is_refused(
    api: Api, world: World, clock: Clock
) -> None:
    schedule = await api.post(
        "/schedules/", world.teacher, expect=201,
        json={"course_id": world.course_id, "title": "Lecture", "start_time": "2031-01-13T09:00",
              "end_time": "2031-01-13T10:00", "timezone": "Europe/Paris",
              "rrule": "FREQ=WEEKLY;BYDAY=MO"},
    )
    # Far beyond the generated sessions, still within the conflict horizon.
    monday = datetime(2031, 9, 1, 7, 30, tzinfo=UTC)  # 09:30 Paris (summer)
    reply = await api.post("/sessions/", world.teacher, json=one_off(world.course_id, monday),
                           expect=409)
    assert reply["error"]["conflict"]["schedule_id"] == schedule["id"]
    assert reply["error"]["conflict"]["start"] == "2031-09-01T07:00:00Z"
    # And within the generated ones (the generated session is the booking).
    soon = datetime(2031, 1, 20, 8, 15, tzinfo=UTC)
    reply = await api.post("/sessions/", world.teacher, json=one_off(world.course_id, soon),
                           expect=409)
    assert reply["error"]["conflict"]["schedule_id"] == schedule["id"]
    assert "session_id" in reply["error"]["conflict"]


async def test_moving_a_session_is_checked(api: Api, world: World, clock: Clock) -> None:
    first = await make_session(api, world.teacher, world.course_id)
    second = await make_session(api, world.teacher, world.course_id,
                                start=START + timedelta(hours=2))
    path = f"/sessions/{second['id']}/"
    before = await snapshot(api.database)
    await api.patch(path, world.teacher, expect=409,
                    json={"start_time": iso(START + timedelta(minutes=30)),
                          "end_time": iso(START + timedelta(minutes=90))})
    await api.patch(path, world.teacher, expect=422,
                    json={"end_time": iso(START + timedelta(hours=6))})
    await api.patch(path, world.teacher, expect=422,
                    json={"end_time": iso(START + timedelta(hours=1))})
    assert await snapshot(api.database) == before
    # Moving it within its own old slot does not clash with itself.
    moved = await api.patch(path, world.teacher, expect=200,
                            json={"start_time": iso(START + timedelta(hours=2, minutes=15))})
    assert moved["start_time"] == iso(START + timedelta(hours=2, minutes=15))
    assert first["id"] != second["id"]


# --- lists ---------------------------------------------------------------------------------


async def test_list_filters(api: Api, world: World, clock: Clock) -> None:
    other_course = await new_course(api, world.teacher, world)
    a = await make_session(api, world.teacher, world.course_id)
    b = await make_session(api, world.teacher, world.course_id, start=START + timedelta(days=1))
    c = await make_session(api, world.teacher, other_course, start=START + timedelta(days=2))
    await api.post(f"/sessions/{b['id']}/cancel", world.teacher, expect=200)

    async def ids(query: str, who: Person = world.teacher) -> list[int]:
        page = await api.get(f"/sessions/{query}", who, expect=200)
        return [s["id"] for s in page["results"]]

    assert await ids("") == [a["id"], b["id"], c["id"]]
    assert await ids(f"?course_id={world.course_id}") == [a["id"], b["id"]]
    assert await ids("?status=cancelled") == [b["id"]]
    assert await ids("?status=scheduled") == [a["id"], c["id"]]
    day1 = iso(START + timedelta(days=1))
    assert await ids(f"?from={day1}") == [b["id"], c["id"]]
    assert await ids(f"?to={day1}") == [a["id"]]
    assert await ids(f"?from={day1}&to=2031-01-15T00:00:00") == [b["id"]]
    course_page = await api.get(f"/courses/{other_course}/sessions/", world.student, expect=200)
    assert [s["id"] for s in course_page["results"]] == [c["id"]]
    await api.get("/sessions/?status=nonsense", world.teacher, expect=422)


async def test_list_pages(api: Api, world: World, clock: Clock) -> None:
    made = [
        (await make_session(api, world.teacher, world.course_id,
                            start=START + timedelta(days=i)))["id"]
        for i in range(5)
    ]
    seen: list[int] = []
    url: str | None = "/sessions/?limit=2"
    while url:
        page = await api.get(url, world.student, expect=200)
        seen += [s["id"] for s in page["results"]]
        url = page["next"]
    assert seen == made


async def test_students_see_sessions_of_courses_they_can_see(
    api: Api, world: World, clock: Clock
) -> None:
    hidden = await new_course(api, world.teacher, world, access_level="restricted")
    public = await make_session(api, world.teacher, world.course_id)
    secret = await make_session(api, world.teacher, hidden, start=START + timedelta(days=1))
    listed = await api.get("/sessions/", world.student, expect=200)
    assert [s["id"] for s in listed["results"]] == [public["id"]]
    await api.get(f"/sessions/{secret['id']}/", world.student, expect=404)
    await api.get(f"/sessions/?course_id={hidden}", world.student, expect=404)
    await api.get(f"/courses/{hidden}/sessions/", world.student, expect=404)
    # Once enrolled, the student sees them.
    await enroll(api, world.student, hidden, EnrollmentStatus.ACTIVE)
    listed = await api.get("/sessions/", world.student, expect=200)
    assert [s["id"] for s in listed["results"]] == [public["id"], secret["id"]]
    await api.get(f"/sessions/{secret['id']}/", world.student, expect=200)


async def test_hidden_sessions_are_for_staff_only(api: Api, world: World, clock: Clock) -> None:
    made = await make_session(api, world.teacher, world.course_id)
    await api.patch(f"/sessions/{made['id']}/", world.teacher, json={"is_active": False},
                    expect=200)
    await api.get(f"/sessions/{made['id']}/", world.student, expect=404)
    assert (await api.get("/sessions/", world.student, expect=200))["results"] == []
    assert len((await api.get("/sessions/", world.teacher, expect=200))["results"]) == 1


async def test_student_sessions_need_an_active_enrollment(
    api: Api, world: World, clock: Clock
) -> None:
    made = await make_session(api, world.teacher, world.course_id)
    path = f"/courses/{world.course_id}/student-sessions/"
    await enroll(api, world.student, world.course_id, EnrollmentStatus.ACTIVE)
    await enroll(api, world.student2, world.course_id, EnrollmentStatus.REQUESTED)
    page = await api.get(path, world.student, expect=200)
    assert [s["id"] for s in page["results"]] == [made["id"]]
    hidden = await new_course(api, world.teacher, world, access_level="restricted")
    before = await snapshot(api.database)
    for who in (world.student2, world.student3, world.teacher, world.other_teacher,
                world.admin):
        await api.get(path, who, expect=403)
    await api.get(path, None, expect=401)
    await api.get(f"/courses/{hidden}/student-sessions/", world.student3, expect=404)
    assert await snapshot(api.database) == before


# --- lifecycle -----------------------------------------------------------------------------


def test_transition_table() -> None:
    s = SessionStatus
    legal = {(a, b) for a in s for b in s if can_transition(a, b)}
    assert legal == {
        (s.SCHEDULED, s.LIVE), (s.LIVE, s.ENDED),
        (s.SCHEDULED, s.CANCELLED), (s.LIVE, s.CANCELLED),
    }
    assert set(ALLOWED) == set(s)
    with pytest.raises(ApiError) as caught:
        check_transition(s.ENDED, s.LIVE)
    assert (caught.value.status, caught.value.code) == (409, "illegal_transition")


async def course_is_live(api: Api, course_id: int) -> bool:
    async with api.database.transaction(write=False) as db:
        course = await db.get(Course, course_id)
        assert course is not None
        return course.is_live


async def test_status_changes_follow_the_lifecycle(api: Api, world: World, clock: Clock) -> None:
    made = await make_session(api, world.teacher, world.course_id)
    path = f"/sessions/{made['id']}/"
    live = await api.patch(path, world.teacher, json={"status": "live"}, expect=200)
    assert live["status"] == "live" and live["started_at"] == iso(EPOCH)
    assert await course_is_live(api, world.course_id)
    before = await snapshot(api.database)
    reply = await api.patch(path, world.teacher, json={"status": "scheduled"}, expect=409)
    assert reply["error"]["code"] == "illegal_transition"
    # Moving a live session is refused too.
    await api.patch(path, world.teacher, expect=409,
                    json={"start_time": iso(START + timedelta(days=3))})
    assert await snapshot(api.database) == before
    clock.advance(minutes=50)
    ended = await api.put(
        path, world.teacher, expect=200,
        json={"title": made["title"], "description": made["description"],
              "start_time": made["start_time"], "end_time": made["end_time"],
              "status": "ended"},
    )
    assert ended["status"] == "ended"
    assert ended["ended_at"] == iso(EPOCH + timedelta(minutes=50))
    assert ended["recording_url"] == ""
    assert not await course_is_live(api, world.course_id)
    before = await snapshot(api.database)
    for target in ("live", "scheduled", "cancelled"):
        reply = await api.patch(path, world.teacher, json={"status": target}, expect=409)
        assert reply["error"]["code"] == "illegal_transition"
    await api.post(f"{path}cancel", world.teacher, expect=409)
    assert await snapshot(api.database) == before
    # The same status again is not a transition.
    await api.patch(path, world.teacher, json={"status": "ended", "title": "Done"}, expect=200)


async def test_cancel(api: Api, world: World, clock: Clock) -> None:
    made = await make_session(api, world.teacher, world.course_id)
    cancelled = await api.post(f"/sessions/{made['id']}/cancel", world.teacher, expect=200)
    assert cancelled["status"] == "cancelled"
    reply = await api.post(f"/sessions/{made['id']}/cancel", world.teacher, expect=409)
    assert reply["error"]["code"] == "illegal_transition"
    await api.patch(f"/sessions/{made['id']}/", world.teacher, json={"status": "live"},
                    expect=409)
    # A live session can be cancelled; the course stops being live.
    other = await make_session(api, world.teacher, world.course_id,
                               start=START + timedelta(days=1))
    await api.patch(f"/sessions/{other['id']}/", world.admin, json={"status": "live"},
                    expect=200)
    gone = await api.post(f"/sessions/{other['id']}/cancel", world.admin, expect=200)
    assert gone["status"] == "cancelled" and gone["ended_at"] == iso(EPOCH)
    assert not await course_is_live(api, world.course_id)


async def test_only_one_live_session_per_course(api: Api, world: World, clock: Clock) -> None:
    a = await make_session(api, world.teacher, world.course_id)
    b = await make_session(api, world.teacher, world.course_id, start=START + timedelta(days=1))
    await api.patch(f"/sessions/{a['id']}/", world.teacher, json={"status": "live"}, expect=200)
    reply = await api.patch(f"/sessions/{b['id']}/", world.teacher, json={"status": "live"},
                            expect=409)
    assert reply["error"]["code"] == "already_live"


# --- deleting ------------------------------------------------------------------------------


async def test_delete_keeps_history(api: Api, world: World, clock: Clock) -> None:
    scheduled = await make_session(api, world.teacher, world.course_id)
    live = await make_session(api, world.teacher, world.course_id,
                              start=START + timedelta(days=1))
    ended = await make_session(api, world.teacher, world.course_id,
                               start=START + timedelta(days=2))
    cancelled = await make_session(api, world.teacher, world.course_id,
                                   start=START + timedelta(days=3))
    await api.patch(f"/sessions/{ended['id']}/", world.teacher, json={"status": "live"},
                    expect=200)
    await api.patch(f"/sessions/{ended['id']}/", world.teacher, json={"status": "ended"},
                    expect=200)
    await api.patch(f"/sessions/{live['id']}/", world.teacher, json={"status": "live"},
                    expect=200)
    await api.post(f"/sessions/{cancelled['id']}/cancel", world.teacher, expect=200)
    before = await snapshot(api.database)
    for kept in (live, ended):
        reply = await api.delete(f"/sessions/{kept['id']}/", world.teacher, expect=409)
        assert reply["error"]["code"] == "session_has_history"
    assert await snapshot(api.database) == before
    await api.delete(f"/sessions/{scheduled['id']}/", world.teacher, expect=204)
    await api.delete(f"/sessions/{cancelled['id']}/", world.admin, expect=204)
    assert await row(api, scheduled["id"]) is None
    assert await row(api, cancelled["id"]) is None
    await api.get(f"/sessions/{scheduled['id']}/", world.teacher, expect=404)


async def test_deleting_a_generated_session_skips_its_occurrence(
    api: Api, world: World, clock: Clock
) -> None:
    schedule = await api.post(
        "/schedules/", world.teacher, expect=201,
        json={"course_id": world.course_id, "title": "Lecture", "start_time": "2031-01-13T09:00",
              "end_time": "2031-01-13T10:00", "timezone": "Europe/Paris",
              "rrule": "FREQ=WEEKLY;BYDAY=MO"},
    )
    page = await api.get(f"/sessions/?course_id={world.course_id}", world.teacher, expect=200)
    victim = page["results"][1]
    assert victim["schedule_id"] == schedule["id"]
    await api.delete(f"/sessions/{victim['id']}/", world.teacher, expect=204)
    async with api.database.transaction(write=True) as db:
        row_ = await db.get(Schedule, schedule["id"])
        assert row_ is not None and row_.exdates == ["2031-01-20T09:00:00"]
        await generate_sessions(db, now=EPOCH, horizon=timedelta(days=60))
    async with api.database.transaction(write=False) as db:
        starts = (await db.scalars(select(CourseSession.start_time))).all()
    assert datetime(2031, 1, 20, 8, tzinfo=UTC) not in starts


# --- who may do what -----------------------------------------------------------------------


async def test_forbidden_session_writes_change_nothing(
    api: Api, world: World, clock: Clock
) -> None:
    made = await make_session(api, world.teacher, world.course_id)
    path = f"/sessions/{made['id']}/"
    replace = {"title": "x", "start_time": made["start_time"], "end_time": made["end_time"]}
    before = await snapshot(api.database)
    for who in (world.student, world.other_teacher):
        await api.post("/sessions/", who, json=one_off(world.course_id, START + timedelta(
            days=5)), expect=403)
        await api.put(path, who, json=replace, expect=403)
        await api.patch(path, who, json={"title": "x"}, expect=403)
        await api.patch(path, who, json={"status": "cancelled"}, expect=403)
        await api.post(f"{path}cancel", who, expect=403)
        await api.delete(path, who, expect=403)
    await api.post("/sessions/", None, json=one_off(world.course_id), expect=401)
    await api.put(path, None, json=replace, expect=401)
    await api.patch(path, None, json={"title": "x"}, expect=401)
    await api.post(f"{path}cancel", None, expect=401)
    await api.delete(path, None, expect=401)
    await api.get(path, None, expect=401)
    await api.get("/sessions/", None, expect=401)
    await api.get(f"/courses/{world.course_id}/sessions/", None, expect=401)
    assert await snapshot(api.database) == before


async def test_invisible_course_sessions_are_404_for_outsiders(
    api: Api, world: World, clock: Clock
) -> None:
    hidden = await new_course(api, world.teacher, world, access_level="restricted")
    made = await make_session(api, world.teacher, hidden)
    path = f"/sessions/{made['id']}/"
    replace = {"title": "x", "start_time": made["start_time"], "end_time": made["end_time"]}
    before = await snapshot(api.database)
    await api.post("/sessions/", world.student, json=one_off(hidden), expect=404)
    await api.get(path, world.student, expect=404)
    await api.put(path, world.student, json=replace, expect=404)
    await api.patch(path, world.student, json={"title": "x"}, expect=404)
    await api.post(f"{path}cancel", world.student, expect=404)
    await api.delete(path, world.student, expect=404)
    assert await snapshot(api.database) == before


async def test_teacher_of_one_course_has_no_power_over_another(
    api: Api, world: World, clock: Clock
) -> None:
    theirs = await new_course(api, world.other_teacher, world, title="Physics")
    made = await make_session(api, world.other_teacher, theirs)
    before = await snapshot(api.database)
    await api.post("/sessions/", world.teacher, json=one_off(theirs, START + timedelta(days=3)),
                   expect=403)
    await api.patch(f"/sessions/{made['id']}/", world.teacher, json={"status": "live"},
                    expect=403)
    await api.delete(f"/sessions/{made['id']}/", world.teacher, expect=403)
    assert await snapshot(api.database) == before
    # Admins may.
    await api.patch(f"/sessions/{made['id']}/", world.admin, json={"title": "By admin"},
                    expect=200)


async def test_sessions_cannot_change_course(api: Api, world: World, clock: Clock) -> None:
    made = await make_session(api, world.teacher, world.course_id)
    other_course = await new_course(api, world.teacher, world)
    await api.put(f"/sessions/{made['id']}/", world.teacher, expect=422,
                  json={"course_id": other_course, "title": "x",
                        "start_time": made["start_time"], "end_time": made["end_time"]})
