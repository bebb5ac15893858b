"""Course schedule recurrence: which classes a schedule holds, as UTC intervals.

A schedule is a first start given as a *wall-clock* time in a named IANA time zone
(09:00 in Europe/Paris), a duration, an optional RRULE ("FREQ=WEEKLY;BYDAY=MO,WE", parsed
and checked by control.scheduling.recurrence_rule) and EXDATE exceptions. `expand` turns it into
`Occurrence`s in UTC for a window of time.

Recurrence is computed on naive local times and each one is then placed in the zone, so a
class keeps its wall-clock time across DST changes: 09:00 Paris is 08:00Z in winter and
07:00Z in summer. Where the wall clock does not map to exactly one instant:
  - a time that does not exist (the spring-forward gap, 02:30 on the day clocks jump from
    02:00 to 03:00) is moved forward by the length of the gap, to 03:30;
  - a time that exists twice (the fall-back overlap) is the first of the two instants
    (fold=0), i.e. the one still on summer time.
A class lasts `duration` of elapsed time, so one starting just before a change ends at a
wall-clock time an hour off its usual end.

The rule's times are dateutil's. The expansion is bounded: only times up to MAX_SPAN_DAYS
(about 100 years) after the first class count, and dateutil looks no further than that span
and one 400-year cycle of the calendar (see `_times`), so whatever the rule (a huge COUNT,
a rule that never matches) the search ends. A rule that gives no class in that span is
refused with RecurrenceError.
Times are kept to the second; microseconds are dropped. Everything here is pure: no
database, no clock, no I/O beyond reading the tz database.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, weekday, weekdays

from control.scheduling.recurrence_rule import RecurrenceError, Rule, parse_rule

__all__ = [
    "MAX_SPAN_DAYS",
    "Occurrence",
    "RecurrenceError",
    "check_rrule",
    "check_timezone",
    "expand",
]

# How far past the first class a rule's times are looked for: about a century, far more
# than any course runs, and every kind of year (weekday of 1 January, leap or not) occurs
# in it, so a rule that gives nothing in it gives nothing at all (from that start).
MAX_SPAN_DAYS = 36_525

# Larger than any change of UTC offset can be (tz database offsets all lie within about
# -16..+16 h; the largest real jump, Pacific/Apia in 2011, was 24 h): a wall-clock time more
# than this past another is certainly a later instant, whatever happened in between.
_SLACK = timedelta(days=2)
# The Gregorian calendar repeats every 400 years: 146,097 days, which is 20,871 weeks.
_CYCLE_DAYS = 146_097
_FREQUENCIES: dict[str, Literal[0, 1, 2, 3]] = {
    "DAILY": DAILY,
    "WEEKLY": WEEKLY,
    "MONTHLY": MONTHLY,
    "YEARLY": YEARLY,
}
# A start from which any rule's parts are reachable (for `check_rrule` without a start).
_NEUTRAL_START = datetime(2000, 1, 3, 9, 0)


@dataclass(frozen=True)
class Occurrence:
    """One class, as the half-open interval [start, end)."""

    start: datetime  # timezone-aware, UTC
    end: datetime  # timezone-aware, UTC


def check_timezone(name: str) -> ZoneInfo:
    """The zone called `name` ("Europe/Paris"); RecurrenceError if there is no such zone."""
    unknown = RecurrenceError(
        f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris'"
    )
    # "localtime" is whatever the server's clock is set to, not a place.
    if name == "localtime":
        raise unknown
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: not a relative key, or a tz database file that is not a zone;
        # OSError: a directory such as "Europe".
        raise unknown from None


def check_rrule(rule: str, start_local: datetime | None = None, timezone: str = "UTC") -> None:
    """Raise RecurrenceError unless `rule` is one usable RRULE (see
    control.scheduling.recurrence_rule).

    A rule that can never give a class is refused too. Without `start_local` that means
    whatever the start ("FREQ=MONTHLY;BYMONTHDAY=1;BYDAY=5MO": a fifth Monday is never the
    1st). With it (the first class's wall-clock time in `timezone`, as for `expand`), also
    a rule that gives nothing from that start on, or none before its UNTIL
    ("FREQ=DAILY;INTERVAL=7;BYDAY=MO" from a Tuesday only ever lands on Tuesdays).
    """
    zone = check_timezone(timezone)
    parsed = parse_rule(rule)
    if start_local is not None:
        _walls(parsed, _wall_clock(start_local, zone), zone)
        return
    # Every period from a neutral start: if even this finds nothing, no start can.
    anywhere = replace(parsed, interval=1, count=None, until=None, until_utc=False)
    if next(_times(anywhere, _NEUTRAL_START, None), None) is None:
        raise RecurrenceError(
            "this recurrence rule never matches: no date and time fits all of its parts"
        )


def expand(
    *,
    start_local: datetime,
    duration: timedelta,
    timezone: str,
    rrule: str | None,
    exdates: Sequence[datetime],
    window_start: datetime,
    window_end: datetime,
    limit: int = 5000,
) -> list[Occurrence]:
    """The schedule's occurrences that overlap [window_start, window_end), sorted by start.

    `start_local` is the first class's wall-clock time in `timezone` (naive; an aware one
    is first converted to that zone's wall clock). `rrule` None means that class alone;
    otherwise the classes are the rule's times from `start_local` on, which counts only if
    the rule matches it (Tuesday 09:00 with BYDAY=MO,WE starts on the Wednesday). Times
    that do not exist or exist twice are placed as the module docstring says.
    An occurrence is skipped when its wall-clock start, as the rule gives it or as it
    ends up after a spring-forward shift, equals an exdate; naive exdates are wall-clock
    times in `timezone`, aware ones are converted to it. The window bounds must be aware.

    At most `limit` occurrences are returned (the earliest). The rule is iterated lazily
    and iteration stops once past the window, so an unbounded rule is fine.
    Raises RecurrenceError for an unknown zone, a bad rule, a rule that gives no class from
    `start_local` on (see `check_rrule`) or a duration that is not > 0.
    """
    zone = check_timezone(timezone)
    if duration <= timedelta(0):
        raise RecurrenceError("the duration of a class must be longer than zero")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if window_start.utcoffset() is None or window_end.utcoffset() is None:
        raise ValueError("window_start and window_end must be timezone-aware")
    if window_end <= window_start:
        return []

    first = _wall_clock(start_local, zone)
    skipped = {_wall_clock(moment, zone) for moment in exdates}
    walls = iter((first,)) if rrule is None else _walls(parse_rule(rrule), first, zone)
    try:
        horizon = _later(_wall_clock(window_end, zone), _SLACK)
    except OverflowError:  # window_end at the very end of time
        horizon = datetime.max
    try:
        # A class whose wall-clock end is more than _SLACK before the window's start ended
        # before it as an instant too: passed over without being placed in the zone.
        early = _wall_clock(window_start, zone) - duration - _SLACK
    except OverflowError:  # window_start at the very beginning of time
        early = datetime.min

    # Keyed by start: two wall-clock times a day apart can land on one instant where a zone
    # skipped a whole day (Pacific/Apia, 30 December 2011), and a start is one class.
    found: dict[datetime, Occurrence] = {}
    stop_after: datetime | None = None
    for wall in walls:
        if wall > horizon or (stop_after is not None and wall > stop_after):
            break
        if wall < early:
            continue
        try:
            start = _to_utc(wall, zone)
            end = start + duration
        except OverflowError:  # in year 9999, past what datetime can hold in UTC
            break
        if wall in skipped or _wall_clock(start, zone) in skipped:
            continue
        if end <= window_start or start >= window_end or start in found:
            continue
        found[start] = Occurrence(start=start, end=end)
        if stop_after is None and len(found) >= limit:
            # Enough, but a wall-clock time shortly after may still be an earlier instant
            # (DST shifts), so look _SLACK further before keeping the earliest `limit`.
            stop_after = _later(wall, _SLACK)
    return sorted(found.values(), key=lambda o: o.start)[:limit]


def _wall_clock(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` as a naive wall-clock time in `zone`, to the second."""
    if moment.utcoffset() is not None:
        moment = moment.astimezone(zone)
    return moment.replace(tzinfo=None, microsecond=0, fold=0)


def _to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    # With fold=0 zoneinfo reads a time in a spring-forward gap with the offset in force
    # before the change, which is the instant one gap-length later on the wall clock
    # (02:30 -> 03:30), and a time repeated by a fall-back as the first of the two.
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _later(wall: datetime, delta: timedelta) -> datetime:
    return datetime.max if wall > datetime.max - delta else wall + delta


def _walls(rule: Rule, first: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    """The rule's naive wall-clock times from `first` on, lazily; RecurrenceError if there
    is none (from `first` up to UNTIL or the end of the span)."""
    until = rule.until
    if until is not None and rule.until_utc:
        try:
            until = until.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
        except OverflowError:  # UNTIL at one end of time: before or after every class
            until = datetime.min if until.year == 1 else None
    times = _times(rule, first, until)
    head = next(times, None)
    if head is None:
        when = f"the start ({first:%Y-%m-%d %H:%M})"
        if until is not None and until.toordinal() <= first.toordinal() + MAX_SPAN_DAYS:
            span = f"between {when} and its UNTIL"
        else:
            span = f"in the {MAX_SPAN_DAYS // 365} years from {when}"
        raise RecurrenceError(f"this recurrence rule never matches: it gives no class {span}")
    return itertools.chain((head,), times)


def _times(rule: Rule, first: datetime, until: datetime | None) -> Iterator[datetime]:
    """The rule's wall-clock times from `first` on, lazily, up to `until` (wall clock),
    COUNT and MAX_SPAN_DAYS past `first`, as dateutil gives them.

    dateutil looks for a rule's next time period by period up to the year 9999, past its
    UNTIL, so a rule with no time left would make it scan thousands of years. The calendar
    repeats every 400 years (_CYCLE_DAYS, a whole number of weeks, of months, of years),
    so the rule is run from `first` moved forward by whole cycles, as near the year 9999 as
    the span allows, and its times moved back: dateutil then scans at most the span and one
    cycle.
    """
    last = datetime.combine(
        date.fromordinal(min(first.toordinal() + MAX_SPAN_DAYS, date.max.toordinal())),
        first.time(),
    )
    end = last if until is None else min(until, last)
    shift = timedelta(days=(date.max.toordinal() - last.toordinal()) // _CYCLE_DAYS * _CYCLE_DAYS)
    runs = [
        _to_the_end_of_time(_rrule(rule, days, first + shift, end + shift))
        for days in _weekday_groups(rule)
    ]
    merged = heapq.merge(*runs) if len(runs) > 1 else runs[0]
    distinct = (wall for wall, _ in itertools.groupby(merged))  # a day both runs give
    return (wall - shift for wall in itertools.islice(distinct, rule.count))


def _to_the_end_of_time(times: Iterable[datetime]) -> Iterator[datetime]:
    """`times`, ending where dateutil runs off the end of time: it raises ValueError ("year
    10000 is out of range") when a week it looks at reaches past 31 December 9999."""
    try:
        yield from times
    except ValueError:
        return


def _weekday_groups(rule: Rule) -> list[list[weekday] | None]:
    """BYDAY as dateutil's byweekday (MO, MO(+2), FR(-1)), one list per run.

    RFC 5545 reads BYDAY=MO,-1FR as every Monday and the last Friday; dateutil would keep
    only the days that are both, so plain and numbered weekdays are run apart and merged.
    """
    if rule.byday is None:
        return [None]
    plain = [weekdays[day] for day, nth in rule.byday if nth is None]
    numbered = [weekdays[day](nth) for day, nth in rule.byday if nth is not None]
    return [group for group in (plain, numbered) if group]


def _rrule(
    rule: Rule, byweekday: list[weekday] | None, dtstart: datetime, until: datetime
) -> rrule:
    # COUNT is applied after the runs are merged; dateutil iterates lazily (no cache).
    return rrule(
        _FREQUENCIES[rule.freq],
        dtstart=dtstart,
        interval=rule.interval,
        wkst=rule.wkst,
        until=until,
        bymonth=None if rule.bymonth is None else tuple(rule.bymonth),
        bymonthday=None if rule.bymonthday is None else tuple(rule.bymonthday),
        byweekday=byweekday,
    )
