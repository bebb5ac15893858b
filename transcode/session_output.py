"""One live session's media in storage, across every ffmpeg run and publisher reconnect.

Each ffmpeg run (an "epoch": a worker's run, named "{token}/{run}" by the segment
receiver) numbers its segments from zero. Here they get the session's own numbers,
continuous per rendition across epochs, with a discontinuity where an epoch begins, and
we write our own playlists:

    live/{sid}/master.m3u8              the ladder
    live/{sid}/{R}/index.m3u8           sliding window over live/{sid}/{R}/{n:06d}.ts
    recordings/{sid}/master.m3u8        the same ladder, for the recording
    recordings/{sid}/{R}/index.m3u8     every segment: EVENT while live, VOD once finalised
    recordings/{sid}/recording.mp4      made at the end from the `source` rendition

A segment is held in memory until its run's playlist names it (ffmpeg writes the
playlist after finishing a segment), so only finished segments with known durations are
published; everything goes out through the upload queue, which applies operations in
order, so a segment always reaches storage before a playlist naming it.

A process that dies mid-class leaves the session live. Each published segment is noted in
the work folder's journal (transcode.recording_journal), so a new `SessionOutput` of the
same session can `resume`: it numbers on from the highest segment known (journal, stored
recording and spool), the next run starting with a discontinuity, and never overwrites
one. `finalize` cancelled part way (a stop that ran out of time) leaves the work folder as
it was, so finalising again after a restart completes it.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import re
import shutil
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from transcode.events import EventSink, UploadFailed
from transcode.hls_playlist import (
    MediaPlaylist,
    PlaylistError,
    Segment,
    parse_media_playlist,
    render_live_playlist,
    render_master_playlist,
    render_recording_playlist,
    target_duration,
)
from transcode.ladder import SOURCE_NAME, Rendition
from transcode.media_types import JPEG_TYPE, M3U8_TYPE, MP4_TYPE, TS_TYPE
from transcode.mp4_export import export_mp4
from transcode.poster import extract_poster
from transcode.recording_journal import JournalState, RecordingJournal
from transcode.storage.backend import LIVE_PREFIX, RECORDINGS_PREFIX, Storage, StorageError

__all__ = ["OutputQueue", "SessionOutput"]

log = logging.getLogger(__name__)

PLAYLIST_NAME = "index.m3u8"
POSTER_NAME = "poster.jpg"
# Live segments kept beyond the window, for players that fetched an older playlist.
LIVE_SPARE = 2
# While live nobody plays the recording playlists (players get the live window), so they
# are rewritten only this often, for a crash to lose little: rewriting a two-hour
# playlist after every segment would send gigabytes of playlist through the queue.
RECORDING_PLAYLIST_EVERY = 30
# Segments waiting for a playlist, per run and rendition; ffmpeg needs one at a time.
MAX_HELD = 4
# A named segment that never arrived is given up once this many later ones are here.
SKIP_AFTER = 2
MP4_PUT_ATTEMPTS = 3
# The duration given to a stored segment the journal never named (the process died right
# after queueing it): close to the usual segment length, and it keeps the segment listed.
GUESSED_SECONDS = 2.0
_SOURCE_FILE = re.compile(r"source-(\d{4,})\.ts")


class OutputQueue(Protocol):
    """What we need of the upload queue (transcode.storage.upload_queue.UploadQueue)."""

    # False: refused (the spool is full or cannot be written), the bytes will never be stored.
    def put(self, key: str, data: bytes, content_type: str, *, also: tuple[str, ...] = ()
            ) -> bool: ...

    def delete(self, key: str) -> bool: ...

    def delete_prefix(self, prefix: str) -> bool: ...

    async def flush(self, timeout: float | None = None) -> bool: ...  # noqa: ASYNC109


@dataclass
class _Track:
    """One rendition of the session: its numbering and segments across all epochs."""

    name: str
    segments: list[Segment] = field(default_factory=list)  # segment n is segments[n]
    last_epoch: int = -1  # ordinal of the epoch that gave the latest segment
    discontinuities: list[int] = field(default_factory=list)  # numbers that start an epoch
    live_since: int | None = None  # first number published under live/
    live_floor: int = 0  # lowest number possibly still under live/
    live_target: int = 1  # the live target duration never shrinks
    recorded: int = 0  # segments named by the recording playlist last written
    gap: bool = False  # a segment was refused by the queue: the next one is a discontinuity

    def discontinuities_before(self, number: int) -> int:
        return sum(1 for n in self.discontinuities if n < number)


@dataclass
class _Feed:
    """What one epoch sent for one rendition: held segments and its latest playlist."""

    held: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    taken: set[str] = field(default_factory=set)  # file names already numbered or skipped
    next_sequence: int | None = None  # the playlist position to take next
    playlist: MediaPlaylist | None = None


class SessionOutput:
    """Turns the segments and playlists of a session's ffmpeg runs into stored HLS."""

    def __init__(self, session_id: int, queue: OutputQueue, *, window: int, work_dir: Path,
                 events: EventSink | None = None,
                 recording_playlist_every: int = RECORDING_PLAYLIST_EVERY) -> None:
        self._recording_every = recording_playlist_every
        if window < 1:
            raise ValueError("the live window needs at least one segment")
        self.session_id = session_id
        self._queue = queue
        self._window = window
        self._work_dir = Path(work_dir)
        self._events = events
        self._lock = asyncio.Lock()
        self._ladder: dict[str, Rendition] = {}
        self._epochs: dict[str, int] = {}
        self._tracks: dict[str, _Track] = {}
        self._feeds: dict[tuple[int, str], _Feed] = {}
        self._source_files: dict[int, Path] = {}  # epoch ordinal -> its source TS, appended
        self._epoch_base = 0  # epochs of an earlier process (resume) come before ours
        self._journal = RecordingJournal(self._work_dir)
        self._journaled_ladder: set[str] = set()
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

    def start_epoch(self, epoch: str, renditions: Sequence[Rendition]) -> None:
        """A run begins: remember its order; new rendition names join the ladder.

        The first epoch's renditions define the ladder; a later epoch's rendition with a
        known name continues it (its first segment is marked as a discontinuity). Not a
        coroutine, so an event callback can call it; it only queues uploads.
        """
        if self._finished:
            return
        self._epoch(epoch)
        grew = False
        for rendition in renditions:
            if rendition.name not in self._ladder:
                self._ladder[rendition.name] = rendition
                grew = True
        if grew:
            master = render_master_playlist(list(self._ladder.values())).encode()
            self._queue.put(self._live("master.m3u8"), master, M3U8_TYPE,
                            also=(self._recording("master.m3u8"),))

    # Receiving -------------------------------------------------------------------------

    async def receive(self, epoch: str, rendition: str, filename: str, data: bytes) -> None:
        """A file ffmpeg wrote: `seg_NNNNN.ts` (held) or `index.m3u8` (publishes segments)."""
        async with self._lock:
            if self._finished:
                log.debug("session %s finished: dropping %s/%s", self.session_id,
                          rendition, filename)
                return
            ordinal = self._epoch(epoch)
            track = self._tracks.get(rendition)
            if track is not None and ordinal < track.last_epoch:
                # An older run talking after a newer one took over: too late to number.
                log.info("session %s: late %s/%s from an earlier run dropped",
                         self.session_id, rendition, filename)
                return
            feed = self._feeds.setdefault((ordinal, rendition), _Feed())
            if filename == PLAYLIST_NAME:
                try:
                    feed.playlist = parse_media_playlist(data.decode("utf-8", "replace"))
                except PlaylistError as exc:
                    log.warning("session %s: unreadable playlist for %s: %s",
                                self.session_id, rendition, exc)
                    return
            elif filename in feed.taken:
                return  # a retried upload of a segment already published
            else:
                feed.held[filename] = data
                while len(feed.held) > MAX_HELD:
                    dropped, _ = feed.held.popitem(last=False)
                    log.warning("session %s: %s/%s never named by a playlist, dropped",
                                self.session_id, rendition, dropped)
            ready = self._take_named(feed, rendition)
            if ready:
                await self._publish(ordinal, rendition, ready)

    def _take_named(self, feed: _Feed, rendition: str) -> list[tuple[bytes, float]]:
        """Held segments the playlist now names, in playlist order, with durations."""
        playlist = feed.playlist
        if playlist is None:
            return []
        if feed.next_sequence is None:
            feed.next_sequence = playlist.media_sequence
        entries = list(enumerate(playlist.segments, start=playlist.media_sequence))
        ready: list[tuple[bytes, float]] = []
        for index, (sequence, segment) in enumerate(entries):
            if sequence < feed.next_sequence:
                continue
            name = posixpath.basename(segment.uri.split("?", 1)[0])
            data = feed.held.pop(name, None)
            if data is None and name not in feed.taken:
                later_here = sum(1 for _, s in entries[index + 1:]
                                 if posixpath.basename(s.uri.split("?", 1)[0]) in feed.held)
                if later_here < SKIP_AFTER:
                    break  # not uploaded yet: wait for it, keeping the order
                log.warning("session %s: %s/%s named but never received, skipped",
                            self.session_id, rendition, name)
            feed.taken.add(name)
            feed.next_sequence = sequence + 1
            if data is not None:
                ready.append((data, segment.duration))
        return ready

    async def _publish(self, ordinal: int, rendition: str,
                       ready: list[tuple[bytes, float]]) -> None:
        """Number `ready` segments of `rendition` and queue them, then the playlists."""
        track = self._tracks.setdefault(rendition, _Track(rendition))
        live = rendition in self._ladder
        new_epoch = ordinal != track.last_epoch
        if new_epoch:
            # This rendition moved on: whatever older runs still hold is never published.
            for key in [k for k in self._feeds if k[1] == rendition and k[0] < ordinal]:
                del self._feeds[key]
        journal = [RecordingJournal.rendition_line(r) for name, r in self._ladder.items()
                   if name not in self._journaled_ladder]
        for data, duration in ready:
            number = len(track.segments)
            name = f"{number:06d}.ts"
            recorded = self._recording(f"{rendition}/{name}")
            if live:
                # Spooled once, stored under both keys.
                accepted = self._queue.put(self._live(f"{rendition}/{name}"), data, TS_TYPE,
                                           also=(recorded,))
            else:
                accepted = self._queue.put(recorded, data, TS_TYPE)
            if not accepted:
                # Never stored: it gets no number, and the media jumps where it was.
                log.warning("session %s: %s segment refused by the upload queue, lost",
                            self.session_id, rendition)
                track.gap = True
                continue
            discontinuity = (new_epoch or track.gap) and number > 0
            if discontinuity:
                track.discontinuities.append(number)
            new_epoch = track.gap = False
            track.segments.append(Segment(name, duration, discontinuity))
            journal.append(RecordingJournal.segment_line(rendition, number, track.segments[-1]))
            if live and track.live_since is None:
                track.live_since = track.live_floor = number
            if rendition == SOURCE_NAME:
                await self._append_source(ordinal, data)
        track.last_epoch = ordinal
        # Durable before the playlists name them: a restart numbers on after these.
        await asyncio.to_thread(self._journal.append, journal)
        self._journaled_ladder.update(self._ladder)
        if live:
            self._put_live_playlist(track)
        if len(track.segments) - track.recorded >= self._recording_every:
            self._put_recording_playlist(track, ended=False)
        if live:
            self._delete_old_live(track)

    def _put_live_playlist(self, track: _Track, *, ended: bool = False) -> None:
        assert track.live_since is not None
        start = max(track.live_since, len(track.segments) - self._window)
        window = track.segments[start:]
        track.live_target = max(track.live_target,
                                target_duration([s.duration for s in window]))
        text = render_live_playlist(window, media_sequence=start,
                                    discontinuity_sequence=track.discontinuities_before(start),
                                    min_target=track.live_target, ended=ended)
        self._queue.put(self._live(f"{track.name}/{PLAYLIST_NAME}"), text.encode(), M3U8_TYPE)

    def _put_recording_playlist(self, track: _Track, *, ended: bool) -> None:
        track.recorded = len(track.segments)
        text = render_recording_playlist(track.segments, ended=ended)
        self._queue.put(self._recording(f"{track.name}/{PLAYLIST_NAME}"), text.encode(),
                        M3U8_TYPE)

    def _delete_old_live(self, track: _Track) -> None:
        keep_from = len(track.segments) - self._window - LIVE_SPARE
        while track.live_floor < keep_from:
            self._queue.delete(self._live(f"{track.name}/{track.live_floor:06d}.ts"))
            track.live_floor += 1

    async def _append_source(self, ordinal: int, data: bytes) -> None:
        # One file per epoch: a run's segments joined are its continuous TS stream.
        path = self._source_files.get(ordinal)
        if path is None:
            path = self._source_files[ordinal] = self._work_dir / f"source-{ordinal:04d}.ts"
        await asyncio.to_thread(_append, path, data)

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
            known = 0
            for name in sorted(set(state.segments) | set(highest)):
                segments = list(state.segments.get(name, []))
                top = highest.get(name, -1)
                if listed and len(segments) <= top:
                    segments = await self._stored_segments(storage, name, segments)
                if listed:
                    while segments and self._recording(
                            f"{name}/{segments[-1].uri}") not in existing:
                        segments.pop()  # journaled, then the process died before the spool
                while len(segments) <= top:
                    guess = segments[-1].duration if segments else GUESSED_SECONDS
                    segments.append(Segment(f"{len(segments):06d}.ts", guess))
                if segments:
                    self._tracks[name] = _Track(
                        name, segments=segments,
                        discontinuities=[n for n, s in enumerate(segments) if s.discontinuity])
                    known += len(segments)
            for rendition in state.ladder:
                self._ladder.setdefault(rendition.name, rendition)
            self._journaled_ladder = set(self._ladder)
            restored = {name: track.segments for name, track in self._tracks.items()}
            if restored != state.segments:
                # What storage and the spool hold won: the journal goes on from there.
                await asyncio.to_thread(self._journal.rewrite, JournalState(
                    list(self._ladder.values()), {n: list(s) for n, s in restored.items()}))
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
            if dot and ext == "ts" and stem.isdigit() and "/" not in name:
                found[rendition] = max(found.get(rendition, -1), int(stem))
        return found

    async def _stored_segments(self, storage: Storage, rendition: str,
                               journaled: list[Segment]) -> list[Segment]:
        """The stored recording playlist's segments, when it names more than the journal
        (the journal was lost with the work folder)."""
        try:
            data = await storage.get(self._recording(f"{rendition}/{PLAYLIST_NAME}"))
            playlist = parse_media_playlist((data or b"").decode("utf-8", "replace"))
        except (StorageError, PlaylistError):
            return journaled
        segments = list(playlist.segments)
        if len(segments) <= len(journaled) or any(
                s.uri != f"{n:06d}.ts" for n, s in enumerate(segments)):
            return journaled
        return segments

    # The end ---------------------------------------------------------------------------

    async def finalize(self, storage: Storage, *, flush_timeout: float | None = None,
                       ffmpeg: str = "ffmpeg") -> str | None:
        """Close the session's media: VOD playlists, the MP4, live/ removed.

        Called once, after the last worker stopped. Returns the MP4's key, or None when
        no source segment was ever received. Raises Mp4ExportError or StorageError when
        the MP4 could not be made or stored (live/ and work_dir are cleaned regardless).
        """
        async with self._lock:
            if self._finished:
                raise RuntimeError(f"session {self.session_id} already finalised")
            self._finished = True
            self._feeds.clear()  # unnamed segments of the last run are never published
            tracks = [t for t in self._tracks.values() if t.segments]
            for track in tracks:
                if track.live_since is not None:
                    # Players still watching learn the class ended before live/ goes.
                    self._put_live_playlist(track, ended=True)
                self._put_recording_playlist(track, ended=True)
            recorded = [r for name, r in self._ladder.items()
                        if name in self._tracks and self._tracks[name].segments]
            if recorded:
                self._queue.put(self._recording("master.m3u8"),
                                render_master_playlist(recorded).encode(), M3U8_TYPE)
            elif not tracks:
                self._queue.delete_prefix(self._recording(""))
            sources = [self._source_files[k] for k in sorted(self._source_files)]
        cancelled = False
        try:
            if not await self._queue.flush(flush_timeout):
                log.warning("session %s: recording uploads still pending after %s s",
                            self.session_id, flush_timeout)
            if not sources:
                if tracks:
                    log.warning("session %s: no source segments, no MP4", self.session_id)
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
            return self.mp4_key
        except asyncio.CancelledError:
            # Stopped part way (shutdown ran out of time): the work folder stays as it is,
            # for a later `resume` and `finalize` to complete the recording.
            cancelled = True
            raise
        finally:
            if not cancelled:
                await self._clean_up(flush_timeout)

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


def _move(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)


def _append(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as file:
        file.write(data)
