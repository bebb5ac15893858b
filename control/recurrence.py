"""Course schedule recurrence: which classes a schedule holds, as UTC intervals.

A schedule is a first start given as a *wall-clock* time in a named IANA time zone
(09:00 in Europe/Paris), a duration, an optional RFC 5545 RRULE ("FREQ=WEEKLY;BYDAY=MO,WE")
and EXDATE exceptions. `expand` turns it into `Occurrence`s in UTC for a window of time;
`first_clash` finds the first overlap between two such sequences (double-booking checks).

Recurrence is computed on naive local times and each one is then placed in the zone, so a
class keeps its wall-clock time across DST changes: 09:00 Paris is 08:00Z in winter and
07:00Z in summer. Where the wall clock does not map to exactly one instant:
  - a time that does not exist (the spring-forward gap, 02:30 on the day clocks jump from
    02:00 to 03:00) is moved forward by the length of the gap, to 03:30;
  - a time that exists twice (the fall-back overlap) is the first of the two instants
    (fold=0), i.e. the one still on summer time.
A class lasts `duration` of elapsed time, so one starting just before a change ends at a
wall-clock time an hour off its usual end.

Times are kept to the second (an RRULE cannot express less); microseconds are dropped.
Everything here is pure: no database, no clock, no I/O beyond reading the tz database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr

__all__ = [
    "Occurrence",
    "RecurrenceError",
    "check_rrule",
    "check_timezone",
    "expand",
    "first_clash",
]


@dataclass(frozen=True)
class Occurrence:
    """One class, as the half-open interval [start, end)."""

    start: datetime  # timezone-aware, UTC
    end: datetime  # timezone-aware, UTC


class RecurrenceError(ValueError):
    """A schedule's zone, rule or duration is unusable; the message is meant for the user."""


# Larger than any change of UTC offset can be (tz database offsets all lie within about
# -16..+16 h; the largest real jump, Pacific/Apia in 2011, was 24 h): a wall-clock time more
# than this past another is certainly a later instant, whatever happened in between.
_SLACK = timedelta(days=2)

