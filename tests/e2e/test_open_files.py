"""The RTMP connection cap against the open-files limit (mediaserver/open_files.py).

A cap the process cannot hold ends in EMFILE for everything at once; at start the soft
limit is raised to fit, and when even the hard limit is too low the cap is lowered with
a warning (or, with no room at all, the node refuses to start).
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Iterator

import pytest

from mediaserver.control_port import PublishDecision, PublishDenied
from mediaserver.media_sink import MediaSink, SinksOnly
from mediaserver.open_files import TooFewOpenFiles, fit_connection_cap
from mediaserver.publisher_slots import PublisherSlots
from mediaserver.publishing import Publishing
from mediaserver.rtmp.server import RtmpServer
from support.control_fakes import IngestOnlyControl


class Limits:
    """A fake RLIMIT_NOFILE: what getrlimit answers and setrlimit may change."""

    def __init__(self, soft: int, hard: int) -> None:
        self.soft, self.hard = soft, hard

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        soft, hard = limits
        if soft > self.hard or hard != self.hard:
            raise ValueError("not allowed")
        self.soft = soft


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Limits:
    fake = Limits(1024, 4096)
    monkeypatch.setattr(resource, "getrlimit", fake.getrlimit)
    monkeypatch.setattr(resource, "setrlimit", fake.setrlimit)
    return fake


def test_the_soft_limit_is_raised_to_fit(limits: Limits) -> None:
    assert fit_connection_cap(1000, reserve=656, setting="rtmp_max_connections") == 1000
    assert limits.soft == 1656
    # Already enough: nothing changes.
    assert fit_connection_cap(100, reserve=656, setting="rtmp_max_connections") == 100
    assert limits.soft == 1656


def test_a_cap_over_the_hard_limit_is_lowered_with_a_warning(
    limits: Limits, caplog: pytest.LogCaptureFixture
) -> None:
    assert fit_connection_cap(10_000, reserve=656, setting="rtmp_max_connections") == 3440
    assert limits.soft == 4096
    assert "rtmp_max_connections = 10000 does not fit the open-files limit" in caplog.text
    assert "using 3440" in caplog.text


def test_no_room_at_all_refuses_to_start(limits: Limits) -> None:
    limits.soft = limits.hard = 600
    with pytest.raises(TooFewOpenFiles, match="leaves no room for connections"):
        fit_connection_cap(10, reserve=656, setting="rtmp_max_connections")


def no_sink(course_id: int, session_id: int) -> MediaSink:
    raise AssertionError("nothing publishes here")


class NoKeys(IngestOnlyControl):
    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        return PublishDenied("unknown_key")

    async def session_goes_live(self, course_id: int) -> int:
        raise AssertionError("never")

    async def end_session(self, course_id: int, session_id: int | None = None) -> None:
        raise AssertionError("never")


@pytest.fixture
def low_soft_limit() -> Iterator[int]:
    """This process's real soft limit lowered for the test (the hard one stays)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 600
    if hard != resource.RLIM_INFINITY and hard < 2000:
        pytest.skip(f"the hard open-files limit ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        yield low
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_the_server_raises_the_real_soft_limit_at_start(
    low_soft_limit: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    publishing = Publishing(NoKeys(), SinksOnly(no_sink), registry=PublisherSlots(max_streams=50))
    server = RtmpServer(publishing, port=0, max_connections=1000)
    await server.start()
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        # 1000 connections + 256 other files + 8 per live stream.
        assert soft >= 1000 + 256 + 8 * 50 > low_soft_limit
        assert server.max_connections == 1000
        assert "raised the open-files limit" in caplog.text
    finally:
        await server.close()
