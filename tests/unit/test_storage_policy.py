"""The storage policy's pure parts: what kind each stored object is, and which recordings
go (control/storage_policy/usage.py, retention.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from control.storage_policy.retention import RecordingFacts, plan_deletions
from control.storage_policy.usage import classify, measure

NOW = datetime(2030, 6, 1, tzinfo=UTC)


def test_kinds_follow_the_media_layout() -> None:
    assert classify("recordings/7/hd/000001.m4s") == ("recording", 7)
    assert classify("recordings/7/master.m3u8") == ("recording", 7)
    assert classify("recordings/7/recording.mp4") == ("mp4", 7)
    assert classify("recordings/7/poster.jpg") == ("mp4", 7)
    assert classify("live/7/hd/00001.ts") == ("live", 7)
    # A class being recorded now is live, whatever its keys say.
    assert classify("recordings/7/hd/000001.m4s", frozenset({7})) == ("live", 7)
    assert classify("resources/3/slides.pdf") == ("resources", None)
    assert classify("stray.bin") == ("other", None)


def test_measure_sums_by_kind_and_session() -> None:
    usage = measure([("recordings/1/hd/000001.m4s", 100), ("recordings/1/recording.mp4", 50),
                     ("recordings/2/sd/000001.m4s", 10), ("resources/x.pdf", 5)],
                    frozenset({2}))
    assert usage.total == 165
    assert usage.by_kind == {"live": 10, "recording": 100, "mp4": 50, "resources": 5,
                             "other": 0}
    assert usage.recording_bytes(1) == 150
    assert usage.recording_bytes(2) == 0  # live bytes are never a recording's to free


def rec(sid: int, days_ago: float, size: int = 100, *, retention: int | None = None,
        live: bool = False) -> RecordingFacts:
    ended = NOW - timedelta(days=days_ago)
    return RecordingFacts(sid, 1, size, live, None if live else ended, ended, retention)


def test_past_retention_goes_oldest_first_even_when_not_full() -> None:
    plan = plan_deletions([rec(1, 10, retention=30), rec(2, 40, retention=30),
                           rec(3, 50, retention=30), rec(4, 400)],
                          used_bytes=400, limit_bytes=10_000, now=NOW)
    assert [(d.session_id, d.reason) for d in plan] == [(3, "retention"), (2, "retention")]


def test_when_full_the_oldest_go_until_under_the_limit() -> None:
    plan = plan_deletions([rec(1, 1), rec(2, 3), rec(3, 2), rec(4, 5, retention=1)],
                          used_bytes=400, limit_bytes=150, now=NOW)
    # Past retention first, then the oldest until 400 - 100 - 100 - 100 <= 150.
    assert [(d.session_id, d.reason) for d in plan] == [
        (4, "retention"), (2, "storage_full"), (3, "storage_full")]


def test_never_a_live_class_nor_what_is_not_a_recording() -> None:
    # Resources and live media count in `used_bytes` but are no candidates: the plan
    # deletes every recording and still cannot reach the limit; it stops there.
    plan = plan_deletions([rec(1, 900, live=True, retention=1), rec(2, 1)],
                          used_bytes=10_000, limit_bytes=100, now=NOW)
    assert [d.session_id for d in plan] == [2]


def test_retention_none_keeps_forever_under_the_limit() -> None:
    assert plan_deletions([rec(1, 3650)], used_bytes=100, limit_bytes=100, now=NOW) == []