_FREQUENCIES = frozenset({"YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY"})
_PARTS = frozenset(
    {
        "FREQ", "UNTIL", "COUNT", "INTERVAL", "BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY",
        "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH", "BYSETPOS", "WKST",
    }
)  # fmt: skip
# (lowest, highest, negatives allowed) for the integer parts dateutil does not check itself:
# out of range, it silently searches up to year 9999 for a match that never comes (seconds of
# CPU), or with INTERVAL=0 repeats the first time forever. The COUNT/INTERVAL cap is sanity.
_RANGES: dict[str, tuple[int, int, bool]] = {
    "COUNT": (1, 1_000_000, False),
    "INTERVAL": (1, 1_000_000, False),
    "BYMONTH": (1, 12, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # leap years included
_UNTIL = re.compile(r"(\d{8})(?:T(\d{6})(Z)?)?")
_EXAMPLE = "such as FREQ=WEEKLY;BYDAY=MO,WE"


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


def check_rrule(rule: str) -> None:
    """Raise RecurrenceError unless `rule` is one usable RRULE.

    "FREQ=WEEKLY;BYDAY=MO,WE" and "RRULE:FREQ=WEEKLY;BYDAY=MO,WE" are both accepted.
    DTSTART, EXDATE or several lines are refused: the start and the exceptions are
    separate fields of a schedule.
    """
    _build(rule, datetime(2000, 1, 3, 9, 0), ZoneInfo("UTC"))


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
    Raises RecurrenceError for an unknown zone, a bad rule or a duration that is not > 0.
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
    walls: Iterator[datetime] = iter((first,)) if rrule is None else _build(rrule, first, zone)
    try:
        horizon = _later(_wall_clock(window_end, zone), _SLACK)
    except OverflowError:  # window_end at the very end of time
        horizon = datetime.max

    # Keyed by start: two wall-clock times can land on one instant (02:30 shifted to 03:30
    # next to a real 03:30, with sub-hourly rules), and a start is one class.
    found: dict[datetime, Occurrence] = {}
    stop_after: datetime | None = None
    for wall in walls:
        if wall > horizon or (stop_after is not None and wall > stop_after):
            break
        try:
            start = _to_utc(wall, zone)
        except OverflowError:  # in year 9999, past what datetime can hold in UTC
            break
        if wall in skipped or _wall_clock(start, zone) in skipped:
            continue
        end = start + duration
        if end <= window_start or start >= window_end or start in found:
            continue
        found[start] = Occurrence(start=start, end=end)
        if stop_after is None and len(found) >= limit:
            # Enough, but a wall-clock time shortly after may still be an earlier instant
            # (DST shifts), so look _SLACK further before keeping the earliest `limit`.
            stop_after = _later(wall, _SLACK)
    return sorted(found.values(), key=lambda o: o.start)[:limit]


def first_clash(
    a: Iterable[Occurrence], b: Iterable[Occurrence]
) -> tuple[Occurrence, Occurrence] | None:
    """The first overlapping (x from a, y from b), or None; both inputs sorted by start.

    Intervals are half-open: one ending at 10:00 and one starting at 10:00 do not clash,
    and an empty one clashes with nothing. The answer is the first x of `a` that overlaps
    anything in `b`, with the first y of `b` it overlaps. One merge sweep, O(n + m).
    """
    xs = (o for o in a if o.start < o.end)
    ys = (o for o in b if o.start < o.end)
    x = next(xs, None)
    y = next(ys, None)
    while x is not None and y is not None:
        if x.end <= y.start:
            # x is over before y begins, so before every later y too: it clashes with nothing.
            x = next(xs, None)
        elif y.end <= x.start:
            y = next(ys, None)
        else:
            return x, y
    return None


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


def _build(rule: str, first: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    """Check `rule` and return its naive wall-clock times from `first` on, lazily."""
    parts = _parse(rule)
    if "UNTIL" in parts:
        # dateutil wants UNTIL naive when DTSTART is, so make it a wall-clock time in `zone`.
        parts["UNTIL"] = _until_wall(parts["UNTIL"], zone).strftime("%Y%m%dT%H%M%S")
    text = ";".join(f"{name}={value}" for name, value in parts.items())
    try:
        recurrence = rrulestr(text, dtstart=first)
    except (ValueError, TypeError) as exc:
        raise RecurrenceError(f"invalid recurrence rule: {exc}") from None
    return _guarded(iter(recurrence))


def _guarded(times: Iterator[datetime]) -> Iterator[datetime]:
    # dateutil can still give up part way through (e.g. an INTERVAL/BYHOUR mix that can
    # never match); that is the rule's fault, so say so rather than fail with ValueError.
    while True:
        try:
            wall = next(times)
        except StopIteration:
            return
        except ValueError as exc:
            raise RecurrenceError(f"invalid recurrence rule: {exc}") from None
        yield wall


def _parse(rule: str) -> dict[str, str]:
    """The rule's NAME=VALUE parts, names upper-cased, checked as far as dateutil does not."""
    text = rule.strip()
    if text.upper().startswith("RRULE:"):
        text = text[len("RRULE:") :].strip()
    if not text:
        raise RecurrenceError(f"the recurrence rule is empty; give one {_EXAMPLE}")
    if "DTSTART" in text.upper():
        raise RecurrenceError(
            "the recurrence rule must not contain DTSTART: the start time is given separately"
        )
    if "\n" in text or "\r" in text or ":" in text:
        raise RecurrenceError(
            f"the recurrence rule must be a single RRULE {_EXAMPLE}; "
            "exceptions (EXDATE) are given separately"
        )

    parts: dict[str, str] = {}
    for piece in text.split(";"):
        if not piece.strip():
            continue  # tolerate a stray or trailing ";"
        name, sep, value = piece.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not sep or not name or not value:
            raise RecurrenceError(f"{piece.strip()!r} in the recurrence rule is not NAME=VALUE")
        if name not in _PARTS:
            raise RecurrenceError(f"unknown part {name!r} in the recurrence rule")
        if name in parts:
            raise RecurrenceError(f"{name} appears twice in the recurrence rule")
        parts[name] = value

    freq = parts.get("FREQ")
    if freq is None:
        raise RecurrenceError(f"the recurrence rule needs FREQ, {_EXAMPLE}")
    if freq not in _FREQUENCIES:
        raise RecurrenceError(
            f"FREQ={freq} is not a frequency; use one of " + ", ".join(sorted(_FREQUENCIES))
        )
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("a recurrence rule may have COUNT or UNTIL, not both")
    numbers = {name: _numbers(name, parts[name]) for name in _RANGES if name in parts}
    _check_month_days(numbers.get("BYMONTH"), numbers.get("BYMONTHDAY"))
    if "UNTIL" in parts:
        _until_wall(parts["UNTIL"], ZoneInfo("UTC"))  # the format; the zone comes later
    return parts


def _numbers(name: str, value: str) -> list[int]:
    low, high, negatives = _RANGES[name]
    allowed = f"from {low} to {high}" + (f" or from -{high} to -{low}" if negatives else "")
    several = name.startswith("BY")
    try:
        numbers = [int(item) for item in value.split(",")] if several else [int(value)]
    except ValueError:
        raise RecurrenceError(
            f"{name}={value}: {name} takes {'whole numbers' if several else 'a whole number'}"
            f" {allowed}"
        ) from None
    for number in numbers:
        if not (low <= number <= high or (negatives and -high <= number <= -low)):
            raise RecurrenceError(f"{name}={value}: {number} is out of range ({allowed})")
    return numbers


def _check_month_days(months: list[int] | None, days: list[int] | None) -> None:
    # "February 30th" is accepted by dateutil and then searched for until year 9999.
    if months is None or days is None:
        return
    if any(abs(day) <= _DAYS_IN_MONTH[month - 1] for month in months for day in days):
        return
    raise RecurrenceError(
        "the recurrence rule can never happen: no BYMONTHDAY falls in any BYMONTH"
    )


def _until_wall(value: str, zone: ZoneInfo) -> datetime:
    """UNTIL as a naive wall-clock time in `zone` (the rule's times are compared with it).

    "20250630T150000Z" is an instant (converted to the zone), "20250630T170000" a wall-clock
    time, and a bare date "20250630" means up to the end of that day, inclusive.
    """
    match = _UNTIL.fullmatch(value)
    problem = RecurrenceError(
        f"UNTIL={value} is not a date or time; write it like 20250630, 20250630T170000 "
        "or 20250630T150000Z"
    )
    if match is None:
        raise problem
    day, clock, utc = match.groups()
    try:
        if clock is None:
            return datetime.strptime(day, "%Y%m%d").replace(hour=23, minute=59, second=59)
        moment = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
        if utc:
            moment = moment.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise problem from None
    return moment
