"""control.scheduling.recurrence: wall-clock recurrence across DST, exceptions, windows and
clashes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr

from control.scheduling.clashes import first_clash
from control.scheduling.recurrence import (
    MAX_SPAN_DAYS,
    Occurrence,
    RecurrenceError,
    check_rrule,
    check_timezone,
    expand,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def occurrences(
    *,
    start_local: datetime,
    rrule: str | None,
    timezone: str = "Europe/Paris",
    duration: timedelta = HOUR,
    exdates: list[datetime] | None = None,
    window: tuple[datetime, datetime] = (utc(2000, 1, 1), utc(2100, 1, 1)),
    limit: int = 5000,
) -> list[Occurrence]:
    return expand(
        start_local=start_local,
        duration=duration,
        timezone=timezone,
        rrule=rrule,
        exdates=exdates or [],
        window_start=window[0],
        window_end=window[1],
        limit=limit,
    )


def local(occurrence: Occurrence, zone: ZoneInfo) -> datetime:
    return occurrence.start.astimezone(zone).replace(tzinfo=None)


# --- wall clock across DST -------------------------------------------------------------


def test_weekly_keeps_paris_wall_clock_across_both_dst_changes() -> None:
    # Mondays from January to December 2024: Paris moves to summer time on 31 March and
    # back on 27 October.
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0), rrule="FREQ=WEEKLY;UNTIL=20241231T235959Z"
    )

    assert len(result) == 53
    assert all(local(o, PARIS).time() == datetime(2024, 1, 1, 9, 0).time() for o in result)
    by_day = {o.start.date().isoformat(): o for o in result}
    assert by_day["2024-03-25"].start == utc(2024, 3, 25, 8, 0)  # winter, UTC+1
    assert by_day["2024-04-01"].start == utc(2024, 4, 1, 7, 0)  # summer, UTC+2
    assert by_day["2024-10-21"].start == utc(2024, 10, 21, 7, 0)
    assert by_day["2024-10-28"].start == utc(2024, 10, 28, 8, 0)  # winter again
    assert all(o.end - o.start == HOUR for o in result)
    assert all(o.start.tzinfo is UTC and o.end.tzinfo is UTC for o in result)


def test_weekly_keeps_new_york_wall_clock_across_dst() -> None:
    # New York changes on 10 March and 3 November 2024, weeks apart from Europe.
    result = occurrences(
        start_local=datetime(2024, 3, 4, 18, 30),
        timezone="America/New_York",
        rrule="FREQ=WEEKLY;BYDAY=MO;COUNT=40",
    )

    starts = [o.start for o in result]
    assert utc(2024, 3, 4, 23, 30) in starts  # EST, UTC-5
    assert utc(2024, 3, 11, 22, 30) in starts  # EDT, UTC-4
    assert utc(2024, 10, 28, 22, 30) in starts
    assert utc(2024, 11, 4, 23, 30) in starts  # EST again
    assert {local(o, NEW_YORK).strftime("%H:%M") for o in result} == {"18:30"}


def test_nonexistent_time_moves_forward_by_the_gap() -> None:
    # 31 March 2024 Paris: 02:00 jumps to 03:00, so 02:30 does not exist that day.
    result = occurrences(start_local=datetime(2024, 3, 30, 2, 30), rrule="FREQ=DAILY;COUNT=3")

    assert [local(o, PARIS) for o in result] == [
        datetime(2024, 3, 30, 2, 30),
        datetime(2024, 3, 31, 3, 30),
        datetime(2024, 4, 1, 2, 30),
    ]
    assert result[1].start == utc(2024, 3, 31, 1, 30)


def test_ambiguous_time_takes_the_first_instant() -> None:
    # 27 October 2024 Paris: 03:00 falls back to 02:00, so 02:30 happens twice.
    (only,) = occurrences(start_local=datetime(2024, 10, 27, 2, 30), rrule=None)

    assert only.start == utc(2024, 10, 27, 0, 30)  # 02:30 CEST, not 01:30Z (02:30 CET)
    assert only.end == utc(2024, 10, 27, 1, 30)


def test_duration_is_elapsed_time_across_a_change() -> None:
    # A 3-hour class from 01:00 on the spring-forward night ends at 05:00 on the wall clock.
    (only,) = occurrences(
        start_local=datetime(2024, 3, 31, 1, 0), rrule=None, duration=timedelta(hours=3)
    )

    assert only.end.astimezone(PARIS).replace(tzinfo=None) == datetime(2024, 3, 31, 5, 0)


# --- single occurrences, COUNT, UNTIL, EXDATE ---------------------------------------------


def test_no_rule_is_a_single_occurrence() -> None:
    result = occurrences(start_local=datetime(2024, 6, 3, 14, 0), rrule=None, duration=2 * HOUR)

    assert result == [Occurrence(start=utc(2024, 6, 3, 12, 0), end=utc(2024, 6, 3, 14, 0))]


def test_count_limits_the_number_of_occurrences() -> None:
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0), rrule="RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=5"
    )

    assert [local(o, PARIS).date().isoformat() for o in result] == [
        "2024-01-01",
        "2024-01-03",
        "2024-01-08",
        "2024-01-10",
        "2024-01-15",
    ]


def test_until_in_utc_is_inclusive() -> None:
    # 09:00 Paris on 3 January is 08:00Z, exactly UNTIL.
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0), rrule="FREQ=DAILY;UNTIL=20240103T080000Z"
    )

    assert [o.start for o in result] == [
        utc(2024, 1, 1, 8, 0),
        utc(2024, 1, 2, 8, 0),
        utc(2024, 1, 3, 8, 0),
    ]


def test_until_as_a_date_includes_that_whole_day() -> None:
    result = occurrences(start_local=datetime(2024, 1, 1, 9, 0), rrule="FREQ=DAILY;UNTIL=20240103")

    assert len(result) == 3
    assert local(result[-1], PARIS) == datetime(2024, 1, 3, 9, 0)


def test_until_as_a_local_time() -> None:
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0), rrule="FREQ=DAILY;UNTIL=20240103T085959"
    )

    assert len(result) == 2


def test_naive_exdate_skips_that_occurrence() -> None:
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0),
        rrule="FREQ=WEEKLY;COUNT=4",
        exdates=[datetime(2024, 1, 15, 9, 0)],
    )

    assert [local(o, PARIS).date().isoformat() for o in result] == [
        "2024-01-01",
        "2024-01-08",
        "2024-01-22",
    ]


def test_aware_exdate_is_converted_to_the_zone_wall_clock() -> None:
    # 07:00Z on 8 April is 09:00 in Paris (summer time).
    result = occurrences(
        start_local=datetime(2024, 4, 1, 9, 0),
        rrule="FREQ=WEEKLY;COUNT=3",
        exdates=[utc(2024, 4, 8, 7, 0)],
    )

    assert [o.start for o in result] == [utc(2024, 4, 1, 7, 0), utc(2024, 4, 15, 7, 0)]


def test_exdate_at_another_time_of_day_skips_nothing() -> None:
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0),
        rrule="FREQ=DAILY;COUNT=3",
        exdates=[datetime(2024, 1, 2, 10, 0)],
    )

    assert len(result) == 3


def test_exdate_matches_a_time_moved_by_the_spring_gap() -> None:
    result = occurrences(
        start_local=datetime(2024, 3, 30, 2, 30),
        rrule="FREQ=DAILY;COUNT=3",
        exdates=[utc(2024, 3, 31, 1, 30)],  # 03:30 CEST, where 02:30 ended up
    )

    assert [local(o, PARIS).day for o in result] == [30, 1]


# --- the window and the limit ------------------------------------------------------------


def test_window_keeps_occurrences_that_overlap_it() -> None:
    # Daily 09:00-11:00 Paris (08:00Z-10:00Z in January); window 2 Jan 09:00Z - 4 Jan 08:00Z.
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0),
        rrule="FREQ=DAILY",
        duration=2 * HOUR,
        window=(utc(2024, 1, 2, 9, 0), utc(2024, 1, 4, 8, 0)),
    )

    # 2 Jan started before the window but still runs in it; 4 Jan starts at its end.
    assert [o.start for o in result] == [utc(2024, 1, 2, 8, 0), utc(2024, 1, 3, 8, 0)]


def test_window_is_half_open() -> None:
    # An occurrence ending exactly at window_start is out.
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0),
        rrule="FREQ=DAILY",
        window=(utc(2024, 1, 2, 9, 0), utc(2024, 1, 3, 9, 0)),
    )

    assert [o.start for o in result] == [utc(2024, 1, 3, 8, 0)]


def test_start_after_the_window_gives_nothing() -> None:
    result = occurrences(
        start_local=datetime(2030, 1, 1, 9, 0),
        rrule="FREQ=DAILY",
        window=(utc(2024, 1, 1), utc(2024, 2, 1)),
    )

    assert result == []


def test_unbounded_rule_with_a_far_window_stops_at_the_limit() -> None:
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0),
        rrule="FREQ=DAILY",
        window=(utc(2024, 1, 1), datetime.max.replace(tzinfo=UTC)),
        limit=10,
    )

    assert len(result) == 10
    assert result[0].start == utc(2024, 1, 1, 8, 0)
    assert result[-1].start == utc(2024, 1, 10, 8, 0)


def test_unbounded_rule_stops_past_the_window() -> None:
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0),
        rrule="FREQ=DAILY",
        window=(utc(2024, 1, 1, 8, 0), utc(2024, 3, 1, 8, 0)),
    )

    assert len(result) == 60


def test_results_are_sorted_and_distinct_around_the_gap() -> None:
    # Samoa skipped 30 December 2011 (UTC-10 to UTC+14): 09:00 that day does not exist and
    # moves forward by the 24-hour gap onto 31 December 09:00, which the rule also gives;
    # each instant is one class.
    apia = ZoneInfo("Pacific/Apia")
    result = occurrences(
        start_local=datetime(2011, 12, 28, 9, 0),
        rrule="FREQ=DAILY;COUNT=5",
        timezone="Pacific/Apia",
    )

    starts = [o.start for o in result]
    assert starts == sorted(set(starts))
    assert [local(o, apia).strftime("%m-%d %H:%M") for o in result] == [
        "12-28 09:00",
        "12-29 09:00",
        "12-31 09:00",
        "01-01 09:00",
    ]


# --- errors --------------------------------------------------------------------------------


def test_check_rrule_accepts_with_or_without_prefix() -> None:
    check_rrule("FREQ=WEEKLY;BYDAY=MO,WE")
    check_rrule("RRULE:FREQ=WEEKLY;BYDAY=MO,WE")
    check_rrule("rrule:freq=monthly;byday=-1fr")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("", "empty"),
        ("FREQ=FORTNIGHTLY", "FREQ=FORTNIGHTLY is not a frequency"),
        ("BYDAY=MO", "needs FREQ"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY"),
        ("FREQ=WEEKLY;FOO=1", "unknown part 'FOO'"),
        ("FREQ=WEEKLY;COUNT", "not NAME=VALUE"),
        ("FREQ=WEEKLY;COUNT=2;COUNT=3", "COUNT appears twice"),
        ("FREQ=WEEKLY;COUNT=2;UNTIL=20240101", "COUNT or UNTIL, not both"),
        ("FREQ=WEEKLY;COUNT=0", "COUNT=0"),
        ("FREQ=WEEKLY;INTERVAL=0", "INTERVAL=0"),
        ("FREQ=DAILY;BYMONTH=13", "BYMONTH=13"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "can never happen"),
        ("FREQ=DAILY;UNTIL=2024-01-01", "UNTIL=2024-01-01 is not a date"),
        ("FREQ=DAILY;UNTIL=20241301", "UNTIL=20241301 is not a date"),
    ],
)
def test_malformed_rule_is_refused(rule: str, message: str) -> None:
    with pytest.raises(RecurrenceError, match=message):
        check_rrule(rule)


@pytest.mark.parametrize(
    "rule",
    [
        "DTSTART:20240101T090000\nRRULE:FREQ=WEEKLY",
        "DTSTART=20240101T090000;FREQ=WEEKLY",
        "DTSTART;TZID=Europe/Paris:20240101T090000",
    ],
)
def test_dtstart_inside_the_rule_is_refused(rule: str) -> None:
    with pytest.raises(RecurrenceError, match="must not contain DTSTART"):
        check_rrule(rule)


def test_several_lines_are_refused() -> None:
    with pytest.raises(RecurrenceError, match="single RRULE"):
        check_rrule("RRULE:FREQ=WEEKLY\nEXDATE:20240108T090000")


def test_expand_refuses_a_bad_rule() -> None:
    with pytest.raises(RecurrenceError, match="BYDAY"):
        occurrences(start_local=datetime(2024, 1, 1, 9, 0), rrule="FREQ=WEEKLY;BYDAY=XX")


def test_unknown_time_zone_is_refused() -> None:
    assert check_timezone("Europe/Paris") == PARIS
    for name in ["Europe/Pariss", "Europe", "", "../etc/passwd", "/etc/passwd", "localtime"]:
        with pytest.raises(RecurrenceError, match=r"unknown time zone .* IANA name"):
            check_timezone(name)
    with pytest.raises(RecurrenceError, match="unknown time zone 'Mars/Olympus'"):
        occurrences(start_local=datetime(2024, 1, 1, 9, 0), rrule=None, timezone="Mars/Olympus")


@pytest.mark.parametrize("duration", [timedelta(0), -HOUR])
def test_duration_must_be_positive(duration: timedelta) -> None:
    with pytest.raises(RecurrenceError, match=r"duration .* longer than zero"):
        occurrences(start_local=datetime(2024, 1, 1, 9, 0), rrule=None, duration=duration)


def test_recurrence_error_is_a_value_error() -> None:
    assert issubclass(RecurrenceError, ValueError)


# --- rules that never match, rare rules -------------------------------------------------
#
# dateutil looks for a rule's next time period by period up to year 9999: seconds of CPU
# for a rule that never matches. These must be refused, and quickly. The bound is generous:
# this guards against a hang, it is not a benchmark.

QUICK = 1.0  # seconds


def timed(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


NEVER = [
    # Whatever the start: 30 February, a fifth Monday on the 1st, a 53rd Monday on the 1st.
    ("FREQ=WEEKLY;BYMONTH=2;BYMONTHDAY=30", datetime(2024, 1, 1, 9, 0)),
    ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=-30;UNTIL=20310101T000000", datetime(2024, 1, 1, 9, 0)),
    ("FREQ=MONTHLY;BYMONTHDAY=1;BYDAY=5MO", datetime(2024, 1, 1, 9, 0)),
    ("FREQ=YEARLY;BYMONTHDAY=1;BYDAY=53MO", datetime(2024, 1, 1, 9, 0)),
    # Never from this start: every 7 days from a Tuesday is a Tuesday, every 12 months
    # from January is January.
    ("FREQ=DAILY;INTERVAL=7;BYDAY=MO", datetime(2024, 1, 2, 9, 0)),
    ("FREQ=MONTHLY;INTERVAL=12;BYMONTH=3", datetime(2024, 1, 1, 9, 0)),
    ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", datetime(2025, 1, 1, 9, 0)),
    # Feb 29 falls on a Monday in 2044, after UNTIL.
    ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;UNTIL=20401231", datetime(2025, 1, 1, 9, 0)),
    # UNTIL before the start.
    ("FREQ=WEEKLY;BYDAY=MO;UNTIL=20231231", datetime(2024, 1, 1, 9, 0)),
]


@pytest.mark.parametrize(("rule", "start"), NEVER)
def test_expand_refuses_a_rule_that_never_matches_quickly(rule: str, start: datetime) -> None:
    def call() -> None:
        with pytest.raises(RecurrenceError, match="never"):
            occurrences(start_local=start, rrule=rule)

    assert timed(call) < QUICK


@pytest.mark.parametrize(("rule", "start"), NEVER)
def test_check_rrule_with_a_start_refuses_a_rule_that_never_matches_quickly(
    rule: str, start: datetime
) -> None:
    later = start + timedelta(weeks=52)  # same weekday; a start expand was not asked about

    def call() -> None:
        with pytest.raises(RecurrenceError, match="never"):
            check_rrule(rule, later, "Europe/Paris")

    assert timed(call) < QUICK


def test_the_message_says_the_rule_never_matches() -> None:
    with pytest.raises(RecurrenceError, match=r"this recurrence rule never matches.*2024-01-02"):
        occurrences(start_local=datetime(2024, 1, 2, 9, 0), rrule="FREQ=DAILY;INTERVAL=7;BYDAY=MO")
    with pytest.raises(RecurrenceError, match=r"never matches.*UNTIL"):
        check_rrule("FREQ=WEEKLY;BYDAY=MO;UNTIL=20231231", datetime(2024, 1, 1, 9, 0))


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MONTHLY;BYMONTHDAY=1;BYDAY=5MO",
        "FREQ=YEARLY;BYMONTHDAY=1;BYDAY=53MO",
        "FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=1,2,3;BYDAY=-1SU",
    ],
)
def test_check_rrule_alone_refuses_a_rule_that_never_matches_whatever_the_start(
    rule: str,
) -> None:
    def call() -> None:
        with pytest.raises(RecurrenceError, match="never matches: no date and time fits"):
            check_rrule(rule)

    assert timed(call) < QUICK


@pytest.mark.parametrize(
    ("rule", "start", "first"),
    [
        ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29",
         datetime(2028, 1, 1, 9, 0), datetime(2028, 2, 29, 9)),
        ("FREQ=DAILY;INTERVAL=7;BYDAY=MO", datetime(2024, 1, 1, 9, 0), datetime(2024, 1, 1, 9)),
        ("FREQ=MONTHLY;INTERVAL=12;BYMONTH=3", datetime(2024, 3, 5, 9, 0), datetime(2024, 3, 5, 9)),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;UNTIL=20441231",
         datetime(2025, 1, 1, 9, 0), datetime(2044, 2, 29, 9)),
    ],
)  # fmt: skip
def test_a_rule_that_depends_on_its_start_is_checked_against_it(
    rule: str, start: datetime, first: datetime
) -> None:
    check_rrule(rule)  # some start works: the syntax check alone accepts it
    check_rrule(rule, start, "Europe/Paris")
    result = occurrences(start_local=start, rrule=rule, window=(utc(2024, 1, 1), utc(2100, 1, 1)))
    assert local(result[0], PARIS) == first


def test_leap_days_every_four_years() -> None:
    result = occurrences(
        start_local=datetime(2025, 3, 1, 9, 0), rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"
    )

    assert [local(o, PARIS) for o in result] == [
        datetime(year, 2, 29, 9, 0) for year in range(2028, 2100, 4)
    ]


@pytest.mark.parametrize(
    ("rule", "start"),
    [
        # Feb 29 on a Monday: 2044, 2072, 2112... reached in different ways.
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;COUNT=2", datetime(2017, 1, 2, 9, 0)),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", datetime(2017, 1, 1, 9, 0)),
        ("FREQ=MONTHLY;BYDAY=5MO;BYMONTH=2", datetime(2017, 1, 1, 9, 0)),
        ("FREQ=WEEKLY;BYMONTHDAY=29;BYMONTH=2;BYDAY=MO", datetime(2017, 1, 1, 9, 0)),
        # Every third week, only on 29 February.
        ("FREQ=WEEKLY;INTERVAL=3;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO,TU,WE,TH,FR,SA,SU",
         datetime(2025, 3, 1, 9, 0)),
        # The last Friday of the year, the 20th Monday, the second and last Sunday of months.
        ("FREQ=YEARLY;BYDAY=-1FR", datetime(2024, 1, 1, 9, 0)),
        ("FREQ=YEARLY;BYDAY=20MO;WKST=SU", datetime(2024, 6, 1, 9, 0)),
        ("FREQ=MONTHLY;INTERVAL=2;BYDAY=2SU,-1SU", datetime(2024, 1, 15, 9, 0)),
        # The 31st, only in months that have one; the last day of each month.
        ("FREQ=MONTHLY", datetime(2024, 1, 31, 9, 0)),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", datetime(2024, 1, 31, 9, 0)),
        # Every other week from a Wednesday, weeks beginning on Sunday.
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SA;WKST=SU", datetime(2024, 1, 3, 9, 0)),
    ],
)  # fmt: skip
def test_rare_rules_give_what_dateutil_gives(rule: str, start: datetime) -> None:
    expected = list(islice(rrulestr(rule, dtstart=start), 3))

    def call() -> None:
        result = occurrences(
            start_local=start, rrule=rule, window=(utc(2000, 1, 1), utc(9000, 1, 1)), limit=3
        )
        assert [local(o, PARIS) for o in result] == expected

    assert timed(call) < QUICK


def test_a_year_of_daily_classes_at_five_is_quick() -> None:
    # Formerly "FREQ=SECONDLY;BYHOUR=5;BYMINUTE=0;BYSECOND=0" from 09:00; the time of day
    # is now the first class's.
    def call() -> None:
        result = occurrences(
            start_local=datetime(2024, 1, 2, 5, 0),
            rrule="FREQ=DAILY",
            window=(utc(2024, 1, 1), utc(2025, 1, 1)),
        )
        assert len(result) == 365  # 2 January to 31 December 2024
        assert local(result[0], PARIS) == datetime(2024, 1, 2, 5, 0)

    assert timed(call) < QUICK


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=MONTHLY;BYDAY=6MO", "a month has at most 5"),
        ("FREQ=YEARLY;BYMONTH=2;BYDAY=-6FR", "a month has at most 5"),
        ("FREQ=YEARLY;BYDAY=54MO", "a year has at most 53"),
    ],
)
def test_out_of_range_parts_dateutil_would_crash_on_are_refused(rule: str, message: str) -> None:
    with pytest.raises(RecurrenceError, match=message):
        check_rrule(rule)


# --- what classes do not need is refused by name ------------------------------------------
#
# A class repeats daily, weekly, monthly or yearly at its first start's time of day. Rules
# these tests once used (sub-daily frequencies, BYSETPOS, BYWEEKNO, BYYEARDAY, BYHOUR...)
# are now refused, clearly, rather than searched.


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=HOURLY", "FREQ=HOURLY is not supported"),
        ("FREQ=MINUTELY;INTERVAL=30", "FREQ=MINUTELY is not supported"),
        ("FREQ=SECONDLY", "FREQ=SECONDLY is not supported"),
        ("FREQ=DAILY;BYHOUR=9,14", "BYHOUR is not supported"),
        ("FREQ=DAILY;BYMINUTE=30", "BYMINUTE is not supported"),
        ("FREQ=DAILY;BYSECOND=0", "BYSECOND is not supported"),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", "BYSETPOS is not supported"),
        ("FREQ=YEARLY;BYWEEKNO=20", "BYWEEKNO is not supported"),
        ("FREQ=DAILY;BYYEARDAY=1;BYMONTH=2", "BYYEARDAY is not supported"),
        ("FREQ=WEEKLY;BYDAY=1MO", "numbered weekday .1MO. only means something with"),
        ("FREQ=DAILY;BYDAY=-1FR", "numbered weekday .-1FR. only means something with"),
        ("FREQ=WEEKLY;WKST=XX", "WKST=XX is not a weekday"),
    ],
)
def test_what_a_class_does_not_need_is_refused_naming_the_part(rule: str, message: str) -> None:
    with pytest.raises(RecurrenceError, match=message):
        check_rrule(rule)
    with pytest.raises(RecurrenceError, match=message):
        occurrences(start_local=datetime(2024, 1, 1, 9, 0), rrule=rule)


def test_the_refusal_lists_what_a_schedule_may_use() -> None:
    with pytest.raises(RecurrenceError, match=r"uses FREQ \(DAILY, WEEKLY, MONTHLY or YEARLY\)"):
        check_rrule("FREQ=MONTHLY;BYSETPOS=1")


def test_numbered_weekdays_count_in_the_month_or_the_year() -> None:
    # The second Tuesday of each month; the 10th Monday of the year (4 March 2024).
    start = datetime(2024, 1, 1, 9, 0)
    monthly = occurrences(start_local=start, rrule="FREQ=MONTHLY;BYDAY=2TU;COUNT=3")
    yearly = occurrences(start_local=start, rrule="FREQ=YEARLY;BYDAY=10MO;COUNT=2")

    assert [local(o, PARIS).date().isoformat() for o in monthly] == [
        "2024-01-09", "2024-02-13", "2024-03-12",
    ]  # fmt: skip
    assert [local(o, PARIS).date().isoformat() for o in yearly] == ["2024-03-04", "2025-03-10"]


def test_plain_and_numbered_weekdays_together_are_either() -> None:
    # RFC 5545: every Monday and the last Friday of the month (dateutil alone would keep
    # only days that are both); a Monday that is also the first Monday is one class.
    start = datetime(2024, 1, 1, 9, 0)
    either = occurrences(start_local=start, rrule="FREQ=MONTHLY;BYDAY=MO,-1FR;COUNT=7")
    both = occurrences(start_local=start, rrule="FREQ=MONTHLY;BYDAY=MO,1MO;COUNT=3")

    assert [local(o, PARIS).day for o in either] == [1, 8, 15, 22, 26, 29, 5]
    assert [local(o, PARIS).day for o in both] == [1, 8, 15]


# --- the expansion is bounded ------------------------------------------------------------


def test_a_huge_count_is_bounded_by_the_span() -> None:
    def call() -> None:
        result = occurrences(
            start_local=datetime(2024, 1, 1, 9, 0),
            rrule="FREQ=DAILY;COUNT=1000000",
            window=(utc(2024, 1, 1), utc(9000, 1, 1)),
            limit=10_000_000,
        )
        assert len(result) == MAX_SPAN_DAYS + 1
        assert local(result[-1], PARIS) == datetime(2024, 1, 1, 9, 0) + timedelta(MAX_SPAN_DAYS)

    assert timed(call) < 5 * QUICK  # a hundred years of daily classes, each placed in its zone


def test_a_far_window_of_an_old_rule_ends_with_the_span() -> None:
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0),
        rrule="FREQ=YEARLY",
        window=(utc(2100, 1, 1), utc(2200, 1, 1)),
    )

    # Up to 1 January 2124, MAX_SPAN_DAYS after the first class.
    assert [local(o, PARIS).year for o in result] == list(range(2100, 2125))


def test_a_rule_whose_first_class_is_past_the_span_is_refused_quickly() -> None:
    # 2100, 2200 and 2300 are not leap years: the first 29 February is in 2400.
    def call() -> None:
        with pytest.raises(RecurrenceError, match="gives no class in the 100 years"):
            occurrences(
                start_local=datetime(2100, 1, 1, 9, 0),
                rrule="FREQ=YEARLY;INTERVAL=100;BYMONTH=2;BYMONTHDAY=29",
                window=(utc(2100, 1, 1), utc(9000, 1, 1)),
            )

    assert timed(call) < QUICK


@pytest.mark.parametrize(
    "rule",
    ["FREQ=DAILY;INTERVAL=1000000", "FREQ=WEEKLY;INTERVAL=1000000",
     "FREQ=MONTHLY;INTERVAL=1000000", "FREQ=YEARLY;INTERVAL=1000000"],
)  # fmt: skip
def test_a_huge_interval_is_the_first_class_alone(rule: str) -> None:
    result = occurrences(
        start_local=datetime(2024, 1, 1, 9, 0),
        rrule=rule,
        window=(utc(2024, 1, 1), utc(9999, 1, 1)),
    )

    assert [o.start for o in result] == [utc(2024, 1, 1, 8, 0)]


def test_a_rule_near_the_end_of_time_stops_there() -> None:
    result = occurrences(
        start_local=datetime(9999, 12, 25, 9, 0),
        rrule="FREQ=DAILY",
        window=(utc(9999, 1, 1), datetime.max.replace(tzinfo=UTC)),
    )

    assert [local(o, PARIS).day for o in result] == [25, 26, 27, 28, 29, 30, 31]


def test_a_weekly_rule_stops_at_the_end_of_time_mid_week() -> None:
    # Saturdays: the week of 27 December 9999 ends in the year 10000.
    result = occurrences(
        start_local=datetime(9999, 12, 11, 9, 0),
        rrule="FREQ=WEEKLY",
        window=(utc(9999, 1, 1), datetime.max.replace(tzinfo=UTC)),
    )

    assert [local(o, PARIS).day for o in result] == [11, 18, 25]


def test_a_class_ending_past_the_end_of_time_is_not_given() -> None:
    # 23:00 UTC on 31 December 9999 would end past what a datetime can hold.
    result = occurrences(
        start_local=datetime(9999, 12, 31, 23, 0),
        rrule="FREQ=WEEKLY",
        timezone="UTC",
        window=(utc(9999, 1, 1), datetime.max.replace(tzinfo=UTC)),
    )

    assert result == []


# --- first_clash ---------------------------------------------------------------------------


def slot(start_hour: int, end_hour: int, day: int = 1) -> Occurrence:
    return Occurrence(start=utc(2024, 1, day, start_hour), end=utc(2024, 1, day, end_hour))


def test_first_clash_finds_the_earliest_overlapping_pair() -> None:
    a = [slot(8, 9), slot(10, 12), slot(14, 16), slot(9, 10, day=2)]
    b = [slot(9, 10), slot(11, 13), slot(15, 17), slot(9, 10, day=2)]

    assert first_clash(a, b) == (slot(10, 12), slot(11, 13))
    assert first_clash(b, a) == (slot(11, 13), slot(10, 12))


def test_first_clash_with_a_long_interval_covering_several() -> None:
    a = [slot(8, 18)]
    b = [slot(6, 7), slot(12, 13), slot(14, 15)]

    assert first_clash(a, b) == (slot(8, 18), slot(12, 13))


def test_first_clash_with_overlaps_inside_one_sequence() -> None:
    # a's own intervals overlap each other; a later one reaching back must still be found.
    a = [slot(1, 2), slot(1, 23), slot(3, 4)]
    b = [slot(5, 6)]

    assert first_clash(a, b) == (slot(1, 23), slot(5, 6))


def test_touching_intervals_do_not_clash() -> None:
    a = [slot(8, 10), slot(12, 13)]
    b = [slot(10, 12), slot(13, 14)]

    assert first_clash(a, b) is None


def test_disjoint_sequences_do_not_clash() -> None:
    a = [slot(8, 9, day=d) for d in range(1, 8)]
    b = [slot(10, 11, day=d) for d in range(1, 8)]

    assert first_clash(a, b) is None
    assert first_clash([], b) is None
    assert first_clash(a, []) is None


def test_empty_intervals_clash_with_nothing() -> None:
    assert first_clash([slot(9, 9)], [slot(8, 10)]) is None


def test_first_clash_reads_iterators_lazily() -> None:
    def endless() -> Iterator[Occurrence]:
        day = 1
        while True:
            yield slot(9, 10, day=day)
            day += 1

    a = iter([slot(9, 11, day=3)])
    assert first_clash(a, endless()) == (slot(9, 11, day=3), slot(9, 10, day=3))


def test_first_clash_on_expanded_schedules() -> None:
    # Paris Mondays 09:00-10:00 against New York Mondays 03:00-04:00: the same instant in
    # winter (08:00Z). New York moves its clocks on 10 March, Paris only on 31 March; in the
    # weeks between, New York's class is 07:00Z-08:00Z and just touches Paris's.
    def both(window: tuple[datetime, datetime]) -> tuple[list[Occurrence], list[Occurrence]]:
        paris = occurrences(
            start_local=datetime(2024, 1, 1, 9, 0), rrule="FREQ=WEEKLY", window=window
        )
        new_york = occurrences(
            start_local=datetime(2024, 1, 1, 3, 0),
            timezone="America/New_York",
            rrule="FREQ=WEEKLY",
            window=window,
        )
        return paris, new_york

    assert first_clash(*both((utc(2024, 3, 10), utc(2024, 3, 31)))) is None

    clash = first_clash(*both((utc(2024, 3, 1), utc(2024, 4, 30))))
    assert clash is not None
    assert clash[0].start == clash[1].start == utc(2024, 3, 4, 8, 0)

    clash = first_clash(*both((utc(2024, 3, 10), utc(2024, 4, 30))))
    assert clash is not None
    assert clash[0].start == clash[1].start == utc(2024, 4, 1, 7, 0)
