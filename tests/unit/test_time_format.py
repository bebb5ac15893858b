"""The one time formatter: an aware UTC moment, a stored naive one and SQLite's text of it
are written alike; a wall-clock time keeps no zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from control.time_format import iso_z, stored_iso_z, stored_utc


def test_one_moment_one_text() -> None:
    aware = datetime(2026, 3, 29, 1, 30, 5, 120, tzinfo=UTC)
    naive = aware.replace(tzinfo=None)
    assert iso_z(aware) == "2026-03-29T01:30:05.000120Z"
    assert stored_iso_z(aware) == stored_iso_z(naive) == stored_iso_z(str(naive)) == iso_z(aware)
    assert stored_utc(str(naive)) == stored_utc(naive) == aware
    assert iso_z(datetime(2026, 1, 2, 9, 0, tzinfo=UTC)) == "2026-01-02T09:00:00Z"


def test_wall_clock_and_other_offsets_are_kept() -> None:
    assert iso_z(datetime(2026, 1, 2, 9, 0)) == "2026-01-02T09:00:00"
    paris = timezone(timedelta(hours=1))
    assert iso_z(datetime(2026, 1, 2, 9, 0, tzinfo=paris)) == "2026-01-02T09:00:00+01:00"
