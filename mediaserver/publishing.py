"""What happens when a teacher starts and stops: one publication's life, for RTMP and WHIP.

Read top to bottom, this is the whole media-side story of a live class:

1. A publisher arrives (an RTMP `publish`, a WHIP `POST`): its stream key is authorized
   by the control plane (`check_key`). A bad, revoked or expired key, or one of another
   course (WHIP names the course in its URL), is a `Refusal`; so is a control plane that
   cannot answer. Each protocol maps a refusal to its own status.
2. The course's slot is claimed in the `PublisherSlots`: one publisher per course, whatever
   the protocol, and at most `max_streams` on the node (`go_live`).
3. The session goes live: the control plane starts it (or continues the one whose
   publisher is back within the grace period), and its media opens, taking up what an
   earlier process recorded.
4. The worker and its sink start: the `Publication` carries the sink; the protocol feeds
   it, and tells it how to `stop` its publisher (`Publication.on_stop`).
5. The publisher leaves (`publisher_left`): the protocol has closed its sink; the slot is
   freed only after the end is recorded, so a quick reconnect cannot overlap it. The
   session stays live for the reconnect grace period; a publisher back within it
   continues the same session and recording (step 3).
6. The grace period runs out: the control plane ends the session, its recording is
   finalised (VOD playlists, MP4) and the control plane is told it is ready (`_end`).

The other ways a publication or a class ends:

- the class is ended from the API (`end_class`): the publisher is stopped and the media
  finalised at once; the publisher's leaving then ends nothing more (the API already has);
- a stream key stops working (`keys_revoked`): the publisher live on it is stopped, and
  the class waits the grace period as after a dropped encoder;
- the node shuts down (`close`): every class ends now, without grace;
- the node starts (`resume_unfinished`): a class an earlier process left live waits for its
  encoder (the grace period); a finalisation cut short is done again;
- the class moved to another node (its encoder reconnected there while this one was cut
  off, or before it started again): the control plane ignores this node's end
  (`CarriedElsewhere`), and the node lets the class go without a recording, which is
  the other node's to make;
- the control plane asks for a recording (`finalise_recording`): the class's node died
  and nobody took it up within the grace period, so the control plane ended it, and this
  node makes its recording from storage.

A control plane that cannot take the end of a class or a recording being ready (its
database down, a remote one unreachable) is asked again in the background, backing off,
until it answers: nothing is lost while the class goes on. A retried end stops if the
course comes back live on this node (that publication owns its end). Retries still
pending at shutdown are dropped: the next start takes them up from the stage files.

Calls run one way: protocols call this module, this module calls the control plane (the
`ControlPort`) and the media (`LiveMedia`); nothing calls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mediaserver.control_port import (
    CarriedElsewhere,
    ControlPort,
    ControlUnavailable,
    PublishAllowed,
    PublishDenied,
)
from mediaserver.key_fingerprint import key_fingerprint
from mediaserver.media_sink import MediaSink
from mediaserver.publisher_slots import Publication, PublisherSlots, RegistryFull
from mediaserver.session_media_state import SessionMediaState, Stage

__all__ = ["Arrival", "LiveMedia", "Publishing", "Refusal", "Refused"]

log = logging.getLogger(__name__)


class LiveMedia(Protocol):
    """The media of live sessions, as the lifecycle drives it (mediaserver/session_media.py;
    `media_sink.SinksOnly` for a node that only hands each publish a sink)."""

    async def open(self, session_id: int, course_id: int, stage: Stage = "live") -> None: ...

    def sink(self, course_id: int, session_id: int) -> MediaSink: ...

    async def finalise(self, session_id: int) -> str | None: ...

    async def forget(self, session_id: int) -> None: ...

    async def let_go(self, session_id: int) -> None: ...

    async def unfinished(self) -> list[SessionMediaState]: ...

    async def finalised(self, session_id: int) -> bool: ...

    async def recording_stored(self, session_id: int) -> bool: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Arrival:
    """A publisher at the door. `course_id` is the course it names (WHIP's URL), if any;
    `label` prefixes log lines ("rtmp#3", "whip 10.0.0.5:4242")."""

    app: str
    key: str
    connection_id: int
    peer: str
    protocol: str  # "RTMP" or "WHIP"
    label: str
    course_id: int | None = None


class Refused(enum.Enum):
    """Why a publisher was turned away; each protocol has its status for each."""

    KEY_CHECK_FAILED = "key_check_failed"  # the control plane could not answer: try later
    KEY_REFUSED = "key_refused"  # bad, revoked or expired key, or another course's
    COURSE_BUSY = "course_busy"  # another encoder publishes into this course
    AT_CAPACITY = "at_capacity"  # the node carries its maximum number of streams
    GO_LIVE_FAILED = "go_live_failed"  # the session could not go live: try later


@dataclass(frozen=True)
class Refusal:
    """`detail` is for logs only: the control plane's reason word, or the error's type."""

    why: Refused
    detail: str = ""


@dataclass(eq=False)
class _LiveClass:
    """A session live on this node, across publisher reconnects."""

    session_id: int
    course_id: int
    grace: asyncio.Task[None] | None = None
    ending: asyncio.Task[None] | None = None


class Publishing:
    """Publications and the live classes they feed on this node; see the module docstring.

    `grace` is the reconnect grace period in seconds; None ends a class as soon as its
    publisher leaves, before the slot is freed (a node without session media: tests).
    """

    def __init__(
        self,
        control: ControlPort,
        media: LiveMedia,
        *,
        registry: PublisherSlots | None = None,
        grace: float | None = None,
        retry_delays: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.control = control
        self.media = media
        self.registry = registry if registry is not None else PublisherSlots()
        self._grace = grace
        # A control call that failed is tried again after the first delay, doubling up to
        # the second (seconds).
        self._retry_first, self._retry_most = retry_delays
        self._classes: dict[int, _LiveClass] = {}  # by session id
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ 1-4. arriving

    async def publisher_arrived(self, arrival: Arrival) -> Publication | Refusal:
        """Authorize, claim, go live, start the sink: the publication, or why not."""
        grant = await self.check_key(arrival)
        if isinstance(grant, Refusal):
            return grant
        return await self.go_live(arrival, grant)

    async def check_key(self, arrival: Arrival) -> PublishAllowed | Refusal:
        """Step 1 alone (WHIP negotiates its offer between this and `go_live`)."""
        try:
            decision = await self.control.authorize_publish(arrival.app, arrival.key)
        except Exception as exc:
            _log_control_failure(exc, f"{arrival.label}: could not check stream key "
                                      f"{key_fingerprint(arrival.key)}")
            return Refusal(Refused.KEY_CHECK_FAILED, type(exc).__name__)
        if isinstance(decision, PublishDenied):
            return Refusal(Refused.KEY_REFUSED, decision.reason)
        if arrival.course_id is not None and decision.course_id != arrival.course_id:
            return Refusal(Refused.KEY_REFUSED, "another course's key")
        return decision

    async def go_live(self, arrival: Arrival, grant: PublishAllowed) -> Publication | Refusal:
        """Steps 2 to 4: claim the course's slot, make the session live, start the sink."""
        course_id = grant.course_id
        claim = self.registry.claim(course_id, arrival.connection_id, arrival.peer,
                                    key_id=grant.key_id)
        if claim is RegistryFull.COURSE_BUSY:
            return Refusal(Refused.COURSE_BUSY, f"course {course_id}")
        if claim is RegistryFull.AT_CAPACITY:
            return Refusal(Refused.AT_CAPACITY, f"{len(self.registry)} live streams")
        assert isinstance(claim, Publication)
        try:
            claim.session_id = await self._session_goes_live(course_id)
            claim.sink = self.media.sink(course_id, claim.session_id)
        except asyncio.CancelledError:
            # The connection closed meanwhile (shutdown): it leaves like any publisher.
            await self.publisher_left(claim, protocol=arrival.protocol)
            raise
        except Exception as exc:
            _log_control_failure(exc, f"{arrival.label}: course {course_id} could not go live")
            await self.publisher_left(claim, protocol=arrival.protocol)
            return Refusal(Refused.GO_LIVE_FAILED, type(exc).__name__)
        return claim

    async def _session_goes_live(self, course_id: int) -> int:
        waiting = self._class_of_course(course_id)
        if waiting is not None and waiting.grace is not None:
            waiting.grace.cancel()
            waiting.grace = None
        session_id = await self.control.session_goes_live(course_id)
        if waiting is not None and waiting.session_id != session_id:
            # The session ended elsewhere (from the web app) while its publisher was away.
            self._end_soon(waiting)
        elif waiting is not None:
            log.info("course %d: publisher back within the grace period: session %d goes on",
                     course_id, session_id)
        self._classes.setdefault(session_id, _LiveClass(session_id, course_id))
        await self.media.open(session_id, course_id)
        return session_id

    # ------------------------------------------------------------------ 5-6. leaving

    async def publisher_left(self, publication: Publication, *, protocol: str) -> None:
        """The publisher is gone (closed, unpublished, dropped, stopped, or failed to start)
        and its sink closed: start the grace period, then free the course's slot."""
        publication.on_stop(None)
        course_id = publication.course_id
        live = self._class_of_course(course_id)
        try:
            if publication.class_ended:
                pass  # ended from the API: nothing more to end
            elif live is None:
                # No media here for it (it never went live): record the end now.
                await self._end_session_or_retry(course_id, publication.session_id)
            elif self._grace is None:
                await self._class_over(live)
            elif live.grace is None:
                log.info("course %d: publisher gone; session %d waits %.0f s for it",
                         course_id, live.session_id, self._grace)
                live.grace = asyncio.create_task(self._grace_period(live, self._grace))
        except Exception:
            log.exception("%s: could not record the end of course %d's stream", protocol,
                          course_id)
        finally:
            self.registry.release(publication)
        log.info("%s: course %d stream ended (session %s, %.1f s)", protocol, course_id,
                 publication.session_id, time.monotonic() - publication.since)

    async def _grace_period(self, live: _LiveClass, seconds: float) -> None:
        await asyncio.sleep(seconds)
        live.grace = None
        log.info("course %d: no publisher for %.0f s: session %d ends", live.course_id,
                 seconds, live.session_id)
        await self._class_over(live)

    async def _class_over(self, live: _LiveClass) -> None:
        """Nobody publishes into the class any more: the control plane ends it, the media
        is finalised."""
        if await self._end_session_or_retry(live.course_id, live.session_id):
            self._end_soon(live)
        else:
            self._let_go(live)

    async def _end_session_or_retry(self, course_id: int, session_id: int | None) -> bool:
        """Ask the control plane to end the session (again in the background if it cannot
        answer now); False when another node carries it now (nothing ended)."""
        try:
            await self.control.end_session(course_id, session_id)
        except CarriedElsewhere:
            log.info("course %d: session %d goes on on another node; this node lets it go",
                     course_id, session_id)
            return False
        except Exception as exc:
            _log_control_failure(exc, f"course {course_id}: could not record the end of "
                                      f"session {session_id}; retrying")

            async def again() -> None:
                with contextlib.suppress(CarriedElsewhere):  # nothing to end here, then
                    await self.control.end_session(course_id, session_id)

            self._spawn(self._retry(
                f"course {course_id}: end of session {session_id}", again,
                still_wanted=lambda: self._class_of_course(course_id) is None,
            ))
        return True

    def _let_go(self, live: _LiveClass) -> None:
        """The class went on elsewhere: drop its media here, storing no recording."""
        if live.ending is None:
            if live.grace is not None:
                live.grace.cancel()
                live.grace = None
            live.ending = asyncio.create_task(self._forget_class(live))

    async def _forget_class(self, live: _LiveClass) -> None:
        await self.media.let_go(live.session_id)
        self._classes.pop(live.session_id, None)

    def _end_soon(self, live: _LiveClass) -> asyncio.Task[None]:
        if live.ending is None:
            if live.grace is not None:
                live.grace.cancel()
                live.grace = None
            live.ending = asyncio.create_task(self._end(live))
        return live.ending

    async def _end(self, live: _LiveClass) -> None:
        """Finalise the recording, then tell the control plane it is ready."""
        key = await self.media.finalise(live.session_id)
        self._classes.pop(live.session_id, None)
        if key is not None:
            try:
                await self.control.recording_ready(live.session_id)
            except Exception as exc:
                # Asked again in the background; until then the stage file stays, so the
                # next start tells the control plane again should this process stop first.
                _log_control_failure(exc, f"session {live.session_id}: could not record "
                                          "that its recording is ready; retrying")
                self._spawn(self._ready_later(live.session_id))
                return
            log.info("session %d: recording ready (%s)", live.session_id, key)
        await self.media.forget(live.session_id)

    async def _ready_later(self, session_id: int) -> None:
        if await self._retry(f"session {session_id}: recording ready",
                             lambda: self.control.recording_ready(session_id)):
            await self.media.forget(session_id)

    async def _retry(
        self,
        what: str,
        call: Callable[[], Awaitable[None]],
        still_wanted: Callable[[], bool] = lambda: True,
    ) -> bool:
        """`call` again, backing off, until it succeeds (True) or is no longer wanted
        (False). Failures are logged once; cancelled at shutdown."""
        delay = self._retry_first
        while True:
            await asyncio.sleep(delay)
            if not still_wanted():
                log.info("%s: no longer needed", what)
                return False
            try:
                await call()
            except Exception:
                delay = min(delay * 2, self._retry_most)
                continue
            log.info("%s: recorded by the control plane after all", what)
            return True

    # ------------------------------------------------------------------ other endings

    async def end_class(self, course_id: int, session_id: int) -> None:
        """The class was ended from the API (already ended there): stop its publisher,
        finalise its media."""
        publication = self.registry.get(course_id)
        if publication is not None:
            publication.class_ended = True
            publication.stop("the class was ended from the web app")
        live = self._classes.get(session_id)
        if live is not None:
            self._end_soon(live)

    async def keys_revoked(self, course_id: int, key_ids: frozenset[int]) -> None:
        """Keys of the course stopped working: stop a publisher live on one of them. Its
        class waits the grace period, so the teacher can come back with a good key."""
        publication = self.registry.get(course_id)
        if publication is not None and publication.key_id in key_ids:
            log.info("course %d: the publisher's stream key (id %d) no longer works:"
                     " disconnecting it", course_id, publication.key_id)
            publication.stop("its stream key was revoked")

    async def close(self) -> None:
        """Shutting down (after the protocols closed): end every class now, no grace."""
        endings: list[asyncio.Task[None]] = []
        for live in list(self._classes.values()):
            if live.ending is None:
                try:
                    await self.control.end_session(live.course_id, live.session_id)
                except CarriedElsewhere:
                    self._let_go(live)
                except Exception:
                    log.exception("course %d: could not record the end of session %d",
                                  live.course_id, live.session_id)
            endings.append(self._end_soon(live))  # the let-go's task, if it is one
        if endings:
            await asyncio.gather(*endings, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.media.close()

    async def resume_unfinished(self) -> None:
        """At start, before ingest opens: take up the classes an earlier process left
        unfinished. Finalisations run in the background."""
        for state in await self.media.unfinished():
            if state.stage == "finalising" and await self.media.finalised(state.session_id):
                # Finalised, but the control plane may not have heard of it.
                self._spawn(self._confirm_recording(state))
                continue
            await self.media.open(state.session_id, state.course_id, state.stage)
            live = self._classes.setdefault(state.session_id,
                                            _LiveClass(state.session_id, state.course_id))
            if state.stage == "finalising":
                log.info("session %d: completing its recording, cut short by the last stop",
                         state.session_id)
                self._end_soon(live)
            else:
                grace = self._grace or 0.0
                log.info("course %d: session %d was live when the last process stopped; it "
                         "waits %.0f s for its encoder", state.course_id, state.session_id,
                         grace)
                live.grace = asyncio.create_task(self._grace_period(live, grace))

    async def finalise_recording(self, course_id: int, session_id: int) -> None:
        """The control plane ended a class whose node died (nobody took it up within the
        grace period): make its recording here, from storage, and say it is ready. Returns
        at once; the work runs in the background (and survives a restart: stage file)."""
        live = self._classes.get(session_id)
        if live is not None:
            self._end_soon(live)  # carried or finishing here after all
            return

        async def finalise() -> None:
            await self.media.open(session_id, course_id, "finalising")
            self._end_soon(self._classes.setdefault(session_id,
                                                    _LiveClass(session_id, course_id)))

        log.info("session %d: making its recording from storage, as the control plane asks",
                 session_id)
        self._spawn(finalise())

    async def _confirm_recording(self, state: SessionMediaState) -> None:
        try:
            stored = await self.media.recording_stored(state.session_id)
        except Exception:
            log.exception("session %d: could not confirm its recording", state.session_id)
            return
        if stored:
            try:
                await self.control.recording_ready(state.session_id)
            except Exception as exc:
                _log_control_failure(exc, f"session {state.session_id}: could not confirm "
                                          "its recording; retrying")
                await self._ready_later(state.session_id)  # this task is a background one
                return
        await self.media.forget(state.session_id)

    # ------------------------------------------------------------------ status

    def live_session(self, course_id: int) -> int | None:
        """The course's session live on this node (not ending), if any."""
        live = self._class_of_course(course_id)
        return live.session_id if live is not None else None

    def _class_of_course(self, course_id: int) -> _LiveClass | None:
        for live in self._classes.values():
            if live.course_id == course_id and live.ending is None:
                return live
        return None

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _log_control_failure(exc: Exception, what: str) -> None:
    if isinstance(exc, ControlUnavailable):
        # Expected trouble (database down): one line, no traceback.
        log.error("%s: %s", what, exc)
    else:
        log.exception("%s", what)

