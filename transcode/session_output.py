"""One live class session's media: LL-HLS while live, the recording in storage, across runs.

Each ffmpeg run (an "epoch": a worker's run, named "{token}/{run}" by the segment
receiver) streams one fragmented MP4 per rendition. `transcode/cmaf/` cuts each into an
init segment and parts; here every rendition becomes a `RenditionTrack` that numbers the
parts into segments continuous across epochs (a discontinuity and a new init where an
epoch begins) and serves the live edge from memory. Every segment is stored once, under
the recording:

    recordings/{sid}/{R}/{n:06d}.m4s       segment n, named by the live playlist and the
    recordings/{sid}/{R}/init_{n:06d}.mp4  recording alike; the init of the run whose
                                           first segment is n
    recordings/{sid}/{R}/index.m3u8        every segment: EVENT now and then while live,
                                           VOD once finalised
    recordings/{sid}/{R}/journal.json      the segments since that playlist, while live
                                           (transcode.stored_journal)
    recordings/{sid}/master.m3u8           the ladder
    recordings/{sid}/recording.mp4         made at the end from the `source` rendition

The live playlists (the whole class so far, parts near the edge) are never stored: the
node renders them from memory for each request (`live_playlist`, `live_master`), and a
blocking request waits on the track (`track(R).wait`). Everything stored goes through the
upload queue, spooled and fsynced first.

A process that dies mid-class leaves the session live. Each stored segment is noted in
the work folder's journal (transcode.recording_journal), so a new `SessionOutput` of the
same session can `resume`: it numbers on from the highest segment known (journal, stored
recording and spool), the next run starting with a discontinuity, and never overwrites
one. `finalize` cancelled part way (a stop that ran out of time) leaves the work folder as
it was, so finalising again after a restart completes it.

A node that dies takes its work folder with it. Another node's `SessionOutput` of the
same session then resumes from storage alone: the listing, the recording playlist and
each rendition's journal tail give every segment with its duration, discontinuity, init
and gap, and the ladder. Its MP4 is made from the source segments storage holds for the
runs it never saw, then its own source files.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from transcode.cmaf.boxes import CmafError
from transcode.cmaf.packager import CmafPackager, Init, Part
from transcode.events import EventSink, UploadFailed
from transcode.hls_playlist import (
    PlaylistError,
    RenditionReport,
    Segment,
    parse_media_playlist,
    render_master_playlist,
    render_recording_playlist,
)
from transcode.ladder import SOURCE_NAME, Rendition
from transcode.media_types import JPEG_TYPE, M3U8_TYPE, M4S_TYPE, MP4_TYPE
from transcode.mp4_export import export_mp4
from transcode.part_timing import gathers_fragments, part_target
from transcode.poster import extract_poster
from transcode.recording_journal import JournalState, RecordingJournal
from transcode.recording_quality import check_quality, kept_renditions
from transcode.rendition_track import ClosedSegment, RenditionTrack, init_name, segment_name
from transcode.storage.backend import LIVE_PREFIX, RECORDINGS_PREFIX, Storage, StorageError
from transcode.stored_journal import JSON_TYPE, TAIL_NAME, JournalTail, parse_tail, render_tail

__all__ = ["OutputQueue", "SessionOutput"]

log = logging.getLogger(__name__)

PLAYLIST_NAME = "index.m3u8"
POSTER_NAME = "poster.jpg"
# While live nobody plays the recording playlists (players get the live playlists from
# memory), so they are stored only this often, for a crash to lose little: storing a
# two-hour playlist after every segment would send gigabytes of playlist through the queue.
RECORDING_PLAYLIST_EVERY = 30
MP4_PUT_ATTEMPTS = 3
# The duration given to a stored segment the journal never named (the process died right
# after queueing it): close to the usual segment length, and it keeps the segment listed.
GUESSED_SECONDS = 2.0
_SOURCE_FILE = re.compile(r"source-(\d{4,})\.mp4")


class OutputQueue(Protocol):
    """What we need of the upload queue (transcode.storage.upload_queue.UploadQueue)."""

    # False: refused (the spool is full or cannot be written), the bytes will never be stored.
    def put(self, key: str, data: bytes, content_type: str, *, also: tuple[str, ...] = ()
            ) -> bool: ...

    def delete(self, key: str) -> bool: ...

    def delete_prefix(self, prefix: str) -> bool: ...

    async def flush(self, timeout: float | None = None) -> bool: ...  # noqa: ASYNC109


class SessionOutput:
    """Turns the fragmented MP4 streams of a session's ffmpeg runs into LL-HLS and a
    recording in storage."""

    def __init__(self, session_id: int, queue: OutputQueue, *, work_dir: Path,
                 segment_seconds: float = 2.0, part_seconds: float = 0.2,
                 events: EventSink | None = None,
                 recording_playlist_every: int = RECORDING_PLAYLIST_EVERY,
                 recording_quality: str = "all") -> None:
        if segment_seconds <= 0 or part_seconds <= 0:
            raise ValueError("segments and parts need a positive length")
        self.session_id = session_id
        self._queue = queue
        self._segment_seconds = segment_seconds
        self._part_seconds = part_seconds
        self._part_target: float | None = None
        self._work_dir = Path(work_dir)
        self._events = events
        self._recording_every = recording_playlist_every
        self._quality = check_quality(recording_quality)
        # The source remux's description beside a ladder (RunStarted.recording): the
        # recording's one variant when only the source is kept.
        self._source_rendition: Rendition | None = None
        self._lock = asyncio.Lock()
        self._ladder: dict[str, Rendition] = {}
        self._epochs: dict[str, int] = {}
        self._tracks: dict[str, RenditionTrack] = {}
        self._packagers: dict[tuple[int, str], CmafPackager] = {}
        self._source_files: dict[int, Path] = {}  # epoch ordinal -> its source fMP4
        self._epoch_base = 0  # epochs of an earlier process (resume) come before ours
        self._journal = RecordingJournal(self._work_dir)
        self._journaled_ladder: set[str] = set()
        # Source segments before this number are in storage only (another node, or a lost
        # work folder, recorded them): the MP4 fetches them.
        self._stored_source = 0
        self._finished = False

    # Keys ------------------------------------------------------------------------------

    def _live(self, rest: str) -> str:
        return f"{LIVE_PREFIX}{self.session_id}/{rest}"

    def _recording(self, rest: str) -> str:
        return f"{RECORDINGS_PREFIX}{self.session_id}/{rest}"

    @property
    def mp4_key(self) -> str:
        return self._recording("recording.mp4")

    # Epochs ----------------------------------------------------------------------------

    def _epoch(self, epoch: str) -> int:
        ordinal = self._epochs.get(epoch)
        if ordinal is None:
            ordinal = self._epochs[epoch] = self._epoch_base + len(self._epochs)
        return ordinal

    def start_epoch(self, epoch: str, renditions: Sequence[Rendition], *,
                    recording: Rendition | None = None) -> None:
        """A run begins: remember its order; new rendition names join the ladder.

        The first epoch's renditions define the ladder; a later epoch's rendition with a
        known name continues it (its first segment is marked as a discontinuity). Not a
        coroutine, so an event callback can call it; it only queues uploads.
        """
        if self._finished:
            return
        self._epoch(epoch)
        if recording is not None:
            self._source_rendition = recording
        if self._part_target is None:
            # Declared once: a playlist's PART-TARGET may not change while it is live.
            self._part_target = part_target(renditions, self._part_seconds)
        grew = False
        for rendition in renditions:
            if rendition.name not in self._ladder:
                self._ladder[rendition.name] = rendition
                grew = True
        if grew:
            master = render_master_playlist(list(self._ladder.values()),
                                            independent_segments=True).encode()
            self._queue.put(self._recording("master.m3u8"), master, M3U8_TYPE)

    # Receiving -------------------------------------------------------------------------

    async def feed(self, epoch: str, rendition: str, data: bytes) -> None:
        """Bytes of the fragmented MP4 one run writes for one rendition, as they come.

        Raises CmafError when they are not a fragmented MP4 (that stream is then dropped).
        """
        async with self._lock:
            packager = self._packager(epoch, rendition)
            if packager is None:
                return
            try:
                items = packager.feed(data)
            except CmafError:
                self._packagers.pop((self._epoch(epoch), rendition), None)
                raise
            await self._take(self._epoch(epoch), rendition, items)

    async def end_stream(self, epoch: str, rendition: str) -> None:
        """That rendition's stream of that run ended: its last segment is complete."""
        async with self._lock:
            ordinal = self._epoch(epoch)
            packager = self._packager(epoch, rendition)
            if packager is None:
                return
            await self._take(ordinal, rendition, packager.close())
            del self._packagers[(ordinal, rendition)]
            track = self._tracks.get(rendition)
            if track is not None and track.last_epoch == ordinal:
                closed = track.close_segment()
                if closed is not None:
                    await self._store(ordinal, track, [closed])

    def _packager(self, epoch: str, rendition: str) -> CmafPackager | None:
        if self._finished:
            log.debug("session %s finished: dropping %s", self.session_id, rendition)
            return None
        ordinal = self._epoch(epoch)
        track = self._tracks.get(rendition)
        if track is not None and ordinal < track.last_epoch:
            # An older run talking after a newer one took over: too late to number.
            log.info("session %s: late %s from an earlier run dropped", self.session_id,
                     rendition)
            return None
        key = (ordinal, rendition)
        packager = self._packagers.get(key)
        if packager is None:
            known = self._ladder.get(rendition)
            gather = known is not None and gathers_fragments(known)
            packager = self._packagers[key] = CmafPackager(
                self._segment_seconds, part_seconds=self._part_target if gather else None)
        return packager

    def _track(self, rendition: str) -> RenditionTrack:
        track = self._tracks.get(rendition)
        if track is None:
            live = rendition in self._ladder
            track = self._tracks[rendition] = RenditionTrack(
                rendition, part_target=self._part_target or self._part_seconds, live=live,
                segment_seconds=self._segment_seconds)
        return track

    async def _take(self, ordinal: int, rendition: str, items: Sequence[Init | Part]
                    ) -> None:
        if not items:
            return
        track = self._track(rendition)
        closed: list[ClosedSegment] = []
        for item in items:
            if isinstance(item, Init):
                name, last = track.new_init(item.data)
                if last is not None:
                    # The earlier run's last segment: stored (and appended to the source
                    # file) as that run's, before this run's file begins.
                    await self._store(track.last_epoch, track, [last])
                self._queue.put(self._recording(f"{rendition}/{name}"), item.data, MP4_TYPE)
                if rendition == SOURCE_NAME:
                    await self._start_source(ordinal, item.data)
            else:
                done = track.add_part(item.data, item.duration, item.independent,
                                      item.new_segment, item.start)
                if done is not None:
                    closed.append(done)
            track.last_epoch = ordinal
        if closed:
            await self._store(ordinal, track, closed)

    async def _store(self, ordinal: int, track: RenditionTrack,
                     closed: list[ClosedSegment]) -> None:
        """Queue closed segments for storage, note them in the journal."""
        journal = [RecordingJournal.rendition_line(r) for name, r in self._ladder.items()
                   if name not in self._journaled_ladder]
        for done in closed:
            key = self._recording(f"{track.name}/{done.segment.uri}")
            if not self._queue.put(key, done.data, M4S_TYPE):
                # Never stored: players skip it once it leaves memory (EXT-X-GAP).
                log.warning("session %s: %s segment %d refused by the upload queue, lost",
                            self.session_id, track.name, done.number)
                track.mark_gap(done.number)
            journal.append(RecordingJournal.segment_line(track.name, done.number,
                                                         track.segments[done.number]))
            if track.name == SOURCE_NAME:
                await self._append_source(ordinal, done.data)
        # Durable before anything names them after a restart: numbering goes on after these.
        await asyncio.to_thread(self._journal.append, journal)
        self._journaled_ladder.update(self._ladder)
        self._put_tail(track)  # after the segments: for another node, should this one die
        if len(track.segments) - track.recorded >= self._recording_every:
            self._put_recording_playlist(track, ended=False)

    def _put_recording_playlist(self, track: RenditionTrack, *, ended: bool) -> None:
        track.recorded = len(track.segments)
        text = render_recording_playlist(track.segments, ended=ended)
        self._queue.put(self._recording(f"{track.name}/{PLAYLIST_NAME}"), text.encode(),
                        M3U8_TYPE)

    def _put_tail(self, track: RenditionTrack) -> None:
        names = list(self._ladder)
        position = names.index(track.name) if track.name in self._ladder else len(names)
        tail = JournalTail(self._ladder.get(track.name), position, track.recorded,
                           track.segments[track.recorded:])
        self._queue.put(self._recording(f"{track.name}/{TAIL_NAME}"), render_tail(tail),
                        JSON_TYPE)

    async def _start_source(self, ordinal: int, init: bytes) -> None:
        # One file per epoch: its init and its segments are a whole fragmented MP4.
        path = self._source_files.get(ordinal)
        if path is None:
            path = self._source_files[ordinal] = self._work_dir / f"source-{ordinal:04d}.mp4"
            await asyncio.to_thread(_append, path, init)

    async def _append_source(self, ordinal: int, data: bytes) -> None:
        path = self._source_files.get(ordinal)
        if path is not None:
            await asyncio.to_thread(_append, path, data)

    # The live edge ---------------------------------------------------------------------

    def track(self, rendition: str) -> RenditionTrack | None:
        """A rendition players may watch live (None: no such rendition, or not yet)."""
        if rendition not in self._ladder:
            return None
        return self._tracks.get(rendition)

    def live_master(self) -> str | None:
        """The live ladder's master playlist; None before the first run began."""
        if not self._ladder:
            return None
        return render_master_playlist(list(self._ladder.values()), independent_segments=True)

    def live_playlist(self, rendition: str, *, skip: bool = False) -> str | None:
        """The live media playlist of `rendition`, with the other renditions' reports."""
        track = self.track(rendition)
        if track is None:
            return None
        reports = []
        for name in self._ladder:
            other = self._tracks.get(name)
            if other is not None and name != rendition:
                msn, part = other.report()
                reports.append(RenditionReport(f"../{name}/{PLAYLIST_NAME}", msn, part))
        return track.playlist(skip=skip, reports=tuple(reports))

    # After a restart ----------------------------------------------------------------------

    async def resume(self, storage: Storage, queued: Iterable[str] = ()) -> int:
        """Take up what an earlier process left of this session; returns the segments known.

        Call before anything else. `queued` names the keys the session's upload queue still
        holds (its spool). Each rendition goes on after its highest segment number found in
        the journal, the stored recording (its listing and playlist) or the spool; the next
        run starts with a discontinuity. A segment stored but never journaled is listed with
        a guessed duration; one journaled but neither stored nor queued is forgotten."""
        async with self._lock:
            if self._epochs or self._tracks or self._finished:
                raise RuntimeError(f"session {self.session_id}: resume comes first")
            state = await asyncio.to_thread(self._journal.load)
            self._source_files = await asyncio.to_thread(_source_files, self._work_dir)
            if self._source_files:
                self._epoch_base = max(self._source_files) + 1
            try:
                existing = set(await storage.list(self._recording("")))
                listed = True
            except StorageError as exc:
                log.warning("session %s: cannot list the stored recording (%s); going on "
                            "from the journal alone", self.session_id, exc)
                existing, listed = set(), False
            existing.update(queued)
            highest = self._highest_numbers(existing)
            for rendition in state.ladder:
                self._ladder.setdefault(rendition.name, rendition)
            tails: dict[str, JournalTail] = {}
            if listed:
                for name, top in highest.items():
                    if name not in self._ladder or len(state.segments.get(name, [])) <= top:
                        tail = await self._stored_tail(storage, name)
                        if tail is not None:
                            tails[name] = tail
            # The ladder another node began (this folder's journal knows none of it).
            for name, tail in sorted(tails.items(), key=lambda item: item[1].position):
                if tail.rendition is not None and tail.rendition.name == name:
                    self._ladder.setdefault(name, tail.rendition)
            if self._ladder:
                self._part_target = part_target(list(self._ladder.values()),
                                                self._part_seconds)
            known = 0
            for name in sorted(set(state.segments) | set(highest)):
                segments = list(state.segments.get(name, []))
                top = highest.get(name, -1)
                if listed and len(segments) <= top:
                    segments = await self._stored_segments(storage, name, segments,
                                                           tails.get(name))
                if listed:
                    while segments and self._recording(
                            f"{name}/{segments[-1].uri}") not in existing:
                        segments.pop()  # journaled, then the process died before the spool
                while len(segments) <= top:
                    number = len(segments)
                    guess = segments[-1].duration if segments else GUESSED_SECONDS
                    # A run's first segment is the one its stored init is named after.
                    init = init_name(number)
                    starts_run = self._recording(f"{name}/{init}") in existing
                    segments.append(Segment(segment_name(number), guess,
                                            starts_run and number > 0,
                                            init if starts_run else None))
                if segments:
                    self._track(name).restore(segments)
                    known += len(segments)
            self._journaled_ladder = set(self._ladder)
            source = self._tracks.get(SOURCE_NAME)
            recorded_source = len(source.segments) if source is not None else 0
            if state.stored_source:
                self._stored_source = min(state.stored_source, recorded_source)
            elif not self._source_files:
                # None of the source recorded so far is in this folder: storage has it.
                self._stored_source = recorded_source
            restored = {name: track.segments for name, track in self._tracks.items()}
            if restored != state.segments or self._stored_source != state.stored_source:
                # What storage and the spool hold won: the journal goes on from there.
                await asyncio.to_thread(self._journal.rewrite, JournalState(
                    list(self._ladder.values()), {n: list(s) for n, s in restored.items()},
                    self._stored_source))
            if known:
                log.info("session %s: resuming after %d recorded segments", self.session_id,
                         known)
            return known

    def _highest_numbers(self, keys: Iterable[str]) -> dict[str, int]:
        prefix = self._recording("")
        found: dict[str, int] = {}
        for key in keys:
            if not key.startswith(prefix):
                continue
            rendition, _, name = key[len(prefix):].partition("/")
            stem, dot, ext = name.partition(".")
            if dot and ext == "m4s" and stem.isdigit() and "/" not in name:
                found[rendition] = max(found.get(rendition, -1), int(stem))
        return found

    async def _stored_tail(self, storage: Storage, rendition: str) -> JournalTail | None:
        try:
            data = await storage.get(self._recording(f"{rendition}/{TAIL_NAME}"))
        except StorageError as exc:
            log.warning("session %s: cannot read the %s journal tail (%s)", self.session_id,
                        rendition, exc)
            return None
        return parse_tail(data) if data is not None else None

    async def _stored_segments(self, storage: Storage, rendition: str,
                               journaled: list[Segment], tail: JournalTail | None
                               ) -> list[Segment]:
        """The stored recording playlist's segments and its journal tail's after them,
        when they name more than the journal (the journal was lost with the work folder,
        or another node recorded them)."""
        segments: list[Segment] = []
        try:
            data = await storage.get(self._recording(f"{rendition}/{PLAYLIST_NAME}"))
            if data is not None:
                segments = list(parse_media_playlist(data.decode("utf-8", "replace")).segments)
        except (StorageError, PlaylistError):
            segments = []
        if any(s.uri != segment_name(n) for n, s in enumerate(segments)):
            segments = []
        if tail is not None and tail.start <= len(segments):
            # The tail was queued after the playlist it follows: it is the newer word.
            segments = segments[:tail.start] + tail.segments
        return segments if len(segments) > len(journaled) else journaled

    # The end ---------------------------------------------------------------------------

    async def finalize(self, storage: Storage, *, flush_timeout: float | None = None,
                       ffmpeg: str = "ffmpeg") -> str | None:
        """Close the session's media: VOD playlists, the MP4, what older versions kept
        under live/ removed.

        Called once, after the last worker stopped. Returns the MP4's key, or None when
        no source segment was ever received. Raises Mp4ExportError or StorageError when
        the MP4 could not be made or stored (live/ and work_dir are cleaned regardless).
        """
        async with self._lock:
            if self._finished:
                raise RuntimeError(f"session {self.session_id} already finalised")
            self._finished = True
            self._packagers.clear()  # what the last run's streams still held is dropped
            for track in self._tracks.values():
                # The last segment closes; players still watching learn the class ended.
                closed = track.end()
                if closed is not None:
                    await self._store(track.last_epoch, track, [closed])
            tracks = [t for t in self._tracks.values() if t.segments]
            keep = kept_renditions(self._quality, list(self._ladder.values()),
                                   (t.name for t in tracks),
                                   source_known=self._source_rendition is not None)
            # Renditions the recording does not keep go once the MP4 is made (the source
            # may be among them, and the MP4 may need its stored segments).
            dropped = [t.name for t in tracks if t.name not in keep]
            for track in tracks:
                if track.name in keep:
                    self._put_recording_playlist(track, ended=True)
            for track in self._tracks.values():
                # The VOD playlists name everything now (queued before these deletes).
                self._queue.delete(self._recording(f"{track.name}/{TAIL_NAME}"))
            recorded = [r for name, r in self._ladder.items()
                        if name in keep and name in self._tracks
                        and self._tracks[name].segments]
            if (SOURCE_NAME in keep and SOURCE_NAME not in self._ladder
                    and self._source_rendition is not None and self._quality == "source"):
                recorded.append(self._source_rendition)
            if recorded:
                self._queue.put(self._recording("master.m3u8"),
                                render_master_playlist(recorded, independent_segments=True
                                                       ).encode(), M3U8_TYPE)
            elif not tracks:
                self._queue.delete_prefix(self._recording(""))
            sources = [self._source_files[k] for k in sorted(self._source_files)]
            source = self._tracks.get(SOURCE_NAME)
            stored_runs = _runs(source.segments[:self._stored_source]) if source else []
        cancelled = False
        try:
            if not await self._queue.flush(flush_timeout):
                log.warning("session %s: recording uploads still pending after %s s",
                            self.session_id, flush_timeout)
            if stored_runs:
                sources = [*await self._fetch_runs(storage, stored_runs), *sources]
            if not sources:
                if tracks:
                    log.warning("session %s: no source segments, no MP4", self.session_id)
                self._drop_renditions(dropped)
                return None
            mp4 = self._work_dir / "recording.mp4"
            await export_mp4(sources, mp4, ffmpeg=ffmpeg)
            poster = self._work_dir / POSTER_NAME
            if await extract_poster(mp4, poster, ffmpeg=ffmpeg):
                # Small: through the queue, like the playlists (and spooled if need be).
                data = await asyncio.to_thread(poster.read_bytes)
                self._queue.put(self._recording(POSTER_NAME), data, JPEG_TYPE)
            try:
                await self._store_mp4(storage, mp4)
            except StorageError:
                # Storage is down: the MP4 is kept on this disk rather than lost.
                kept = self._work_dir.parent / "unsent" / f"session-{self.session_id}.mp4"
                await asyncio.to_thread(_move, mp4, kept)
                log.error("session %s: could not store the recording; kept at %s",
                          self.session_id, kept)
                raise
            self._drop_renditions(dropped)
            return self.mp4_key
        except asyncio.CancelledError:
            # Stopped part way (shutdown ran out of time): the work folder stays as it is,
            # for a later `resume` and `finalize` to complete the recording.
            cancelled = True
            raise
        finally:
            if not cancelled:
                await self._clean_up(flush_timeout)

    def _drop_renditions(self, names: Sequence[str]) -> None:
        """Delete the renditions `recording_quality` does not keep (queued: `_clean_up`
        waits for them with the rest)."""
        for name in names:
            self._queue.delete_prefix(self._recording(f"{name}/"))
        if names:
            log.info("session %s: recording_quality %s: dropped %s", self.session_id,
                     self._quality, ", ".join(names))

    async def _fetch_runs(self, storage: Storage, runs: list[list[tuple[int, Segment]]]
                          ) -> list[Path]:
        """The source of runs only storage holds, one fragmented MP4 per run in the work
        folder (init, then its segments): the MP4's first pieces. A segment or init storage
        cannot give is left out (a gap in the MP4, not a failed recording)."""
        pieces = []
        for index, run in enumerate(runs):
            first, segment = run[0]
            init = await storage.get(self._recording(
                f"{SOURCE_NAME}/{segment.init_uri or init_name(first)}"))
            if init is None:
                log.warning("session %s: the source init of segment %d is not stored; its "
                            "run is left out of the MP4", self.session_id, first)
                continue
            path = self._work_dir / f"stored-source-{index:04d}.mp4"
            await asyncio.to_thread(_write, path, init)
            for number, segment in run:
                data = None if segment.gap else await storage.get(
                    self._recording(f"{SOURCE_NAME}/{segment.uri}"))
                if data is None:
                    log.warning("session %s: source segment %d is not stored; left out of "
                                "the MP4", self.session_id, number)
                    continue
                await asyncio.to_thread(_append, path, data)
            pieces.append(path)
        return pieces

    async def let_go(self) -> None:
        """Another node carries the session now: stop, store nothing more of it (what is
        queued still goes), and drop the work folder. The recording is that node's."""
        async with self._lock:
            self._finished = True
            self._packagers.clear()
        await asyncio.to_thread(shutil.rmtree, self._work_dir, True)

    async def _clean_up(self, flush_timeout: float | None) -> None:
        self._queue.delete_prefix(self._live(""))
        if not await self._queue.flush(flush_timeout):
            log.warning("session %s: live/ removal still pending", self.session_id)
        await asyncio.to_thread(shutil.rmtree, self._work_dir, True)

    async def _store_mp4(self, storage: Storage, path: Path) -> None:
        for attempt in range(1, MP4_PUT_ATTEMPTS + 1):
            try:
                await storage.put_file(self.mp4_key, str(path), MP4_TYPE)
                return
            except StorageError as exc:
                if self._events is not None:
                    self._events(UploadFailed(self.mp4_key, str(exc)))
                if attempt == MP4_PUT_ATTEMPTS:
                    raise
                await asyncio.sleep(attempt)


def _source_files(work_dir: Path) -> dict[int, Path]:
    if not work_dir.is_dir():
        return {}
    found: dict[int, Path] = {}
    for path in work_dir.iterdir():
        match = _SOURCE_FILE.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def _runs(segments: list[Segment]) -> list[list[tuple[int, Segment]]]:
    """Numbered segments split where a new init begins (a run of the worker)."""
    runs: list[list[tuple[int, Segment]]] = []
    current: str | None = None
    for number, segment in enumerate(segments):
        if not runs or (segment.init_uri is not None and segment.init_uri != current):
            runs.append([])
            current = segment.init_uri
        runs[-1].append((number, segment))
    return runs


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as file:
        file.write(data)
