"""Calendars on both databases: a person's private feed (made on first ask, rotated,
revoked; the secret alone opens it), what it holds for a student and a teacher, parsed
back with the `icalendar` library: a recurring schedule as RRULE in its time zone with a
VTIMEZONE and EXDATEs, whose expansion (dateutil) gives exactly the generated sessions'
times across a DST change; a cancelled class as STATUS:CANCELLED, a moved one at its new
time, one-off sessions, links to the course page, stable UIDs; and a public course's
feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from icalendar import Calendar, Event
from sqlalchemy import select

from control.models import CourseSession
from control.scheduling.session_generation import generate_sessions
from support.api_client import Api, Person
from support.world import World

# The schedule's classes are in 2031, generated as if it were 1 March 2031: the clocks in
# Paris go forward on 30 March, so the weekly 09:00 class moves from 08:00Z to 07:00Z.
NOW = datetime(2031, 3, 1, tzinfo=UTC)


async def feed_path(api: Api, who: Person) -> str:
    mine = await api.get("/me/calendar", who, expect=200)
    url = urlsplit(mine["url"])
    assert url.path == "/calendar/feed.ics" and url.query.startswith("key=")
    return f"{url.path}?{url.query}"


async def read_feed(api: Api, path: str) -> Calendar:
    response = await api.client.get(path)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/calendar"
    return Calendar.from_ical(await response.read())


def events(cal: Calendar) -> list[Event]:
    return [e for e in cal.walk("VEVENT") if isinstance(e, Event)]


def when(event: Event, name: str) -> datetime:
    value = event.decoded(name)
    assert isinstance(value, datetime) and value.tzinfo is not None
    return value


def utc(event: Event, name: str) -> datetime:
    return when(event, name).astimezone(UTC)


async def sessions_of(api: Api, course_id: int) -> list[CourseSession]:
    async with api.database.transaction(write=False) as db:
        return list((await db.scalars(
            select(CourseSession).where(CourseSession.course_id == course_id)
            .order_by(CourseSession.start_time)
        )).all())


async def build_classes(api: Api, world: World) -> dict[str, int]:
    c = world.course_id
    schedule = await api.post("/schedules/", world.teacher, json={
        "course_id": c, "title": "Weekly", "start_time": "2031-03-03T09:00",
        "duration_minutes": 90, "timezone": "Europe/Paris",
        "rrule": "FREQ=WEEKLY;BYDAY=MO;UNTIL=20310428", "exdates": ["2031-03-17T09:00"],
    }, expect=201)
    async with api.database.transaction(write=True) as db:
        await generate_sessions(db, now=NOW, horizon=timedelta(days=365))
    by_start = {s.start_time: s.id for s in await sessions_of(api, c)}
    cancelled = by_start[datetime(2031, 3, 24, 8, tzinfo=UTC)]
    moved = by_start[datetime(2031, 4, 7, 7, tzinfo=UTC)]
    await api.post(f"/sessions/{cancelled}/cancel", world.teacher, expect=200)
    await api.patch(f"/sessions/{moved}/", world.teacher, json={
        "start_time": "2031-04-08T16:00:00+00:00", "end_time": "2031-04-08T17:30:00+00:00",
    }, expect=200)
    one_off = await api.post("/sessions/", world.teacher, json={
        "course_id": c, "title": "Exam", "start_time": "2031-05-05T12:00:00+00:00",
        "end_time": "2031-05-05T14:00:00+00:00",
    }, expect=201)
    return {"schedule": schedule["id"], "cancelled": cancelled, "moved": moved,
            "one_off": one_off["id"]}


async def test_feed_url_is_made_once_rotated_and_revoked(api: Api, world: World) -> None:
    first = await feed_path(api, world.student)
    assert await feed_path(api, world.student) == first  # the same URL on every ask
    await read_feed(api, first)
    rotated = await api.post("/me/calendar/rotate", world.student, expect=200)
    second = urlsplit(rotated["url"])
    assert f"{second.path}?{second.query}" != first
    out = await api.get(first, expect=404)
    assert out["error"]["code"] == "not_found"
    await read_feed(api, f"{second.path}?{second.query}")
    await api.delete("/me/calendar", world.student, expect=204)
    await api.get(f"{second.path}?{second.query}", expect=404)
    await api.delete("/me/calendar", world.student, expect=404)
    await api.get("/calendar/feed.ics?key=guess", expect=404)
    await api.get("/calendar/feed.ics", expect=422)
    await api.get("/me/calendar", expect=401)
    # Each person has their own secret.
    assert await feed_path(api, world.student2) != await feed_path(api, world.student)
    # A deactivated account's feed is gone with it.
    path = await feed_path(api, world.student2)
    await api.delete(f"/users/{world.student2.id}/", world.admin, expect=204)
    await api.get(path, expect=404)


async def test_the_feed_is_what_calendar_apps_expect(api: Api, world: World) -> None:
    ids = await build_classes(api, world)
    await api.post(f"/courses/{world.course_id}/enroll", world.student, expect=201)
    cal = await read_feed(api, await feed_path(api, world.student))
    assert cal["VERSION"] == "2.0" and "PRODID" in cal
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Europe/Paris"]
    host = urlsplit(api.settings.public_url).hostname
    course_url = f"{api.settings.public_url}/learn/{world.course_id}"
    for event in events(cal):
        assert event["URL"] == course_url and "DTSTAMP" in event
    series_uid = f"schedule-{ids['schedule']}@{host}"
    master = next(e for e in events(cal) if "RRULE" in e)
    assert master["UID"] == series_uid
    assert master["DTSTART"].params["TZID"] == "Europe/Paris"
    assert when(master, "DTSTART") == datetime(2031, 3, 3, 9, tzinfo=ZoneInfo("Europe/Paris"))
    exdates = [d for d in master.exdates if isinstance(d, datetime)]
    assert [d.astimezone(UTC) for d in exdates] == [datetime(2031, 3, 17, 8, tzinfo=UTC)]

    # The calendar app's expansion is the server's: same instants, DST included.
    text = master["RRULE"].to_ical()
    assert isinstance(text, bytes)
    rule = rrulestr(text.decode(), dtstart=when(master, "DTSTART"))
    expanded = {t.astimezone(UTC) for t in rule if isinstance(t, datetime)}
    expanded -= {d.astimezone(UTC) for d in exdates}
    generated = {s.occurrence_start for s in await sessions_of(api, world.course_id)
                 if s.schedule_id == ids["schedule"]}
    assert expanded == generated
    assert datetime(2031, 3, 10, 8, tzinfo=UTC) in expanded  # winter: 09:00 is 08:00Z
    assert datetime(2031, 3, 31, 7, tzinfo=UTC) in expanded  # summer: 09:00 is 07:00Z

    overrides = {utc(e, "RECURRENCE-ID"): e for e in events(cal)
                 if "RECURRENCE-ID" in e}
    assert set(overrides) == {datetime(2031, 3, 24, 8, tzinfo=UTC),
                              datetime(2031, 4, 7, 7, tzinfo=UTC)}
    cancelled = overrides[datetime(2031, 3, 24, 8, tzinfo=UTC)]
    assert cancelled["UID"] == series_uid and cancelled["STATUS"] == "CANCELLED"
    moved = overrides[datetime(2031, 4, 7, 7, tzinfo=UTC)]
    assert moved["UID"] == series_uid and moved["STATUS"] == "CONFIRMED"
    assert utc(moved, "DTSTART") == datetime(2031, 4, 8, 16, tzinfo=UTC)
    assert utc(moved, "DTEND") == datetime(2031, 4, 8, 17, 30, tzinfo=UTC)
    exam = next(e for e in events(cal) if e["UID"] == f"session-{ids['one_off']}@{host}")
    assert utc(exam, "DTSTART") == datetime(2031, 5, 5, 12, tzinfo=UTC)
    assert len(events(cal)) == 4  # the series, its two overrides, the exam

    # The teacher's feed holds the same classes under the same UIDs; other people's don't.
    teacher = await read_feed(api, await feed_path(api, world.teacher))
    assert sorted(str(e["UID"]) for e in events(teacher)) == sorted(
        str(e["UID"]) for e in events(cal))
    assert events(await read_feed(api, await feed_path(api, world.student2))) == []
    assert events(await read_feed(api, await feed_path(api, world.other_teacher))) == []
    # A student removed from the course no longer sees its classes (same URL).
    path = await feed_path(api, world.student)
    await api.post(f"/courses/{world.course_id}/remove-student", world.teacher,
                   json={"student_id": world.student.id}, expect=200)
    assert events(await read_feed(api, path)) == []


async def test_public_course_feed(api: Api, world: World) -> None:
    await build_classes(api, world)
    cal = await read_feed(api, f"/courses/{world.course_id}/calendar.ics")
    assert len(events(cal)) == 4
    await api.patch(f"/courses/{world.course_id}/", world.teacher,
                    json={"access_level": "private"}, expect=200)
    out = await api.get(f"/courses/{world.course_id}/calendar.ics", expect=404)
    assert out["error"]["code"] == "not_found"
    await api.get("/courses/999999/calendar.ics", expect=404)
