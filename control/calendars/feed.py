"""A course's classes as iCalendar (RFC 5545) events, written with the `icalendar` library.

Each active schedule is one recurring event: DTSTART in the schedule's time zone (TZID,
with its VTIMEZONE), the schedule's RRULE and its EXDATEs, so calendar apps expand the
same wall-clock times `control.scheduling.recurrence` does (both keep 09:00 at 09:00
across DST; a time in the spring-forward gap moves forward by the gap, one in the
fall-back overlap is the first of the two: RFC 5545 3.3.5 says the same). A generated
session that no longer matches its occurrence (moved, retitled, cancelled) becomes an
override of that occurrence (same UID, RECURRENCE-ID), cancelled ones with
STATUS:CANCELLED. Sessions outside any active schedule are single events.
UIDs are built from database ids, so they never change while the class exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vRecur

from control.models import Course, CourseSession, Schedule, SessionStatus
from control.scheduling.recurrence_rule import parse_rule
from control.scheduling.session_generation import parse_exdates

PRODID = "-//Academia Live//Calendars//EN"


@dataclass(frozen=True)
class CourseClasses:
    """One course and what the feed shows of it."""

    course: Course
    schedules: list[Schedule]
    sessions: list[CourseSession]


def uid(kind: str, ident: int, host: str) -> str:
    return f"{kind}-{ident}@{host}"


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone)


def _place(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall-clock time as an aware time in `zone` (fold=0: the first of two)."""
    return wall.replace(tzinfo=zone, fold=0)


def feed_rrule(schedule: Schedule) -> vRecur:
    """The schedule's rule for the feed. RFC 5545 wants UNTIL in UTC when DTSTART has a
    TZID; a schedule may give it as a wall-clock time, which is converted here."""
    assert schedule.rrule is not None
    text = schedule.rrule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:"):]
    rule = parse_rule(text)
    parts = [p for p in text.upper().split(";") if p and not p.startswith("UNTIL=")]
    if rule.until is not None:
        until = rule.until
        if not rule.until_utc:
            until = _place(until, ZoneInfo(schedule.timezone)).astimezone(UTC)
        else:
            until = until.replace(tzinfo=UTC)
        parts.append(f"UNTIL={until:%Y%m%dT%H%M%SZ}")
    recur: vRecur = vRecur.from_ical(";".join(parts))
    return recur


def _event(
    ident: str, course: Course, course_url: str, title: str, description: str,
    start: datetime, end: datetime, stamp: datetime,
) -> Event:
    event = Event()
    event.add("uid", ident)
    event.add("dtstamp", stamp)
    event.add("summary", f"{course.title}: {title}" if title != course.title else title)
    if description:
        event.add("description", description)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("url", course_url)
    return event


def _session_event(
    ident: str, course: Course, course_url: str, session: CourseSession, zone: ZoneInfo,
    stamp: datetime,
) -> Event:
    event = _event(ident, course, course_url, session.title, session.description,
                   _local(session.start_time, zone), _local(session.end_time, zone), stamp)
    cancelled = session.status == SessionStatus.CANCELLED or not session.is_active
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    return event


def _differs(session: CourseSession, schedule: Schedule) -> bool:
    assert session.occurrence_start is not None
    return (
        session.status == SessionStatus.CANCELLED
        or not session.is_active
        or session.start_time != session.occurrence_start
        or session.end_time
        != session.occurrence_start + timedelta(minutes=schedule.duration_minutes)
        or session.title != schedule.title
        or session.description != schedule.description
    )


def course_events(
    classes: CourseClasses, *, course_url: str, host: str, stamp: datetime,
) -> list[Event]:
    """The course's events: its schedules (with overrides) and its other sessions."""
    course = classes.course
    events: list[Event] = []
    by_schedule = {s.id: s for s in classes.schedules if s.is_active}
    for schedule in by_schedule.values():
        zone = ZoneInfo(schedule.timezone)
        start = _place(schedule.start_local, zone)
        event = _event(uid("schedule", schedule.id, host), course, course_url, schedule.title,
                       schedule.description, start,
                       start + timedelta(minutes=schedule.duration_minutes), stamp)
        event.add("status", "CONFIRMED")
        if schedule.rrule:
            event.add("rrule", feed_rrule(schedule))
            exdates = [_place(wall, zone) for wall in parse_exdates(schedule)]
            if exdates:
                event.add("exdate", exdates)
        events.append(event)
    for session in classes.sessions:
        series = by_schedule.get(session.schedule_id) if session.schedule_id else None
        if series is not None and session.occurrence_start is not None:
            if not _differs(session, series):
                continue  # the recurring event already says it
            zone = ZoneInfo(series.timezone)
            override = _session_event(uid("schedule", series.id, host), course, course_url,
                                      session, zone, stamp)
            override.add("recurrence-id", _local(session.occurrence_start, zone))
            events.append(override)
        else:
            events.append(_session_event(uid("session", session.id, host), course,
                                         course_url, session, ZoneInfo("UTC"), stamp))
    return events


def calendar(name: str, courses: Iterable[CourseClasses], *, public_url: str,
             stamp: datetime) -> bytes:
    """The feed as iCalendar bytes: one VCALENDAR, its VTIMEZONEs, every course's events."""
    host = public_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "academia"
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    for classes in courses:
        course_url = f"{public_url}/learn/{classes.course.id}"
        for event in course_events(classes, course_url=course_url, host=host, stamp=stamp):
            cal.add_component(event)
    # Calendar apps need each TZID's rules spelled out (Outlook ignores bare TZIDs).
    cal.add_missing_timezones()
    return bytes(cal.to_ical())
