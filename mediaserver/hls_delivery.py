"""HLS playback over HTTP: LL-HLS while live, the recording after, behind playback tokens.

`GET /play/{session_id}/{token}/{path}` serves `master.m3u8`, `{rendition}/index.m3u8`,
segments `{rendition}/{n}.m4s`, parts `{rendition}/{n}.{p}.m4s`, init segments
`{rendition}/init_{n}.mp4`, `recording.mp4` and `poster.jpg`. While the session is live,
playlists and parts come from the session's output in this node's memory (the live edge,
`transcode.rendition_track`), and segments from memory or from the recording in storage,
where every segment is stored once; after the class, everything comes from storage. The
token is in the path, not a query or a header, so hls.js resolves the relative URIs
inside playlists to URLs that carry it, and a CDN can cache by URL.

Blocking playlist reloads (`_HLS_msn`, `_HLS_part`) wait on the rendition's next change,
never polling: a part's arrival wakes every waiting player at once, and the playlist each
is sent is rendered once per change. A request for the hinted next part waits the same
way. A request too far ahead is refused with 400, as the spec says; one not answered
within three target durations gets 503 (the publisher may have dropped), and the player
asks again. Delta updates (`_HLS_skip=YES`) keep reloads of a long class small.

Each (session, token) is authorized by the control port once and the grant is cached for a
few seconds: a player asks for a segment every couple of seconds per rung, and the
database must not be asked each time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from mediaserver.control_port import (
    PLAYBACK_GRANT_SECONDS,
    ControlPort,
    ControlUnavailable,
    PlaybackAllowed,
    PlaybackDecision,
    PlaybackRefused,
)
from mediaserver.http_errors import error_response
from mediaserver.metrics import Metrics
from transcode.media_types import JPEG_TYPE, M3U8_TYPE, M4S_TYPE, MP4_TYPE, TS_TYPE
from transcode.rendition_track import RenditionTrack
from transcode.session_output import SessionOutput
from transcode.storage.backend import RECORDINGS_PREFIX, Storage, StorageError

log = logging.getLogger(__name__)

__all__ = [
    "PLAY_ROUTE",
    "ByteRange",
    "HlsDelivery",
    "RangeNotSatisfiable",
    "TruncatedBody",
    "parse_range",
]

PLAY_ROUTE = "/play/{session_id}/{token}/{path:.+}"

REFUSAL_CACHE_SECONDS = 1.0
# Tokens come from the network: the cache is bounded so random tokens cannot grow it.
MAX_CACHED_DECISIONS = 10_000
MP4_CHUNK = 1 << 20

# fullmatch only, with explicit ASCII classes: `\d` would admit other scripts' digits.
# `.ts`: recordings made before segments became CMAF.
_PATH = re.compile(
    r"master\.m3u8|[a-z0-9_]{1,32}/index\.m3u8|[a-z0-9_]{1,32}/[0-9]{1,12}\.(ts|m4s)"
    r"|[a-z0-9_]{1,32}/[0-9]{1,12}\.[0-9]{1,4}\.m4s|[a-z0-9_]{1,32}/init_[0-9]{1,12}\.mp4"
    r"|recording\.mp4|poster\.jpg"
)
_MEDIA_FILE = re.compile(
    r"(?P<rendition>[a-z0-9_]{1,32})/(?:(?P<number>[0-9]{1,12})(?:\.(?P<part>[0-9]{1,4}))?"
    r"\.m4s|(?P<init>init_[0-9]{1,12}\.mp4)|(?P<playlist>index\.m3u8))"
)
_QUERY_NUMBER = re.compile(r"[0-9]{1,9}")
# A blocking request is answered within this many target durations (the spec's advice to
# players is to give up after three).
BLOCK_TARGETS = 3.0
# Further ahead than this many segments past the one being made is a bad request.
MSN_AHEAD = 2
# Made when the recording is finalised: never under live/.
_RECORDING_ONLY = frozenset({"recording.mp4", "poster.jpg"})
# A player fetches its live playlist every few seconds: a token unseen this long has left.
VIEWER_SECONDS = 30.0
_SESSION_ID = re.compile(r"[0-9]{1,18}")
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")


# Segment numbers run on within a session (a reconnect continues them), so a segment's,
# part's or init's URL never names different bytes: any cache may keep it for good. The
# edge (mediaserver.edge) checks each student's token itself and keys its cache without
# it, so one copy serves the class; a cache keyed by the whole URL (token included) can
# only hand a removed student again what that student already fetched, never the next
# part. Playlists change with every part: a plain reload is never kept. A blocking reload's
# answer (`_HLS_msn`) holds the part asked for, whoever asked: a shared cache may give it
# to everyone asking the same question for a second (as a CDN does for LL-HLS), longer
# would walk a late player through old playlists. Refusals and errors are never kept.
PLAYLIST_CACHE = "no-cache"
BLOCKING_PLAYLIST_CACHE = "public, max-age=1"
SEGMENT_CACHE = "public, max-age=86400, immutable"
# The recording is final once it exists, but a short lifetime lets a re-encode show up.
# Only the viewer's browser keeps it: the edge passes the large, ranged download through.
RECORDING_CACHE = "private, max-age=3600"
ERROR_CACHE = "no-store"

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges",
}
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range",
    "Access-Control-Max-Age": "86400",
}


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` to `end`, inclusive, of an object of `size` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


class TruncatedBody(Exception):
    """Storage failed after the headers were sent: the only honest answer left is to drop
    the connection, which raising from the handler does."""


class RangeNotSatisfiable(Exception):
    """The Range header is well-formed but lies outside the object: 416."""


def parse_range(header: str, size: int) -> ByteRange | None:
    """A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range clipped to `size`; None when the
    header is absent, malformed or asks for several ranges (the whole object is then sent,
    as RFC 9110 allows); RangeNotSatisfiable when it starts past the end."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(size - suffix, 0), size - 1, size)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    return ByteRange(start, min(end, size - 1), size)


