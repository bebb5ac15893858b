"""A settable "now" for the scheduling tests, so they never depend on today's date.

The schedule, session and live endpoints read the time through the `utcnow` name they
import from control.models.base; `freeze` replaces that name in those modules only
(sign-in tokens keep the real clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from control.api import live, schedules, sessions

# A Monday far from today: 2031-01-06 12:00 UTC.
EPOCH = datetime(2031, 1, 6, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def freeze(monkeypatch: pytest.MonkeyPatch, now: datetime = EPOCH) -> Clock:
    clock = Clock(now)
    for module in (schedules, sessions, live):
        monkeypatch.setattr(module, "utcnow", clock)
    return clock


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
