"""A schedule's RRULE, parsed and checked into what classes need, or refused by name.

Classes repeat DAILY, WEEKLY, MONTHLY or YEARLY, at the first class's time of day. The
parts a rule may have are FREQ, INTERVAL, COUNT, UNTIL, BYDAY (numbered, "2MO" or "-1FR",
only with MONTHLY or YEARLY), BYMONTHDAY, BYMONTH and WKST. Everything else RFC 5545 knows
(FREQ=HOURLY/MINUTELY/SECONDLY, BYHOUR, BYMINUTE, BYSECOND, BYSETPOS, BYWEEKNO, BYYEARDAY)
is refused with a message naming it: no class needs it, and each one multiplies the ways a
rule can search for a time that never comes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

__all__ = ["RecurrenceError", "Rule", "parse_rule"]


class RecurrenceError(ValueError):
    """A schedule's zone, rule or duration is unusable; the message is meant for the user."""


FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")  # index = date.weekday()
_SUPPORTED = frozenset(
    {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST"}
)
_UNSUPPORTED = frozenset({"BYSETPOS", "BYHOUR", "BYMINUTE", "BYSECOND", "BYWEEKNO", "BYYEARDAY"})
_SUB_DAILY = frozenset({"HOURLY", "MINUTELY", "SECONDLY"})
# (lowest, highest, negatives allowed). COUNT and INTERVAL are capped for sanity only.
_RANGES: dict[str, tuple[int, int, bool]] = {
    "COUNT": (1, 1_000_000, False),
    "INTERVAL": (1, 1_000_000, False),
    "BYMONTH": (1, 12, False),
    "BYMONTHDAY": (1, 31, True),
}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # leap years included
_UNTIL = re.compile(r"(\d{8})(?:T(\d{6})(Z)?)?")
_BYDAY = re.compile(r"([+-]?\d{1,2})?([A-Z]{2})|([A-Z]{2})\(([+-]?\d{1,2})\)")
_EXAMPLE = "such as FREQ=WEEKLY;BYDAY=MO,WE"
_WHAT_CLASSES_USE = (
    "a class schedule uses FREQ (DAILY, WEEKLY, MONTHLY or YEARLY), INTERVAL, COUNT, UNTIL,"
    " BYDAY, BYMONTHDAY, BYMONTH and WKST"
)


@dataclass(frozen=True)
class Rule:
    """A checked rule. Weekdays are 0 (MO) to 6 (SU); BYDAY items are (weekday, nth or None)."""

    freq: str  # one of FREQUENCIES
    interval: int = 1
    count: int | None = None
    until: datetime | None = None  # naive; in UTC if until_utc, else a wall-clock time
    until_utc: bool = False
    bymonth: frozenset[int] | None = None
    bymonthday: frozenset[int] | None = None
    byday: frozenset[tuple[int, int | None]] | None = None
    wkst: int = 0


def parse_rule(rule: str) -> Rule:
    """`rule` ("FREQ=WEEKLY;BYDAY=MO,WE", optionally after "RRULE:") as a Rule.

    Raises RecurrenceError, naming the part, for anything malformed or not supported.
    DTSTART, EXDATE or several lines are refused: the start and the exceptions are separate
    fields of a schedule.
    """
    parts = _parts(rule)
    freq = parts.get("FREQ")
    if freq is None:
        raise RecurrenceError(f"the recurrence rule needs FREQ, {_EXAMPLE}")
    if freq in _SUB_DAILY:
        raise RecurrenceError(
            f"FREQ={freq} is not supported: classes repeat DAILY, WEEKLY, MONTHLY or YEARLY,"
            " at the first class's time of day"
        )
    if freq not in FREQUENCIES:
        raise RecurrenceError(
            f"FREQ={freq} is not a frequency; use one of " + ", ".join(FREQUENCIES)
        )
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError("a recurrence rule may have COUNT or UNTIL, not both")
    numbers = {name: _numbers(name, parts[name]) for name in _RANGES if name in parts}
    bymonth = frozenset(numbers["BYMONTH"]) if "BYMONTH" in numbers else None
    bymonthday = frozenset(numbers["BYMONTHDAY"]) if "BYMONTHDAY" in numbers else None
    _check_month_days(bymonth, bymonthday)
    byday = None
    if "BYDAY" in parts:
        byday = _weekdays(parts["BYDAY"], freq, in_year=freq == "YEARLY" and bymonth is None)
    until, until_utc = (None, False)
    if "UNTIL" in parts:
        until, until_utc = _until(parts["UNTIL"])
    wkst = 0
    if "WKST" in parts:
        if parts["WKST"] not in WEEKDAYS:
            raise RecurrenceError(f"WKST={parts['WKST']} is not a weekday (MO, TU, ... SU)")
        wkst = WEEKDAYS.index(parts["WKST"])
    return Rule(
        freq=freq,
        interval=numbers.get("INTERVAL", [1])[0],
        count=numbers["COUNT"][0] if "COUNT" in numbers else None,
        until=until,
        until_utc=until_utc,
        bymonth=bymonth,
        bymonthday=bymonthday,
        byday=byday,
        wkst=wkst,
    )


def _parts(rule: str) -> dict[str, str]:
    """The rule's NAME=VALUE parts, names and values upper-cased."""
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
        if name in _UNSUPPORTED:
            raise RecurrenceError(
                f"{name} is not supported in a recurrence rule: {_WHAT_CLASSES_USE}"
            )
        if name not in _SUPPORTED:
            raise RecurrenceError(f"unknown part {name!r} in the recurrence rule")
        if name in parts:
            raise RecurrenceError(f"{name} appears twice in the recurrence rule")
        parts[name] = value
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


def _check_month_days(months: frozenset[int] | None, days: frozenset[int] | None) -> None:
    # "February 30th" could only be searched for in vain.
    if months is None or days is None:
        return
    if any(abs(day) <= _DAYS_IN_MONTH[month - 1] for month in months for day in days):
        return
    raise RecurrenceError(
        "the recurrence rule can never happen: no BYMONTHDAY falls in any BYMONTH"
    )


def _weekdays(value: str, freq: str, *, in_year: bool) -> frozenset[tuple[int, int | None]]:
    """BYDAY items: "MO", "+2MO", "-1FR" (or dateutil's "FR(-1)"), numbered ones counted in
    the month, or in the year with FREQ=YEARLY and no BYMONTH."""
    most, scope = (53, "year") if in_year else (5, "month")
    days: set[tuple[int, int | None]] = set()
    for raw in value.split(","):
        item = raw.strip()
        match = _BYDAY.fullmatch(item)
        if match is None or (match[2] or match[3]) not in WEEKDAYS:
            raise RecurrenceError(
                f"BYDAY={value}: {item!r} is not a weekday such as MO, 2MO or -1FR"
            )
        name = match[2] or match[3]
        nth_text = match[1] or match[4]
        nth = int(nth_text) if nth_text else None
        if nth is not None:
            if freq not in ("MONTHLY", "YEARLY"):
                raise RecurrenceError(
                    f"BYDAY={value}: a numbered weekday ({item}) only means something with"
                    " FREQ=MONTHLY or FREQ=YEARLY"
                )
            if not 1 <= abs(nth) <= most:
                raise RecurrenceError(
                    f"BYDAY={value}: {item} is out of range (a {scope} has at most {most}"
                    f" of each weekday: from 1 to {most}, or from -{most} to -1 from its end)"
                )
        days.add((WEEKDAYS.index(name), nth))
    return frozenset(days)


def _until(value: str) -> tuple[datetime, bool]:
    """UNTIL as a naive time and whether it is in UTC.

    "20250630T150000Z" is an instant, "20250630T170000" a wall-clock time, and a bare date
    "20250630" means up to the end of that day (wall clock), inclusive.
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
            return datetime.strptime(day, "%Y%m%d").replace(hour=23, minute=59, second=59), False
        return datetime.strptime(day + clock, "%Y%m%d%H%M%S"), bool(utc)
    except ValueError:
        raise problem from None
