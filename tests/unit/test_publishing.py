"""The publication lifecycle (mediaserver/publishing.py) alone: a fake control plane, fake
session media, no protocol. Each test walks one way a publication starts or ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from mediaserver.amf0 import Amf0Value
from mediaserver.control_port import (
    CarriedElsewhere,
    ControlUnavailable,
    PlaybackDecision,
    PlaybackRefused,
    PublishAllowed,
    PublishDecision,
    PublishDenied,
)
from mediaserver.media_sink import MediaSink
from mediaserver.publisher_slots import Publication, PublisherSlots
from mediaserver.publishing import Arrival, Publishing, Refusal, Refused
from mediaserver.session_media_state import SessionMediaState, Stage

COURSE = 7
KEY = "good-key"
KEY_ID = 70


@dataclass
class Control:
    """Records every call. A course stays in one live session until it is ended."""

    calls: list[tuple[str, int]] = field(default_factory=list)
    unavailable: bool = False
    fail_going_live: bool = False
    # Calls that raise ControlUnavailable (after being recorded): the control plane is away.
    away: set[str] = field(default_factory=set)
    # Sessions another node carries now: their ends raise CarriedElsewhere.
    elsewhere: set[int] = field(default_factory=set)
    ended: list[int | None] = field(default_factory=list)  # the session each end named
    _live: dict[int, int] = field(default_factory=dict)
    _next: int = 100

    async def authorize_publish(self, app: str, key: str) -> PublishDecision:
        if self.unavailable:
            raise ControlUnavailable("database down")
        return PublishAllowed(COURSE, KEY_ID) if key == KEY else PublishDenied("unknown_key")

    async def session_goes_live(self, course_id: int) -> int:
        self.calls.append(("session_goes_live", course_id))
        if self.fail_going_live:
            raise ControlUnavailable("database down")
        if course_id not in self._live:
            self._next += 1
            self._live[course_id] = self._next
        return self._live[course_id]

    async def end_session(self, course_id: int, session_id: int | None = None) -> None:
        self.calls.append(("end_session", course_id))
        self.ended.append(session_id)
        if "end_session" in self.away:
            raise ControlUnavailable("control plane unreachable")
        if session_id in self.elsewhere:
            raise CarriedElsewhere(f"session {session_id}")
        self._live.pop(course_id, None)

    async def authorize_playback(self, session_id: int, token: str) -> PlaybackDecision:
        return PlaybackRefused("not_available")

    async def recording_ready(self, session_id: int) -> None:
        self.calls.append(("recording_ready", session_id))
        if "recording_ready" in self.away:
            raise ControlUnavailable("control plane unreachable")


class NullSink:
    def on_metadata(self, data: dict[str, Amf0Value]) -> None: ...

    def on_audio(self, ts: int, payload: bytes) -> None: ...

    def on_video(self, ts: int, payload: bytes) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Media:
    """Session media that records what the lifecycle asks of it."""

    calls: list[tuple[str, int]] = field(default_factory=list)
    states: list[SessionMediaState] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)  # what each open was for

    async def open(self, session_id: int, course_id: int, stage: Stage = "live") -> None:
        self.calls.append(("open", session_id))
        self.stages.append(stage)

    def sink(self, course_id: int, session_id: int) -> MediaSink:
        self.calls.append(("sink", session_id))
        return NullSink()

    async def finalise(self, session_id: int) -> str | None:
        self.calls.append(("finalise", session_id))
        return f"recordings/{session_id}/recording.mp4"

    async def forget(self, session_id: int) -> None:
        self.calls.append(("forget", session_id))

    async def let_go(self, session_id: int) -> None:
        self.calls.append(("let_go", session_id))

    async def unfinished(self) -> list[SessionMediaState]:
        return self.states

    async def finalised(self, session_id: int) -> bool:
        return False

    async def recording_stored(self, session_id: int) -> bool:
        return True

    async def close(self) -> None:
        return None


def arrival(key: str = KEY, course_id: int | None = None, connection_id: int = 1) -> Arrival:
    return Arrival("live", key, connection_id, "peer", "RTMP", f"rtmp#{connection_id}",
                   course_id=course_id)


async def live_publication(publishing: Publishing, stops: list[str]) -> Publication:
    publication = await publishing.publisher_arrived(arrival())
    assert isinstance(publication, Publication)
    publication.on_stop(stops.append)
    return publication


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {within} s")


async def test_arriving_authorizes_claims_goes_live_and_starts_the_sink() -> None:
    control, media = Control(), Media()
    publishing = Publishing(control, media, grace=30)
    publication = await live_publication(publishing, [])
    assert (publication.course_id, publication.session_id, publication.key_id) == (
        COURSE, 101, KEY_ID)
    assert publication.sink is not None
    assert publishing.registry.get(COURSE) is publication
    assert control.calls == [("session_goes_live", COURSE)]
    assert media.calls == [("open", 101), ("sink", 101)]
    assert publishing.live_session(COURSE) == 101


async def test_refusals() -> None:
    control, media = Control(), Media()
    publishing = Publishing(control, media, registry=PublisherSlots(max_streams=1), grace=30)

    refused = await publishing.publisher_arrived(arrival("bad-key"))
    assert refused == Refusal(Refused.KEY_REFUSED, "unknown_key")
    # WHIP names the course: a good key of another course is refused like a bad one.
    other = await publishing.publisher_arrived(arrival(course_id=COURSE + 1))
    assert isinstance(other, Refusal) and other.why is Refused.KEY_REFUSED

    control.unavailable = True
    failed = await publishing.publisher_arrived(arrival())
    assert isinstance(failed, Refusal) and failed.why is Refused.KEY_CHECK_FAILED
    control.unavailable = False

    first = await publishing.publisher_arrived(arrival())
    assert isinstance(first, Publication)
    busy = await publishing.publisher_arrived(arrival(connection_id=2))
    assert isinstance(busy, Refusal) and busy.why is Refused.COURSE_BUSY
    assert control.calls == [("session_goes_live", COURSE)]  # none of these went live


async def test_a_failure_to_go_live_frees_the_slot() -> None:
    control, media = Control(fail_going_live=True), Media()
    publishing = Publishing(control, media, grace=30)
    refused = await publishing.publisher_arrived(arrival())
    assert isinstance(refused, Refusal) and refused.why is Refused.GO_LIVE_FAILED
    assert not publishing.registry.is_live(COURSE)
    # Nothing live here for it: its end is recorded at once.
    assert control.calls == [("session_goes_live", COURSE), ("end_session", COURSE)]


async def test_a_publisher_that_leaves_is_waited_for_then_the_class_ends() -> None:
    control, media = Control(), Media()
    publishing = Publishing(control, media, grace=0.2)
    publication = await live_publication(publishing, [])
    await publishing.publisher_left(publication, protocol="RTMP")
    assert not publishing.registry.is_live(COURSE)  # free for a reconnect
    assert ("end_session", COURSE) not in control.calls  # the grace period runs
    await until(lambda: ("forget", 101) in media.calls)
    assert control.calls == [("session_goes_live", COURSE), ("end_session", COURSE),
                             ("recording_ready", 101)]
    assert media.calls == [("open", 101), ("sink", 101), ("finalise", 101), ("forget", 101)]
    assert publishing.live_session(COURSE) is None


async def test_a_publisher_back_within_the_grace_period_continues_the_session() -> None:
    control, media = Control(), Media()
    publishing = Publishing(control, media, grace=0.2)
    first = await live_publication(publishing, [])
    await publishing.publisher_left(first, protocol="RTMP")
    again = await live_publication(publishing, [])
    assert again.session_id == first.session_id == 101
    await asyncio.sleep(0.4)  # past the first grace period: cancelled, nothing ends
    assert ("end_session", COURSE) not in control.calls
    assert ("finalise", 101) not in media.calls


async def test_a_class_ended_from_the_api_stops_its_publisher_and_is_not_ended_again() -> None:
    control, media = Control(), Media()
    publishing = Publishing(control, media, grace=30)
    stops: list[str] = []
    publication = await live_publication(publishing, stops)
    await publishing.end_class(COURSE, 101)
    assert stops == ["the class was ended from the web app"]
    # The protocol's cleanup: its publisher left.
    await publishing.publisher_left(publication, protocol="RTMP")
    await until(lambda: ("forget", 101) in media.calls)
    # The API ended the class: no end_session goes back to the control plane.
    assert control.calls == [("session_goes_live", COURSE), ("recording_ready", 101)]
    assert not publishing.registry.is_live(COURSE)


async def test_a_revoked_key_stops_its_publisher_and_the_class_waits() -> None:
    control, media = Control(), Media()
    publishing = Publishing(control, media, grace=30)
    stops: list[str] = []
    publication = await live_publication(publishing, stops)
    await publishing.keys_revoked(COURSE, frozenset({KEY_ID + 1}))
    assert stops == []  # another key of the course
    await publishing.keys_revoked(COURSE, frozenset({KEY_ID}))
    assert stops == ["its stream key was revoked"]
    await publishing.publisher_left(publication, protocol="RTMP")
    assert publishing.live_session(COURSE) == 101  # waiting for its teacher
    assert ("end_session", COURSE) not in control.calls
    await publishing.close()


async def test_a_stop_is_withdrawn_once_the_publisher_leaves() -> None:
    publishing = Publishing(Control(), Media(), grace=30)
    stops: list[str] = []
    publication = await live_publication(publishing, stops)
    await publishing.publisher_left(publication, protocol="RTMP")
    assert publication.stop("too late") is False and stops == []
    await publishing.close()


async def test_shutting_down_ends_every_class_without_grace() -> None:
    control, media = Control(), Media()
    publishing = Publishing(control, media, grace=30)
    publication = await live_publication(publishing, [])
    await publishing.publisher_left(publication, protocol="RTMP")
    await publishing.close()
    assert control.calls == [("session_goes_live", COURSE), ("end_session", COURSE),
                             ("recording_ready", 101)]
    assert ("forget", 101) in media.calls


async def test_without_grace_the_class_ends_before_the_slot_is_freed() -> None:
    control, media = Control(), Media()
    publishing = Publishing(control, media)
    publication = await live_publication(publishing, [])

    async def end_session(course_id: int, session_id: int | None = None) -> None:
        assert publishing.registry.is_live(course_id)
        control.calls.append(("end_session", course_id))

    control.end_session = end_session  # type: ignore[method-assign]
    await publishing.publisher_left(publication, protocol="RTMP")
    assert ("end_session", COURSE) in control.calls
    assert not publishing.registry.is_live(COURSE)


@pytest.mark.parametrize("stage", ["live", "finalising"])
async def test_resuming_takes_up_what_an_earlier_process_left(stage: Stage) -> None:
    control, media = Control(), Media()
    media.states = [SessionMediaState(101, COURSE, stage)]
    publishing = Publishing(control, media, grace=0.1)
    await publishing.resume_unfinished()
    assert media.calls[0] == ("open", 101)
    await until(lambda: ("forget", 101) in media.calls)
    ended = [("end_session", COURSE)] if stage == "live" else []
    assert control.calls == [*ended, ("recording_ready", 101)]


async def test_a_class_ended_while_its_publisher_goes_live_stops_it_once_it_can() -> None:
    control, media = Control(), Media()
    opening = asyncio.Event()
    opened = media.open

    async def slow_open(session_id: int, course_id: int, stage: Stage = "live") -> None:
        await opening.wait()
        await opened(session_id, course_id, stage)

    media.open = slow_open  # type: ignore[method-assign]
    publishing = Publishing(control, media, grace=30)
    arriving = asyncio.create_task(publishing.publisher_arrived(arrival()))
    await until(lambda: publishing.registry.is_live(COURSE) and bool(control.calls))
    await publishing.end_class(COURSE, 101)
    opening.set()
    publication = await arriving
    assert isinstance(publication, Publication)
    stops: list[str] = []
    publication.on_stop(stops.append)  # the protocol says how: the stop happens now
    assert stops == ["the class was ended from the web app"]
    assert publication.stop("again") is False and len(stops) == 1
    await publishing.publisher_left(publication, protocol="RTMP")
    await publishing.close()
    assert ("end_session", COURSE) not in control.calls


async def test_a_publisher_cancelled_while_going_live_leaves_its_slot() -> None:
    control, media = Control(), Media()
    opening = asyncio.Event()

    async def stuck_open(session_id: int, course_id: int, stage: Stage = "live") -> None:
        await opening.wait()

    media.open = stuck_open  # type: ignore[method-assign]
    publishing = Publishing(control, media, grace=30)
    arriving = asyncio.create_task(publishing.publisher_arrived(arrival()))
    await until(lambda: bool(control.calls))
    arriving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await arriving
    assert not publishing.registry.is_live(COURSE)
    assert publishing.live_session(COURSE) == 101  # it waits the grace period
    await publishing.close()


async def test_a_control_plane_away_is_told_the_end_and_the_recording_once_back() -> None:
    control, media = Control(away={"end_session", "recording_ready"}), Media()
    publishing = Publishing(control, media, grace=None, retry_delays=(0.05, 0.1))
    publication = await live_publication(publishing, [])
    await publishing.publisher_left(publication, protocol="RTMP")
    # The media is finalised all the same; the calls are asked again, not lost.
    await until(lambda: control.calls.count(("recording_ready", 101)) >= 2)
    assert control.calls.count(("end_session", COURSE)) >= 2
    assert ("forget", 101) not in media.calls  # not until the control plane took it
    control.away.clear()
    await until(lambda: ("forget", 101) in media.calls)
    await asyncio.sleep(0.3)
    settled = list(control.calls)
    await asyncio.sleep(0.3)
    assert control.calls == settled  # no more retries once both were taken
    assert control._live == {}
    await publishing.close()


async def test_a_retried_end_gives_way_to_a_publisher_back_on_this_node() -> None:
    control, media = Control(away={"end_session"}), Media()
    publishing = Publishing(control, media, grace=None, retry_delays=(0.2, 0.2))
    first = await live_publication(publishing, [])
    await publishing.publisher_left(first, protocol="RTMP")
    await until(lambda: ("forget", 101) in media.calls)
    again = await live_publication(publishing, [])  # the course is live here again
    control.away.clear()
    await asyncio.sleep(0.5)
    assert control.calls.count(("end_session", COURSE)) == 1  # the retry stood down
    assert publishing.live_session(COURSE) == again.session_id
    await publishing.close()


async def test_an_end_names_its_session() -> None:
    control, media = Control(), Media()
    publishing = Publishing(control, media, grace=None)
    publication = await live_publication(publishing, [])
    await publishing.publisher_left(publication, protocol="RTMP")
    await until(lambda: ("forget", 101) in media.calls)
    assert control.ended == [101]


async def test_a_class_carried_by_another_node_now_is_let_go_without_a_recording() -> None:
    """This node's grace ran out, but the encoder reconnected to another node meanwhile:
    the control plane ignores this end, and this node drops the media, recording nothing
    (the recording is the other node's to make)."""
    control, media = Control(elsewhere={101}), Media()
    publishing = Publishing(control, media, grace=0.1)
    publication = await live_publication(publishing, [])
    await publishing.publisher_left(publication, protocol="RTMP")
    await until(lambda: ("let_go", 101) in media.calls)
    await asyncio.sleep(0.1)
    assert ("finalise", 101) not in media.calls
    assert ("recording_ready", 101) not in control.calls
    assert control.ended == [101]
    assert publishing.live_session(COURSE) is None
    await publishing.close()
    assert control.ended == [101]  # shutting down ends nothing more


async def test_the_control_plane_asks_for_the_recording_of_a_class_whose_node_died() -> None:
    control, media = Control(), Media()
    publishing = Publishing(control, media, grace=30)
    await publishing.finalise_recording(COURSE, 7)  # answers at once
    await until(lambda: ("forget", 7) in media.calls)
    assert media.calls == [("open", 7), ("finalise", 7), ("forget", 7)]
    assert media.stages == ["finalising"]  # a restart meanwhile completes it
    assert control.calls == [("recording_ready", 7)]  # no end: the control plane ended it
    await publishing.close()