@dataclass
class _Cached:
    decision: PlaybackDecision
    until: float


def _error(status: int, code: str, message: str) -> web.Response:
    response = error_response(status, code, message)
    response.headers.update(CORS_HEADERS)
    response.headers["Cache-Control"] = ERROR_CACHE
    return response


def _content_type(path: str) -> tuple[str, str]:
    if path.endswith(".m3u8"):
        return M3U8_TYPE, PLAYLIST_CACHE
    if path.endswith(".m4s"):
        return M4S_TYPE, SEGMENT_CACHE
    if path.endswith(".ts"):
        return TS_TYPE, SEGMENT_CACHE
    if "/init_" in path:
        return MP4_TYPE, SEGMENT_CACHE
    if path.endswith(".jpg"):
        return JPEG_TYPE, RECORDING_CACHE
    return MP4_TYPE, RECORDING_CACHE


class HlsDelivery:
    """Serves a session's HLS ladder and recording to holders of a playback token."""

    def __init__(
        self,
        control: ControlPort,
        storage: Storage,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        live: Callable[[int], SessionOutput | None] = lambda session_id: None,
    ) -> None:
        self._control = control
        self._live = live
        self._storage = storage
        self._metrics = metrics
        self._clock = clock
        self._cache: OrderedDict[tuple[int, str], _Cached] = OrderedDict()
        # Parallel requests of one player (a playlist and segments of several rungs) share
        # one control-plane question instead of each asking.
        self._pending: dict[tuple[int, str], asyncio.Task[PlaybackDecision]] = {}
        # Live viewers: each player holds its own token; when each was last seen.
        self._seen: dict[int, dict[str, float]] = {}

    def viewers(self, session_id: int) -> int:
        """Players of the live session seen in the last VIEWER_SECONDS (one per token: a
        viewer who reloads the page counts twice for a little while)."""
        seen = self._seen.get(session_id)
        if not seen:
            return 0
        horizon = self._clock() - VIEWER_SECONDS
        for token in [t for t, at in seen.items() if at < horizon]:
            del seen[token]
        if not seen:
            del self._seen[session_id]
        return len(seen)

    def add_routes(self, app: web.Application) -> None:
        resource = app.router.add_resource(PLAY_ROUTE, name="hls_play")
        resource.add_route("GET", self.handle)
        resource.add_route("HEAD", self.handle)
        resource.add_route("OPTIONS", self.preflight)

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=PREFLIGHT_HEADERS)

    # -- authorization ----------------------------------------------------------------

    async def authorize(self, session_id: int, token: str) -> PlaybackDecision:
        """The control port's answer, from the cache while it is fresh.

        Raises ControlUnavailable when the control plane cannot answer (never cached)."""
        key = (session_id, token)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None:
            if now < cached.until:
                self._cache.move_to_end(key)
                return cached.decision
            del self._cache[key]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.create_task(self._ask(key))
            # If every waiter hung up, nobody reads a failure: mark it read, not "lost".
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._pending[key] = task
        # Shielded: one viewer hanging up must not cancel the question others wait on.
        return await asyncio.shield(task)

    async def _ask(self, key: tuple[int, str]) -> PlaybackDecision:
        session_id, token = key
        try:
            decision = await self._control.authorize_playback(session_id, token)
        finally:
            self._pending.pop(key, None)
        now = self._clock()
        if isinstance(decision, PlaybackAllowed):
            until = min(decision.expires_at, now + PLAYBACK_GRANT_SECONDS)
        else:
            until = now + REFUSAL_CACHE_SECONDS
        if until > now:
            self._cache[key] = _Cached(decision, until)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_CACHED_DECISIONS:
                self._cache.popitem(last=False)
        return decision

    # -- serving ----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw_sid = request.match_info["session_id"]
        token = request.match_info["token"]
        path = request.match_info["path"]
        # Checked before anything else: a path outside the four shapes (`..`, encoded
        # slashes, other files) never reaches the control plane or storage.
        if _SESSION_ID.fullmatch(raw_sid) is None or _PATH.fullmatch(path) is None:
            return _error(404, "not_found", "no such playback file")
        session_id = int(raw_sid)
        try:
            decision = await self.authorize(session_id, token)
        except ControlUnavailable:
            return _error(503, "control_unavailable", "playback cannot be checked now; retry")
        if isinstance(decision, PlaybackRefused):
            if self._metrics is not None:
                self._metrics.playback_refused(decision.reason)
            return _error(403, decision.reason, "this playback token may not play this")
        if decision.session_id != session_id:
            # A control port must not grant another session than asked; refuse if it does.
            return _error(403, "wrong_session", "this playback token may not play this")
        if path in _RECORDING_ONLY and decision.live:
            return _error(404, "not_found", "the recording is not ready while live")
        if decision.live:
            seen = self._seen.setdefault(session_id, {})
            seen[token] = self._clock()
            if len(seen) > 10_000:
                self.viewers(session_id)  # prune, so tokens cannot grow it without end
        key = f"{RECORDINGS_PREFIX}{session_id}/{path}"
        try:
            if path == "recording.mp4":
                return await self._send_recording(request, key, session_id)
            if decision.live:
                return await self._send_live(request, session_id, key, path)
            return await self._send_object(request, key, path)
        except StorageError:
            return _error(503, "storage_unavailable", "media storage is unavailable; retry")

    # -- the live edge ----------------------------------------------------------------

    async def _send_live(self, request: web.Request, session_id: int, key: str,
                         path: str) -> web.StreamResponse:
        output = self._live(session_id)
        if output is None:
            # Live, but its media is not open on this node (starting, or elsewhere).
            return _error(503, "media_unavailable", "the live media is not here yet; retry")
        if path == "master.m3u8":
            master = output.live_master()
            if master is None:
                return _error(503, "media_unavailable", "the class has no media yet; retry")
            return self._text(master, path)
        match = _MEDIA_FILE.fullmatch(path)
        if match is None:  # an old `.ts` name: never live any more
            return _error(404, "not_found", "no such playback file")
        track = output.track(match["rendition"])
        if track is None:
            return _error(404, "not_found", "no such rendition")
        if match["playlist"]:
            return await self._send_playlist(request, output, track)
        if match["init"]:
            data = track.init_data(match["init"])
        elif match["part"] is not None:
            return await self._send_part(track, int(match["number"]), int(match["part"]),
                                         path)
        else:
            data = track.segment_data(int(match["number"]))
        if data is None:
            return await self._send_object(request, key, path)
        return self._bytes(data, path)

    async def _send_playlist(self, request: web.Request, output: SessionOutput,
                             track: RenditionTrack) -> web.StreamResponse:
        query = request.query
        raw_msn, raw_part = query.get("_HLS_msn"), query.get("_HLS_part")
        skip = query.get("_HLS_skip")
        if skip is not None and skip not in ("YES", "v2"):
            return _error(400, "bad_request", "_HLS_skip is YES or v2")
        if raw_msn is not None or raw_part is not None:
            if raw_msn is None or _QUERY_NUMBER.fullmatch(raw_msn) is None or (
                    raw_part is not None and _QUERY_NUMBER.fullmatch(raw_part) is None):
                return _error(400, "bad_request",
                              "_HLS_msn is a segment number; _HLS_part needs it")
            msn = int(raw_msn)
            part = int(raw_part) if raw_part is not None else None
            refusal = self._too_far(track, msn, part)
            if refusal is not None:
                return refusal
            if not await track.wait(msn, part, BLOCK_TARGETS * track.target):
                return _error(503, "not_ready", "no such part yet; retry")
        text = output.live_playlist(track.name, skip=skip is not None)
        if text is None:
            return _error(404, "not_found", "no such rendition")
        response = self._text(text, "index.m3u8")
        if raw_msn is not None:
            response.headers["Cache-Control"] = BLOCKING_PLAYLIST_CACHE
        return response

    @staticmethod
    def _too_far(track: RenditionTrack, msn: int, part: int | None) -> web.Response | None:
        if msn > track.open_number + MSN_AHEAD:
            return _error(400, "too_far_ahead", "that segment is too far ahead of the live edge")
        # No segment holds more parts than its longest duration allows, twice over.
        most_parts = 2 * math.ceil(track.target / track.part_target)
        if part is not None and part > most_parts:
            return _error(400, "too_far_ahead", "that part is too far ahead of the live edge")
        return None

    async def _send_part(self, track: RenditionTrack, number: int, index: int,
                         path: str) -> web.StreamResponse:
        data = track.part_data(number, index)
        # The part being made, or the first of the next segment (hinted at the end of one).
        upcoming = number == track.open_number or (number == track.open_number + 1
                                                   and index == 0)
        if data is None and upcoming and not track.ended:
            # The hinted next part: answered as soon as it is complete.
            if self._too_far(track, number, index) is None and await track.wait(
                    number, index, BLOCK_TARGETS * track.target):
                data = track.part_data(number, index)
        if data is None:
            return _error(404, "not_found", "no such part (gone, or not made)")
        return self._bytes(data, path)

    def _text(self, text: str, path: str) -> web.Response:
        return self._bytes(text.encode(), path)

    def _bytes(self, data: bytes, path: str) -> web.Response:
        content_type, cache = _content_type(path)
        self._count_bytes(len(data))
        return web.Response(body=data, content_type=content_type,
                            headers={**CORS_HEADERS, "Cache-Control": cache})

    async def _send_object(
        self, request: web.Request, key: str, path: str
    ) -> web.StreamResponse:
        content_type, cache = _content_type(path)
        headers = {**CORS_HEADERS, "Cache-Control": cache}
        if request.method == "HEAD":
            size = await self._storage.size(key)
            if size is None:
                return _error(404, "not_found", "no such playback file")
            head = web.StreamResponse(headers={**headers, "Content-Type": content_type})
            head.content_length = size
            await head.prepare(request)
            await head.write_eof()
            return head
        data = await self._storage.get(key)
        if data is None:
            return _error(404, "not_found", "no such playback file")
        self._count_bytes(len(data))
        return web.Response(body=data, content_type=content_type, headers=headers)

    async def _send_recording(
        self, request: web.Request, key: str, session_id: int
    ) -> web.StreamResponse:
        size = await self._storage.size(key)
        if size is None:
            return _error(404, "not_found", "the recording is not available")
        headers = {
            **CORS_HEADERS,
            "Content-Type": MP4_TYPE,
            "Cache-Control": RECORDING_CACHE,
            "Content-Disposition": f'attachment; filename="session-{session_id}.mp4"',
        }
        byte_range: ByteRange | None = None
        headers["Accept-Ranges"] = "bytes"
        header = request.headers.get("Range")
        # With If-Range we cannot prove the file is unchanged (no validator): send it all.
        if header is not None and "If-Range" not in request.headers:
            try:
                byte_range = parse_range(header, size)
            except RangeNotSatisfiable:
                refusal = _error(416, "range_not_satisfiable", "the range is past the end")
                refusal.headers["Content-Range"] = f"bytes */{size}"
                return refusal
        response = web.StreamResponse(headers=headers)
        if byte_range is not None:
            response.set_status(206)
            response.headers["Content-Range"] = byte_range.content_range
            response.content_length = byte_range.length
        else:
            response.content_length = size
        if request.method == "HEAD":
            await response.prepare(request)
            await response.write_eof()
            return response

        chunks = self._open(key, byte_range)
        try:
            # The first chunk is read before the headers go out, so a missing object or a
            # storage failure can still be answered with a proper status.
            try:
                first = await anext(chunks, b"")
            except KeyError:
                return _error(404, "not_found", "the recording is not available")
            await response.prepare(request)
            try:
                await self._write_body(response, first, chunks)
            except StorageError as exc:
                # Past the headers a failure can only cut the body short: the connection is
                # dropped and the client sees fewer bytes than Content-Length promised.
                log.warning("recording %s cut short: %s", key, exc)
                raise TruncatedBody(key) from exc
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        return response

    async def _write_body(
        self, response: web.StreamResponse, first: bytes, chunks: AsyncIterator[bytes]
    ) -> None:
        if first:
            await response.write(first)
            self._count_bytes(len(first))
        async for chunk in chunks:
            await response.write(chunk)
            self._count_bytes(len(chunk))
        await response.write_eof()

    def _count_bytes(self, n: int) -> None:
        if self._metrics is not None:
            self._metrics.playback_bytes(n)

    def _open(self, key: str, byte_range: ByteRange | None) -> AsyncIterator[bytes]:
        if byte_range is not None:
            return self._storage.stream_range(key, byte_range.start, byte_range.length, MP4_CHUNK)
        return self._storage.stream(key, MP4_CHUNK)
