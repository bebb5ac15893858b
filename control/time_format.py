"""How the API writes a moment: ISO 8601, with UTC written as "Z".

One definition for every place a datetime becomes text in an answer or an error message
(the JSON encoder, the course list's fast path, clash messages), so they cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_z(moment: datetime) -> str:
    """`moment` in ISO 8601; a UTC offset is written "Z" ("2026-01-02T09:00:00Z").

    The database hands back aware UTC datetimes. A naive datetime is a wall-clock time
    (a schedule's local start) and is written as it is, without a zone.
    """
    return moment.isoformat().replace("+00:00", "Z")


def stored_utc(value: datetime | str) -> datetime:
    """A datetime column as a plain driver row gives it (naive UTC, or text on SQLite),
    as the aware UTC datetime the ORM gives (an aware one is returned as it is)."""
    found = datetime.fromisoformat(value) if isinstance(value, str) else value
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def stored_iso_z(value: datetime | str) -> str:
    """A stored UTC moment (a plain row's naive datetime or SQLite text, or the ORM's aware
    one) written as `iso_z` writes the aware moment."""
    found = datetime.fromisoformat(value) if isinstance(value, str) else value
    if found.tzinfo is None:
        # The hot path of the course list: no aware copy just to write "+00:00" as "Z".
        return found.isoformat() + "Z"
    return iso_z(found)
