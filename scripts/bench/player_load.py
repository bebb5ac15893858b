"""N HLS players as asyncio aiohttp clients on one media playlist: what an LL-HLS player
asks of a server, without decoding anything.

Each client GETs the playlist, then, if the playlist says `CAN-BLOCK-RELOAD=YES`
(EXT-X-SERVER-CONTROL), asks again at once for the next part with `_HLS_msn`/`_HLS_part`
(the part after the last EXT-X-PART listed, as the EXT-X-PRELOAD-HINT names it; the next
segment with `_HLS_msn` alone when there are no parts): a blocking reload, answered when
that part exists. Otherwise it polls like a legacy player, every half target duration.
After each playlist it GETs every part (or segment, without parts) it has not fetched
yet; it starts at the live edge (the last part or segment listed, after the EXT-X-MAP
initialisation segment if there is one). Bodies are read and
dropped. Every client stops at its deadline.

A playlist with parts that cannot block (a static server's copy of an LL-HLS playlist)
is polled every PART-TARGET instead: what an LL-HLS player does without blocking reloads,
the same number of requests per part as blocking, at up to a part's extra delay.

Each player may have its own URL (its own playback token, as real students have). With
`PartTimes` in the figures, every part's fetch is recorded (when its bytes were all read,
by which player, and how long its GET took), for latency against the part's listing.
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.parse
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Segment:
    sequence: int
    uri: str | None  # None: still in progress (only parts listed yet)
    parts: list[str] = field(default_factory=list)


@dataclass
class Playlist:
    target_s: float = 2.0
    part_target_s: float | None = None  # EXT-X-PART-INF's PART-TARGET
    can_block: bool = False
    ended: bool = False
    map_uri: str | None = None  # fMP4's initialisation segment (EXT-X-MAP)
    segments: list[Segment] = field(default_factory=list)

    @property
    def has_parts(self) -> bool:
        return any(s.parts for s in self.segments)

    def next_request(self) -> tuple[int, int | None]:
        """(_HLS_msn, _HLS_part) of the next part (part None: the next whole segment)."""
        last = self.segments[-1]
        if not self.has_parts:
            return last.sequence + 1, None
        if last.uri is None:
            return last.sequence, len(last.parts)
        return last.sequence + 1, 0

    def media(self) -> list[str]:
        """The URIs a player downloads, oldest first: parts if listed, else segments."""
        if self.has_parts:
            return [p for s in self.segments for p in s.parts]
        return [s.uri for s in self.segments if s.uri]


def _attribute(line: str, name: str) -> str | None:
    for item in line.split(":", 1)[1].split(","):
        key, _, value = item.partition("=")
        if key.strip() == name:
            return value.strip().strip('"')
    return None


def parse(text: str) -> Playlist:
    playlist = Playlist()
    sequence = 0
    parts: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-TARGETDURATION:"):
            playlist.target_s = float(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PART-INF:"):
            part_target = _attribute(line, "PART-TARGET")
            playlist.part_target_s = float(part_target) if part_target else None
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-SERVER-CONTROL:"):
            playlist.can_block = _attribute(line, "CAN-BLOCK-RELOAD") == "YES"
        elif line.startswith("#EXT-X-PART:"):
            uri = _attribute(line, "URI")
            if uri:
                parts.append(uri)
        elif line.startswith("#EXT-X-MAP:"):
            playlist.map_uri = _attribute(line, "URI")
        elif line.startswith("#EXT-X-ENDLIST"):
            playlist.ended = True
        elif line and not line.startswith("#"):
            playlist.segments.append(Segment(sequence, line, parts))
            sequence += 1
            parts = []
    if parts:
        playlist.segments.append(Segment(sequence, None, parts))
    return playlist


@dataclass
class PartTimes:
    """Every part fetched inside [record_from, record_until) (monotonic seconds): for each
    part URI (relative, as listed), when each player had all its bytes and which player;
    and each part GET's time from request to last byte. Arrays: 2,000 players fetch
    millions of parts in a long run."""

    record_from: float = 0.0
    record_until: float = math.inf
    done: dict[str, array[float]] = field(default_factory=dict)
    players: dict[str, array[int]] = field(default_factory=dict)
    fetch_s: array[float] = field(default_factory=lambda: array("d"))

    def add(self, uri: str, player: int, requested: float, done: float) -> None:
        if not self.record_from <= done < self.record_until:
            return
        self.done.setdefault(uri, array("d")).append(done)
        self.players.setdefault(uri, array("l")).append(player)
        self.fetch_s.append(done - requested)


@dataclass
class LoadFigures:
    clients: int = 0
    playlist_requests: int = 0
    blocking_requests: int = 0
    media_requests: int = 0
    media_bytes: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    blocking: bool | None = None  # what the server advertised
    parts: PartTimes | None = None  # recorded when set

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


def with_query(url: str, msn: int, part: int | None) -> str:
    parsed = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parsed.query)
    query += [("_HLS_msn", str(msn))] + ([("_HLS_part", str(part))] if part is not None else [])
    return urllib.parse.urlunsplit(parsed._replace(query=urllib.parse.urlencode(query)))


async def _get(session: aiohttp.ClientSession, url: str, figures: LoadFigures,
               timeout_s: float) -> bytes | None:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as answer:
            body = await answer.read()
            if answer.status != 200:
                figures.error(f"HTTP {answer.status}")
                return None
            return body
    except (aiohttp.ClientError, TimeoutError) as exc:
        figures.error(type(exc).__name__)
        return None


async def _client(session: aiohttp.ClientSession, url: str, deadline: float,
                  figures: LoadFigures, player: int = 0) -> None:
    fetched: set[str] = set()
    request_url = url
    first = True
    while time.monotonic() < deadline:
        left = deadline - time.monotonic()
        body = await _get(session, request_url, figures, max(1.0, left))
        figures.playlist_requests += 1
        if request_url != url:
            figures.blocking_requests += 1
        if body is None:
            await asyncio.sleep(0.5)
            request_url = url
            continue
        playlist = parse(body.decode(errors="replace"))
        if figures.blocking is None:
            figures.blocking = playlist.can_block
        media = playlist.media()
        if first:  # join at the live edge: everything older counts as seen
            fetched.update(media[:-1])
            first = False
            if playlist.map_uri:
                media.insert(0, playlist.map_uri)
        for uri in media:
            if uri in fetched or time.monotonic() >= deadline:
                continue
            fetched.add(uri)
            requested = time.monotonic()
            data = await _get(session, urllib.parse.urljoin(url, uri), figures, 10)
            figures.media_requests += 1
            figures.media_bytes += len(data or b"")
            if data is not None and figures.parts is not None and uri != playlist.map_uri:
                figures.parts.add(uri, player, requested, time.monotonic())
        if playlist.ended or not playlist.segments:
            await asyncio.sleep(0.5)
            request_url = url
        elif playlist.can_block:
            request_url = with_query(url, *playlist.next_request())
        elif playlist.has_parts and playlist.part_target_s:
            await asyncio.sleep(playlist.part_target_s)
            request_url = url
        else:
            await asyncio.sleep(playlist.target_s / 2)
            request_url = url


async def run_players(url: str | Sequence[str], count: int, seconds: float, *,
                      ramp_s: float = 2.0, figures: LoadFigures | None = None
                      ) -> LoadFigures:
    """`count` players for `seconds` (their starts spread over `ramp_s`) on `url`, or
    player i on `url[i % len(url)]` (one playback token each); into `figures` if given."""
    urls = [url] if isinstance(url, str) else list(url)
    figures = figures or LoadFigures()
    figures.clients = count
    deadline = time.monotonic() + seconds
    # A player has one request in flight at a time (playlist, then its parts in turn):
    # a connection each, so the pool never queues one player behind another, and no more
    # sockets than players.
    connector = aiohttp.TCPConnector(limit=max(1, count), limit_per_host=0,
                                     force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(index: int) -> None:
            await asyncio.sleep(ramp_s * index / max(1, count))
            await _client(session, urls[index % len(urls)], deadline, figures, index)

        tasks = [asyncio.create_task(one(i)) for i in range(count)]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 30)
        except TimeoutError:
            figures.error("client still running at the end")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return figures
