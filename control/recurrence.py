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
A rule that gives no class at all ("FREQ=DAILY;BYYEARDAY=1;BYMONTH=2": 1 January is never in
February) is refused with RecurrenceError, and that is decided in bounded time (see
`_first_period`) rather than by letting dateutil search up to year 9999.
Everything here is pure: no database, no clock, no I/O beyond reading the tz database.
"""

from __future__ import annotations

import calendar
import itertools
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import (
    DAILY,
    HOURLY,
    MINUTELY,
    MONTHLY,
    SECONDLY,
    WEEKLY,
    YEARLY,
    rrule,
    rrulestr,
    weekday,
)

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
    # With FREQ=HOURLY, MINUTELY or SECONDLY dateutil takes BYHOUR=25 and then fails mid-way.
    "BYHOUR": (0, 23, False),
    "BYMINUTE": (0, 59, False),
    "BYSECOND": (0, 59, False),
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


def check_rrule(rule: str, start_local: datetime | None = None, timezone: str = "UTC") -> None:
    """Raise RecurrenceError unless `rule` is one usable RRULE.

    "FREQ=WEEKLY;BYDAY=MO,WE" and "RRULE:FREQ=WEEKLY;BYDAY=MO,WE" are both accepted.
    DTSTART, EXDATE or several lines are refused: the start and the exceptions are
    separate fields of a schedule.

    A rule that can never give a class is refused too. Without `start_local` that means
    whatever the start ("FREQ=DAILY;BYYEARDAY=1;BYMONTH=2": 1 January is never in
    February). With it (the first class's wall-clock time in `timezone`, as for `expand`),
    also a rule that gives nothing from that start on, or none before its UNTIL
    ("FREQ=HOURLY;INTERVAL=24;BYHOUR=5" from 09:00 only ever lands at 09:00).
    """
    zone = check_timezone(timezone)
    if start_local is not None:
        _build(rule, _wall_clock(start_local, zone), zone)
        return
    spec, _ = _compile(rule, zone)
    # Every period from an arbitrary start: more than any real start and INTERVAL can give,
    # so if even this finds nothing, no start can.
    anywhere = replace(spec, interval=1, count=None, until=None)
    start = _neutral_start(spec.byhour, spec.byminute, spec.bysecond)
    if _first_period(anywhere.explicit(start), start) is None:
        raise _never(spec, None)


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
    """Check `rule` and return its naive wall-clock times from `first` on, lazily.

    RecurrenceError if the rule is malformed or gives no time at all from `first` on.
    Getting the first time (or knowing there is none) takes bounded work whatever the rule.
    """
    spec, text = _compile(rule, zone)
    explicit = spec.explicit(first)
    daily = _as_daily(explicit, first)
    restart = _first_period(daily or explicit, first)
    if restart is None:
        raise _never(spec, first)
    try:
        if daily is not None:
            recurrence: Iterable[datetime] = daily.make(restart)
        elif restart == first:
            recurrence = rrulestr(text, dtstart=first)
        else:
            # Nothing happens before `restart`: start dateutil there rather than let it
            # search period by period, with what it would take from `first` written out.
            recurrence = explicit.make(restart)
    except (ValueError, TypeError) as exc:
        raise RecurrenceError(f"invalid recurrence rule: {exc}") from None
    times = _guarded(iter(recurrence))
    head = next(times, None)
    if head is None:  # the first period's times all fall after UNTIL
        raise _never(spec, first)
    return itertools.chain((head,), times)


def _as_daily(spec: _Spec, start: datetime) -> _Spec | None:
    """The same times as FREQ=DAILY, for FREQ=MINUTELY or SECONDLY with an INTERVAL that
    divides 60 and BYHOUR/BYMINUTE/BYSECOND leaving few times a day; None otherwise.

    dateutil steps such a rule through every minute or second the rule excludes: for
    "FREQ=SECONDLY;BYHOUR=5;BYMINUTE=0;BYSECOND=0" (05:00:00 each day) a few milliseconds
    per day, seconds for a year of them. FREQ=DAILY with the times listed goes day by day.
    With such an INTERVAL every day has the same times: those whose minute (MINUTELY) or
    second (SECONDLY) is in phase with the start. `spec` is explicit for `start`.
    """
    if spec.freq not in (MINUTELY, SECONDLY) or 60 % spec.interval:
        return None
    if (
        spec.byhour is None
        and spec.byminute is None
        and (spec.freq == MINUTELY or not spec.bysecond)
    ):
        return None  # every minute or second (BYSECOND of MINUTELY is the start's): no waste
    if spec.bysetpos is not None:
        # BYSETPOS picks among one period's times: a minute's BYSECOND, or a second alone.
        single = spec.freq == SECONDLY or len(spec.bysecond or ()) == 1
        if not (single and (1 in spec.bysetpos or -1 in spec.bysetpos)):
            return None
    every = range(60)
    minutes = tuple(spec.byminute or every)
    seconds = tuple(spec.bysecond or every)
    if spec.freq == MINUTELY:
        minutes = tuple(m for m in minutes if (m - start.minute) % spec.interval == 0)
    else:
        seconds = tuple(s for s in seconds if (s - start.second) % spec.interval == 0)
    hours = tuple(spec.byhour or range(24))
    if not minutes or not seconds or len(hours) * len(minutes) * len(seconds) > 3600:
        return None
    return replace(
        spec,
        freq=DAILY,
        interval=1,
        bysetpos=None,
        byhour=hours,
        byminute=minutes,
        bysecond=seconds,
    )


def _compile(rule: str, zone: ZoneInfo) -> tuple[_Spec, str]:
    """The checked rule, and its text for dateutil with UNTIL as a wall-clock time in `zone`."""
    parts = _parse(rule)
    if "UNTIL" in parts:
        # dateutil wants UNTIL naive when DTSTART is, so make it a wall-clock time in `zone`.
        parts["UNTIL"] = _until_wall(parts["UNTIL"], zone).strftime("%Y%m%dT%H%M%S")
    text = ";".join(f"{name}={value}" for name, value in parts.items())
    try:
        # A start whose time is in BYHOUR/BYMINUTE/BYSECOND, because with FREQ=HOURLY and
        # INTERVAL some starts can never reach them: that is for the real start to decide.
        times = (_numbers(name, parts[name]) if name in parts else None for name in _CLOCK)
        rrulestr(text, dtstart=_neutral_start(*times))
    except (ValueError, TypeError) as exc:
        raise RecurrenceError(f"invalid recurrence rule: {exc}") from None
    return _spec(parts), text


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
    if "BYDAY" in parts and freq in ("MONTHLY", "YEARLY"):
        _check_nth_weekdays(parts["BYDAY"], freq == "YEARLY" and "BYMONTH" not in parts)
    if "UNTIL" in parts:
        _until_wall(parts["UNTIL"], ZoneInfo("UTC"))  # the format; the zone comes later
    return parts


def _check_nth_weekdays(value: str, in_year: bool) -> None:
    # "2MO" is the second Monday of the year, or of each month with BYMONTH or FREQ=MONTHLY;
    # past the last one there can be, dateutil crashes (IndexError).
    most, scope = (53, "year") if in_year else (5, "month")
    for item in value.split(","):
        digits = item.strip().split("(")[-1].strip("+-)").rstrip("MOTUWEHFRSA")
        if digits.isdigit() and int(digits) > most:
            raise RecurrenceError(
                f"BYDAY={value}: {item.strip()} is out of range (a {scope} has at most {most}"
                f" of each weekday: from 1 to {most}, or from -{most} to -1 from its end)"
            )


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


# --- the rule as dateutil's keyword arguments ---------------------------------------------

_Freq = Literal[0, 1, 2, 3, 4, 5, 6]
_FREQ_CODES: dict[str, _Freq] = {
    "YEARLY": YEARLY, "MONTHLY": MONTHLY, "WEEKLY": WEEKLY, "DAILY": DAILY,
    "HOURLY": HOURLY, "MINUTELY": MINUTELY, "SECONDLY": SECONDLY,
}  # fmt: skip
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_CLOCK = ("BYHOUR", "BYMINUTE", "BYSECOND")


@dataclass(frozen=True)
class _Spec:
    """A checked rule as the keyword arguments of dateutil's rrule (UNTIL a wall-clock time)."""

    freq: _Freq
    interval: int
    wkst: int
    count: int | None = None
    until: datetime | None = None
    bysetpos: tuple[int, ...] | None = None
    bymonth: tuple[int, ...] | None = None
    bymonthday: tuple[int, ...] | None = None
    byyearday: tuple[int, ...] | None = None
    byweekno: tuple[int, ...] | None = None
    byweekday: tuple[tuple[int, int | None], ...] | None = None  # (MO=0..SU=6, nth or None)
    byhour: tuple[int, ...] | None = None
    byminute: tuple[int, ...] | None = None
    bysecond: tuple[int, ...] | None = None

    def has_day_parts(self) -> bool:
        return any(
            part is not None
            for part in (self.byweekno, self.byyearday, self.bymonthday, self.byweekday)
        )

    def explicit(self, start: datetime) -> _Spec:
        """The same rule with what dateutil takes from the start written out.

        dateutil fills in parts the rule leaves out from DTSTART (FREQ=MONTHLY alone means on
        DTSTART's day of the month, FREQ=DAILY at DTSTART's time of day); written out, the
        rule means the same from another DTSTART in one of its periods.
        """
        changes: dict[str, Any] = {}
        if not self.has_day_parts():
            if self.freq == YEARLY:
                changes["bymonth"] = self.bymonth or (start.month,)
                changes["bymonthday"] = (start.day,)
            elif self.freq == MONTHLY:
                changes["bymonthday"] = (start.day,)
            elif self.freq == WEEKLY:
                changes["byweekday"] = ((start.weekday(), None),)
        if self.byhour is None and self.freq < HOURLY:
            changes["byhour"] = (start.hour,)
        if self.byminute is None and self.freq < MINUTELY:
            changes["byminute"] = (start.minute,)
        if self.bysecond is None and self.freq < SECONDLY:
            changes["bysecond"] = (start.second,)
        return replace(self, **changes)

    def make(self, dtstart: datetime, **changes: Any) -> rrule:
        spec = replace(self, **changes) if changes else self
        days = None
        if spec.byweekday is not None:
            days = [weekday(day, n) for day, n in spec.byweekday]
        return rrule(
            spec.freq,
            dtstart=dtstart,
            interval=spec.interval,
            wkst=spec.wkst,
            count=spec.count,
            until=spec.until,
            bysetpos=spec.bysetpos,
            bymonth=spec.bymonth,
            bymonthday=spec.bymonthday,
            byyearday=spec.byyearday,
            byweekno=spec.byweekno,
            byweekday=days,
            byhour=spec.byhour,
            byminute=spec.byminute,
            bysecond=spec.bysecond,
        )


def _spec(parts: dict[str, str]) -> _Spec:
    """`parts` (already accepted by dateutil's parser) read the way that parser reads them."""

    def numbers(name: str) -> tuple[int, ...] | None:
        if name not in parts:
            return None
        return tuple(sorted({int(item) for item in parts[name].split(",")}))

    until = None
    if "UNTIL" in parts:
        until = datetime.strptime(parts["UNTIL"], "%Y%m%dT%H%M%S")
    return _Spec(
        freq=_FREQ_CODES[parts["FREQ"]],
        interval=int(parts.get("INTERVAL", "1")),
        # dateutil's own default, read the same way.
        wkst=_WEEKDAYS.index(parts["WKST"]) if "WKST" in parts else calendar.firstweekday(),
        count=int(parts["COUNT"]) if "COUNT" in parts else None,
        until=until,
        bysetpos=numbers("BYSETPOS"),
        bymonth=numbers("BYMONTH"),
        bymonthday=numbers("BYMONTHDAY"),
        byyearday=numbers("BYYEARDAY"),
        byweekno=numbers("BYWEEKNO"),
        byweekday=_weekdays(parts["BYDAY"]) if "BYDAY" in parts else None,
        byhour=numbers("BYHOUR"),
        byminute=numbers("BYMINUTE"),
        bysecond=numbers("BYSECOND"),
    )


def _weekdays(value: str) -> tuple[tuple[int, int | None], ...]:
    # As dateutil's parser: "MO", "+1MO", "-2FR" or "FR(-2)".
    days: set[tuple[int, int | None]] = set()
    for item in value.split(","):
        if "(" in item:
            name, _, rest = item.partition("(")
            days.add((_WEEKDAYS.index(name), int(rest.rstrip(")"))))
            continue
        name = item.lstrip("+-0123456789")
        nth = item[: len(item) - len(name)]
        days.add((_WEEKDAYS.index(name), int(nth) if nth else None))
    return tuple(sorted(days, key=lambda day: (day[0], day[1] or 0)))


def _neutral_start(
    hours: Sequence[int] | None, minutes: Sequence[int] | None, seconds: Sequence[int] | None
) -> datetime:
    """A start that cannot be what makes the rule fail: its time is one the rule allows."""
    return datetime(2000, 1, 3, min(hours or (9,)), min(minutes or (0,)), min(seconds or (0,)))


def _never(spec: _Spec, start: datetime | None) -> RecurrenceError:
    if start is None:
        return RecurrenceError(
            "this recurrence rule never matches: no date and time fits all of its parts"
        )
    when = f"the start ({start:%Y-%m-%d %H:%M})"
    span = f"between {when} and its UNTIL" if spec.until is not None else f"from {when} on"
    return RecurrenceError(f"this recurrence rule never matches: it gives no class {span}")


# --- the first period that holds a time, in bounded work ------------------------------------
#
# dateutil looks for a rule's next time period by period (year, month, week, day, hour...)
# and only gives up past year 9999; UNTIL only stops it once it finds a time. A rule that
# never matches ("FREQ=DAILY;BYYEARDAY=1;BYMONTH=2") therefore costs seconds of CPU, and a
# rare one costs as much before its first time. `_first_period` finds where the first time
# is without that walk, using two facts:
#   - The Gregorian calendar repeats every 400 years (146097 days, a whole number of weeks),
#     and what dateutil computes for one year (which days pass BYMONTH, BYWEEKNO, BYYEARDAY,
#     BYMONTHDAY, BYDAY; which are the nth weekdays; BYSETPOS) depends only on the year's
#     "type": its 1 January's weekday and whether it and its neighbours are leap years.
#     So dateutil is asked about one period per type (a handful of short queries) and the
#     answers are reused; INTERVAL's phase is plain modular arithmetic.
#   - A query of one period terminates at once when the next period is past year 9999: a
#     huge INTERVAL. For weeks and days dateutil then steps month by month to year 9999,
#     so such a query is made on a year of the same type close to 9999.
# The search covers the rule's whole pattern (calendar cycle combined with INTERVAL) or
# runs to UNTIL / year 9999, whichever comes first, so "nothing found" is exact.

_YearType = tuple[int, bool, bool, bool]
_CYCLE_DAYS = 146_097  # 400 Gregorian years; 20871 weeks; 4800 months
_LAST = datetime(9999, 12, 31, 23, 59, 59)
_SINGLE = {YEARLY: 10_000, MONTHLY: 120_000, WEEKLY: 30_000, DAILY: 200_000}  # INTERVALs
_UNIT_SECONDS = {HOURLY: 3600, MINUTELY: 60, SECONDLY: 1}


@cache
def _year_type(year: int, weeks: bool = True) -> _YearType:
    """What dateutil's view of `year` depends on: its 1 January's weekday and length, and
    with BYWEEKNO (weeks straddle years) whether the years around it are leap years."""
    leap = calendar.isleap(year)
    if not weeks:
        return (date(year, 1, 1).weekday(), False, leap, False)
    return (date(year, 1, 1).weekday(), calendar.isleap(year - 1), leap, calendar.isleap(year + 1))


@cache
def _late_years() -> dict[_YearType, int]:
    """For each year type, the latest year of that type before 9999 (a full cycle has all)."""
    latest: dict[_YearType, int] = {}
    for year in range(9998, 9998 - 400, -1):
        latest.setdefault(_year_type(year), year)
    return latest


def _late(moment: datetime) -> datetime:
    """`moment` moved to a year of the same type close to 9999 (same weekday, same day)."""
    return moment.replace(year=_late_years()[_year_type(moment.year)])


def _holds(spec: _Spec, start: datetime) -> bool:
    """Whether the rule's first period from `start` holds a time (`start` itself or later)."""
    single = spec.make(start, interval=_SINGLE[spec.freq], count=None, until=None)
    return next(iter(single), None) is not None


@lru_cache(maxsize=1024)
def _first_period(spec: _Spec, start: datetime) -> datetime | None:
    """Where dateutil should start so that the period it examines first holds `spec`'s first
    time from `start` on: `start` itself, or the beginning of a later period in phase with it.
    None if the rule gives no time from `start` up to UNTIL or year 9999.

    `spec` is explicit (see `_Spec.explicit`) for `start`.
    """
    limit = spec.until if spec.until is not None and spec.until < _LAST else _LAST
    if start > limit:
        return None
    if spec.freq == YEARLY:
        return _first_year(spec, start, limit)
    if spec.freq == MONTHLY:
        return _first_month(spec, start, limit)
    if spec.freq == WEEKLY:
        return _first_week(spec, start, limit)
    if spec.freq == DAILY:
        return _first_day(spec, start, limit)
    return _first_clock_period(spec, start, limit)


def _first_year(spec: _Spec, start: datetime, limit: datetime) -> datetime | None:
    if _holds(spec, start):
        return start
    known: dict[_YearType, bool] = {}
    # Years start + k * INTERVAL; their places in the 400-year cycle repeat after this many.
    for k in range(1, 400 // math.gcd(spec.interval, 400) + 1):
        year = start.year + k * spec.interval
        if year > limit.year:
            return None
        key = _year_type(year, spec.byweekno is not None)
        if key not in known:
            known[key] = _holds(spec, datetime(year, 1, 1))
        if known[key]:
            return datetime(year, 1, 1)
    return None


def _first_month(spec: _Spec, start: datetime, limit: datetime) -> datetime | None:
    if _holds(spec, start):
        return start
    known: dict[tuple[_YearType, int], bool] = {}
    first = start.year * 12 + start.month - 1
    for k in range(1, 4800 // math.gcd(spec.interval, 4800) + 1):
        year, month = divmod(first + k * spec.interval, 12)
        if year > 9999 or datetime(year, month + 1, 1) > limit:
            return None
        key = (_year_type(year, spec.byweekno is not None), month)
        if key not in known:
            known[key] = _holds(spec, datetime(year, month + 1, 1))
        if known[key]:
            return datetime(year, month + 1, 1)
    return None


def _first_week(spec: _Spec, start: datetime, limit: datetime) -> datetime | None:
    # The first period runs from `start`'s day to the next WKST, the next ones are whole
    # weeks from WKST, every INTERVAL weeks.
    if _holds(spec, _late(start)):
        return start
    need = _days_needed(spec.bysetpos, _times_per_day(spec))
    if need is None or need > 7:
        return None
    week0 = start.toordinal() - (start.weekday() - spec.wkst) % 7
    step = 7 * spec.interval
    days = _AllowedDays(spec)
    found = _scan(
        lambda year: days.weeks(year, need),
        low=week0 + step,
        high=limit.toordinal(),
        modulus=step,
        residues=frozenset({week0 % step}),
    )
    return None if found is None else datetime.fromordinal(found)


def _first_day(spec: _Spec, start: datetime, limit: datetime) -> datetime | None:
    if _days_needed(spec.bysetpos, _times_per_day(spec)) != 1:
        return None  # BYSETPOS picks past the times one day has
    if _holds(spec, _late(start)):
        return start
    day0 = start.toordinal()
    days = _AllowedDays(spec)
    found = _scan(
        days.days,
        low=day0 + 1,
        high=limit.toordinal(),
        modulus=spec.interval,
        residues=frozenset({day0 % spec.interval}),
    )
    return None if found is None else datetime.fromordinal(found)


def _first_clock_period(spec: _Spec, start: datetime, limit: datetime) -> datetime | None:
    """FREQ=HOURLY, MINUTELY or SECONDLY: periods of one hour, minute or second.

    Which periods hold a time depends on the day (BYMONTH, BYDAY...) and on the time of day
    (BYHOUR, BYMINUTE, BYSECOND); INTERVAL decides which times of day each day's periods
    fall on, a pattern that repeats every `modulus` days.
    """
    unit = _UNIT_SECONDS[spec.freq]
    per_day = 86_400 // unit
    if spec.freq == HOURLY:
        per_period = len(spec.byminute or ()) * len(spec.bysecond or ())
    else:
        per_period = len(spec.bysecond or ()) if spec.freq == MINUTELY else 1
    if _days_needed(spec.bysetpos, per_period) != 1:
        return None  # BYSETPOS picks past the times one period has
    offset = (start.hour * 3600 + start.minute * 60 + start.second) // unit
    modulus = spec.interval // math.gcd(spec.interval, per_day)
    phases = _day_phases(spec, offset, per_day, modulus)
    if not phases:
        return None  # no period ever falls on a time of day the rule allows
    residues = frozenset((start.toordinal() + n) % modulus for n in phases)
    if len(residues) == modulus:
        modulus, residues = 1, frozenset({0})  # any day will do
    day0 = start.toordinal()
    days = _AllowedDays(spec)
    if day0 - date(start.year, 1, 1).toordinal() in days.days(start.year)[1]:
        # The first day: the rule's own periods, minus the day parts (the day passes them),
        # stopped at midnight. dateutil moves to the next time of day that fits, so this
        # ends within a day or two.
        midnight = datetime.combine(start.date(), time(23, 59, 59))
        rest = spec.make(
            start, bymonth=None, bymonthday=None, byyearday=None, byweekno=None,
            byweekday=None, count=None, until=min(midnight, limit),
        )  # fmt: skip
        try:
            if next(iter(rest), None) is not None:
                return start
        except ValueError:
            pass
    found = _scan(
        days.days,
        low=day0 + 1,
        high=limit.toordinal(),
        modulus=modulus,
        residues=residues,
    )
    if found is None:
        return None
    # The first period in phase at or after that day's midnight; the day holds a period
    # at an allowed time, so dateutil reaches it within the day.
    elapsed = (found - day0) * per_day - offset
    period = offset - (-elapsed // spec.interval) * spec.interval
    return datetime.combine(start.date(), time()) + timedelta(seconds=period * unit)


def _day_phases(spec: _Spec, offset: int, per_day: int, modulus: int) -> set[int]:
    """The n (mod `modulus`) such that n days after the start, some period falls on a time of
    day the rule allows. Periods are `offset + k * INTERVAL` units from the start's midnight,
    so on day n they are the times of day v with v = offset - n * per_day (mod INTERVAL)."""
    step = spec.interval
    hours = spec.byhour or range(24)
    if spec.freq == HOURLY:
        clock: list[Sequence[int]] = [hours]
    elif spec.freq == MINUTELY:
        clock = [hours, spec.byminute or range(60)]
    else:
        clock = [hours, spec.byminute or range(60), spec.bysecond or range(60)]
    if step <= per_day and math.prod(len(values) for values in clock) == per_day:
        return set(range(modulus))  # every time of day is allowed and every day has periods
    # The allowed times' residues modulo INTERVAL (all of them found: stop looking).
    remainders: set[int] = set()
    for parts in itertools.product(*clock):
        remainders.add(_clock_value(parts) % step)
        if len(remainders) == step:
            break
    # n * per_day = offset - r (mod INTERVAL), solved for n.
    common = math.gcd(per_day, step)
    inverse = pow(per_day // common, -1, modulus) if modulus > 1 else 0
    return {
        (offset - r) // common * inverse % modulus for r in remainders if (offset - r) % common == 0
    }


def _clock_value(parts: tuple[int, ...]) -> int:
    value = 0
    for part in parts:
        value = value * 60 + part
    return value


def _times_per_day(spec: _Spec) -> int:
    return len(spec.byhour or ()) * len(spec.byminute or ()) * len(spec.bysecond or ())


def _days_needed(bysetpos: tuple[int, ...] | None, per_day: int) -> int | None:
    """How many allowed days a period needs for BYSETPOS to pick something (1 without it).

    dateutil numbers a period's times day by day, `per_day` each: position p is on the
    ((p - 1) // per_day + 1)th day, -p on the (p // per_day)th day from the end.
    """
    if not bysetpos:
        return 1
    if per_day < 1:
        return None
    return min((p - 1) // per_day + 1 if p > 0 else -(p // per_day) for p in bysetpos)


class _AllowedDays:
    """The days a rule's day parts (BYMONTH, BYWEEKNO, BYYEARDAY, BYMONTHDAY, BYDAY)
    allow, year by year, as dateutil's iteration sees them; asked once per year type."""

    def __init__(self, spec: _Spec) -> None:
        self.spec = spec
        self._by_weeks = spec.byweekno is not None
        self._days: dict[_YearType, tuple[tuple[int, ...], frozenset[int]]] = {}
        self._weeks: dict[Any, tuple[tuple[int, ...], frozenset[int]]] = {}

    def days(self, year: int) -> tuple[tuple[int, ...], frozenset[int]]:
        """The allowed days of `year`, as offsets from its 1 January (sorted, and as a set)."""
        key = _year_type(year, self._by_weeks)
        if key not in self._days:
            offsets = self._query(year)
            self._days[key] = (offsets, frozenset(offsets))
        return self._days[key]

    def _query(self, year: int) -> tuple[int, ...]:
        spec = self.spec
        first = date(year, 1, 1).toordinal()
        if not spec.has_day_parts():
            months = spec.bymonth or range(1, 13)
            return tuple(
                day - first
                for month in months
                for day in range(
                    date(year, month, 1).toordinal(),
                    date(year, month, 1).toordinal() + calendar.monthrange(year, month)[1],
                )
            )
        # FREQ=YEARLY looks at the whole year at once. Numbered BYDAY (1MO) only means
        # something per month or year; below FREQ=MONTHLY dateutil reads it as a plain day.
        one_year = rrule(
            YEARLY,
            dtstart=datetime(year, 1, 1),
            interval=_SINGLE[YEARLY],
            wkst=spec.wkst,
            bymonth=spec.bymonth,
            bymonthday=spec.bymonthday,
            byyearday=spec.byyearday,
            byweekno=spec.byweekno,
            byweekday=None if spec.byweekday is None else [day for day, _ in spec.byweekday],
            byhour=0,
            byminute=0,
            bysecond=0,
        )
        return tuple(moment.toordinal() - first for moment in one_year)

    def weeks(self, year: int, need: int) -> tuple[tuple[int, ...], frozenset[int]]:
        """The weeks that begin in `year` (on WKST) holding at least `need` allowed days, as
        offsets of their first day from `year`'s 1 January."""
        following = _year_type(year + 1, self._by_weeks) if year < 9999 else None
        key = (_year_type(year, self._by_weeks), following, need)
        if key not in self._weeks:
            allowed = self._week_days(year)
            wkst = self.spec.wkst
            begin = (wkst - date(year, 1, 1).weekday()) % 7
            length = 365 + calendar.isleap(year)
            starts = tuple(
                week
                for week in range(begin, length, 7)
                if bisect_right(allowed, week + 6) - bisect_left(allowed, week) >= need
            )
            self._weeks[key] = (starts, frozenset(starts))
        return self._weeks[key]

    def _week_days(self, year: int) -> tuple[int, ...]:
        """Allowed days of the weeks that begin in `year`, offsets from its 1 January.

        A week that begins in December and ends in January is judged, January days
        included, as part of the year it begins in. That only differs from judging each day
        in its own year for BYWEEKNO, so then dateutil is asked about that week itself.
        """
        own = self.days(year)[0]
        length = 365 + calendar.isleap(year)
        if year == 9999:
            return own
        if self.spec.byweekno is None:
            following = self.days(year + 1)[0]
            end = (self.spec.wkst - date(year + 1, 1, 1).weekday()) % 7
            return own + tuple(length + day for day in following if day < end)
        late = _late(datetime(year, 12, 31))
        last = late - timedelta(days=(late.weekday() - self.spec.wkst) % 7)
        week = self.spec.make(
            last, interval=_SINGLE[WEEKLY], count=None, until=None, bysetpos=None,
            byhour=(0,), byminute=(0,), bysecond=(0,),
        )  # fmt: skip
        january = date(late.year + 1, 1, 1).toordinal()
        spill = tuple(
            length + moment.toordinal() - january for moment in week if moment.year > late.year
        )
        return own + spill


def _scan(
    items: Callable[[int], tuple[tuple[int, ...], frozenset[int]]],
    *,
    low: int,
    high: int,
    modulus: int,
    residues: frozenset[int],
) -> int | None:
    """The first day (ordinal) from `low` to `high` that `items` gives for its year and whose
    ordinal modulo `modulus` is in `residues`, or None.

    `items(year)` are offsets from that year's 1 January, sorted, and a set of them; the
    years' lists must not overlap. The combined pattern repeats after lcm(400 years,
    `modulus` days), so the search stops there at the latest.
    """
    high = min(high, low + math.lcm(_CYCLE_DAYS, modulus) - 1)
    if low > high:
        return None
    year = date.fromordinal(low).year
    while year <= 9999:
        first = date(year, 1, 1).toordinal()
        if first > high:
            return None
        offsets, known = items(year)
        a = bisect_left(offsets, low - first)
        b = bisect_right(offsets, high - first)
        if a < b:
            if modulus == 1:
                return first + offsets[a]
            span = offsets[b - 1] - offsets[a]
            if len(residues) * (span // modulus + 1) < b - a:
                # Fewer days in phase than allowed days: walk the days in phase.
                best: int | None = None
                lowest, highest = first + offsets[a], first + offsets[b - 1]
                for residue in residues:
                    day = lowest + (residue - lowest) % modulus
                    while day <= highest and (best is None or day < best):
                        if day - first in known:
                            best = day
                            break
                        day += modulus
                if best is not None:
                    return best
            else:
                for index in range(a, b):
                    if (first + offsets[index]) % modulus in residues:
                        return first + offsets[index]
        year += 1
    return None
