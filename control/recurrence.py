"""Course schedule recurrence: which classes a schedule holds, as UTC intervals.

A schedule is a first start given as a *wall-clock* time in a named IANA time zone
(09:00 in Europe/Paris), a duration, an optional RRULE ("FREQ=WEEKLY;BYDAY=MO,WE", parsed
and checked by control.recurrence_rule) and EXDATE exceptions. `expand` turns it into
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

The expansion is bounded: a rule's times are looked for only up to MAX_SPAN_DAYS (about 100
years) after the first class, day by day at worst, so whatever the rule (a huge COUNT, a
rule that never matches) it examines at most that many days. A rule that gives no class in
that span is refused with RecurrenceError.
Times are kept to the second; microseconds are dropped. Everything here is pure: no
database, no clock, no I/O beyond reading the tz database.
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from control.recurrence_rule import RecurrenceError, Rule, parse_rule

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
    """Raise RecurrenceError unless `rule` is one usable RRULE (see control.recurrence_rule).

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

    # Keyed by start: two wall-clock times a day apart can land on one instant where a zone
    # skipped a whole day (Pacific/Apia, 30 December 2011), and a start is one class.
    found: dict[datetime, Occurrence] = {}
    stop_after: datetime | None = None
    for wall in walls:
        if wall > horizon or (stop_after is not None and wall > stop_after):
            break
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
    """The rule's wall-clock times from `first` on (all at its time of day), up to `until`,
    COUNT and MAX_SPAN_DAYS past `first`."""
    last = min(first.toordinal() + MAX_SPAN_DAYS, date.max.toordinal())
    if until is not None:
        last = min(last, until.toordinal())
    given = 0
    for day in _days(rule, first.date(), last):
        wall = datetime.combine(day, first.time())
        if until is not None and wall > until:
            return
        yield wall
        given += 1
        if rule.count is not None and given >= rule.count:
            return


def _days(rule: Rule, start: date, last: int) -> Iterator[date]:
    """The days the rule gives from `start` to the day whose ordinal is `last`, in order:
    its periods (days, weeks, months, years) every INTERVAL from `start`'s, filtered."""
    first = start.toordinal()
    step = rule.interval
    if rule.freq in ("DAILY", "WEEKLY"):
        length = 1 if rule.freq == "DAILY" else 7
        # Weeks begin on WKST; the first one is the week holding `start`.
        begin = first - (start.weekday() - rule.wkst) % 7 if length == 7 else first
        for period in range(begin, last + 1, length * step):
            for ordinal in range(max(period, first), min(period + length, last + 1)):
                day = date.fromordinal(ordinal)
                if _matches(rule, day, start):
                    yield day
        return
    months = rule.freq == "MONTHLY"
    index = start.year * 12 + start.month - 1 if months else start.year
    while True:
        year, month = divmod(index, 12) if months else (index, 0)
        if year > date.max.year or date(year, month + 1, 1).toordinal() > last:
            return
        for number in [month + 1] if months else _year_months(rule, start):
            if rule.bymonth is not None and number not in rule.bymonth:
                continue
            for day_number in range(1, calendar.monthrange(year, number)[1] + 1):
                day = date(year, number, day_number)
                ordinal = day.toordinal()
                if ordinal > last:
                    return
                if ordinal >= first and _matches(rule, day, start):
                    yield day
        index += step


def _year_months(rule: Rule, start: date) -> Sequence[int]:
    # A yearly rule with no day parts means the first class's date each year.
    if rule.bymonth is None and rule.bymonthday is None and rule.byday is None:
        return (start.month,)
    return range(1, 13)


def _matches(rule: Rule, day: date, start: date) -> bool:
    """Whether `day` of one of the rule's periods is one of its days."""
    if rule.bymonth is not None and day.month not in rule.bymonth:
        return False
    if rule.bymonthday is None and rule.byday is None:
        # What the rule leaves out is the first class's: its weekday, its day of the month.
        if rule.freq == "WEEKLY":
            return day.weekday() == start.weekday()
        return rule.freq == "DAILY" or day.day == start.day
    if rule.bymonthday is not None:
        length = calendar.monthrange(day.year, day.month)[1]
        if day.day not in rule.bymonthday and day.day - length - 1 not in rule.bymonthday:
            return False
    if rule.byday is None:
        return True
    in_year = rule.freq == "YEARLY" and rule.bymonth is None
    return any(
        weekday == day.weekday() and (nth is None or _is_nth(day, nth, in_year))
        for weekday, nth in rule.byday
    )


def _is_nth(day: date, nth: int, in_year: bool) -> bool:
    """Whether `day` is the nth of its weekday in its month (or year); -1 is the last."""
    if in_year:
        index = day.timetuple().tm_yday
        length = 365 + calendar.isleap(day.year)
    else:
        index = day.day
        length = calendar.monthrange(day.year, day.month)[1]
    return nth in ((index - 1) // 7 + 1, -((length - index) // 7 + 1))
