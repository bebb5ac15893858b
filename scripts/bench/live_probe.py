"""When each LL-HLS part appeared at the origin, seen by one player of its own; and, when
asked, a copy of the live output as static files (the reference a plain nginx serves).

`LiveProbe` follows one media playlist with blocking reloads (player_load's parser and
request shapes) and records, for each part URI, the moment a playlist first listed it:
the clock the players' part latency is measured against. It runs in a thread of its own
with its own event loop, so players saturating the benchmark's loop do not delay its
timestamps (a thread waiting on a socket lets go of the GIL; at worst it waits the
interpreter's 5 ms switch interval for it back).

With `mirror` set, it also copies what a player would fetch into that folder, under the
URL's file path (`master.m3u8`, `{rendition}/index.m3u8`, parts, init): each new part is
written before the playlist that lists it, each file whole (written aside, then renamed),
so a static server never hands out half a file or a playlist naming a missing part. The
copied playlist no longer says CAN-BLOCK-RELOAD or CAN-SKIP-UNTIL: a static server can do
neither, and players then poll it. A mirrored part's listing time is when its playlist
was renamed into place: when the static server could first hand it out.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import urllib.parse
from pathlib import Path

import aiohttp
from player_load import parse, with_query

__all__ = ["LiveProbe"]

_SERVER_CONTROL = re.compile(r"^#EXT-X-SERVER-CONTROL:(.*)$", re.MULTILINE)
# A blocking request is answered within 3 target durations; past that, ask again.
REQUEST_TIMEOUT_S = 10.0


def _static_playlist(text: str) -> str:
    """`text` as a server that cannot block or skip would publish it."""

    def keep(match: re.Match[str]) -> str:
        kept = [a for a in match.group(1).split(",")
                if a.split("=")[0] not in ("CAN-BLOCK-RELOAD", "CAN-SKIP-UNTIL")]
        return "#EXT-X-SERVER-CONTROL:" + ",".join(kept) if kept else ""

    return _SERVER_CONTROL.sub(keep, text)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.tmp")
    aside.write_bytes(data)
    os.replace(aside, path)


class LiveProbe:
    """Follows `playlist_url` (a media playlist) until `stop()`; `listed` maps each part
    URI to the monotonic time it was first listed (or mirrored)."""

    def __init__(self, playlist_url: str, *, master_url: str | None = None,
                 mirror: Path | None = None) -> None:
        self.playlist_url = playlist_url
        self.master_url = master_url
        self.mirror = mirror
        self.listed: dict[str, float] = {}
        self.part_target_s: float | None = None
        self.errors = 0
        self.requests = 0  # what it asked of the origin (left out of the players' count)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="live-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT_S + 5)

    def listed_between(self, start: float, end: float) -> int:
        return sum(1 for t in list(self.listed.values()) if start <= t < end)

    def _main(self) -> None:
        asyncio.run(self._follow())

    def _file_path(self, url: str) -> str:
        """The file part of a /play/{session}/{token}/{file} URL."""
        return urllib.parse.urlsplit(url).path.split("/", 4)[4]

    async def _follow(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            request_url = self.playlist_url
            seen_map: str | None = None
            while not self._stop.is_set():
                self.requests += 1
                try:
                    async with http.get(request_url) as answer:
                        body = await answer.text()
                        ok = answer.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok, body = False, ""
                arrived = time.monotonic()
                if not ok:
                    self.errors += 1
                    request_url = self.playlist_url
                    await asyncio.sleep(0.2)
                    continue
                playlist = parse(body)
                self.part_target_s = playlist.part_target_s
                new = [uri for uri in playlist.media() if uri not in self.listed]
                if self.mirror is not None:
                    if playlist.map_uri and playlist.map_uri != seen_map:
                        new.insert(0, playlist.map_uri)
                    try:
                        await self._copy(http, new, body)
                    except (aiohttp.ClientError, TimeoutError):
                        # An overloaded origin: copy these again with the next playlist.
                        self.errors += 1
                        await asyncio.sleep(0.1)
                        continue
                    seen_map = playlist.map_uri
                    arrived = time.monotonic()
                for uri in new:
                    self.listed.setdefault(uri, arrived)
                if playlist.can_block and playlist.segments:
                    request_url = with_query(self.playlist_url, *playlist.next_request())
                else:
                    request_url = self.playlist_url
                    await asyncio.sleep(0.05)

    async def _copy(self, http: aiohttp.ClientSession, uris: list[str], playlist: str
                    ) -> None:
        assert self.mirror is not None
        if self.master_url is not None and not (self.mirror / "master.m3u8").exists():
            self.requests += 1
            async with http.get(self.master_url) as answer:
                answer.raise_for_status()
                _write(self.mirror / "master.m3u8", await answer.read())
        for uri in uris:
            url = urllib.parse.urljoin(self.playlist_url, uri)
            self.requests += 1
            async with http.get(url) as answer:
                answer.raise_for_status()
                _write(self.mirror / self._file_path(url), await answer.read())
        _write(self.mirror / self._file_path(self.playlist_url),
               _static_playlist(playlist).encode())
