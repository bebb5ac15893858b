"""The loopback HTTP endpoint ffmpeg streams its fragmented MP4 outputs to, one token per worker.

ffmpeg PUTs (or POSTs) `{base_url}/{run}/{rendition}/stream.mp4` as one long chunked
request per output, where base_url is `http://127.0.0.1:{port}/ingest/{token}`; each chunk
is handed to the session's `SessionOutput` as it arrives, so a part reaches players as soon
as ffmpeg wrote it. The token is random per worker, made by the media server: it routes
the stream to that session's output, and nothing else on the machine can inject media
without knowing it. A stream cut short (ffmpeg died) ends like a finished one: what it
completed is kept.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import ClientError, web

from transcode.cmaf.boxes import CmafError
from transcode.command import STREAM_NAME
from transcode.session_output import SessionOutput

__all__ = ["QUEUED_CHUNKS", "SegmentReceiver", "epoch_name"]

log = logging.getLogger(__name__)

# Chunks (each what one network read brought) read ahead of the output: a few MB at most.
QUEUED_CHUNKS = 256
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_RUN = re.compile(r"^[0-9]{1,9}$")
_RENDITION = re.compile(r"^[a-z0-9_]{1,32}$")



def epoch_name(token: str, run: int) -> str:
    """The epoch a worker's run is known by in `SessionOutput` (receive and start_epoch)."""
    return f"{token}/{run}"


class SegmentReceiver:
    """An aiohttp server on a free loopback port that feeds uploads to session outputs."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._outputs: dict[str, SessionOutput] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the segment receiver is not started")
        return self._port

    async def start(self) -> None:
        app = web.Application()
        path = "/ingest/{token}/{run}/{rendition}/{filename}"
        app.router.add_route("PUT", path, self._upload)
        app.router.add_route("POST", path, self._upload)
        # No access log: one line per segment and rendition would drown everything else.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._port = None

    def register(self, token: str, output: SessionOutput) -> str:
        """Route uploads under `token` to `output`; returns the base_url for ffmpeg."""
        if not _TOKEN.match(token):
            raise ValueError("a token is 1-128 characters of [A-Za-z0-9_-]")
        if self._outputs.get(token, output) is not output:
            raise ValueError("token already registered for another session")
        self._outputs[token] = output
        return f"http://{self.host}:{self.port}/ingest/{token}"

    def unregister(self, token: str) -> None:
        self._outputs.pop(token, None)

    def _check(self, request: web.Request) -> SessionOutput:
        info = request.match_info
        output = self._outputs.get(info["token"])
        if output is None:
            raise web.HTTPNotFound()
        if not (_RUN.match(info["run"]) and _RENDITION.match(info["rendition"])
                and info["filename"] == STREAM_NAME):
            raise web.HTTPBadRequest(text="bad run, rendition or file name\n")
        return output

    async def _upload(self, request: web.Request) -> web.Response:
        output = self._check(request)
        info = request.match_info
        epoch = epoch_name(info["token"], int(info["run"]))
        rendition = info["rendition"]
        # Bounded: should the output fall behind, reading stops and TCP slows ffmpeg down.
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_CHUNKS)

        async def pull() -> None:
            # Taken off aiohttp's buffer as they come: ffmpeg closes the connection right
            # after its last chunk, without waiting for our answer, and aiohttp then fails
            # the body, dropping what it still held (the stream's last seconds).
            try:
                async for chunk in request.content.iter_any():
                    await chunks.put(chunk)
            except (ClientError, OSError, asyncio.IncompleteReadError):
                # ffmpeg died mid-stream: what it completed stays, as at a normal end.
                log.info("session %s: %s stream cut short", output.session_id, rendition)
            finally:
                await chunks.put(None)

        puller = asyncio.create_task(pull())
        try:
            while (chunk := await chunks.get()) is not None:
                await output.feed(epoch, rendition, chunk)
        except CmafError as exc:
            log.warning("session %s: %s is not a fragmented MP4 stream: %s",
                        output.session_id, rendition, exc)
            raise web.HTTPBadRequest(text="not a fragmented MP4 stream\n") from None
        finally:
            puller.cancel()
            # Shielded: the end of a stream closes its last segment, even on shutdown.
            await asyncio.shield(output.end_stream(epoch, rendition))
        return web.Response(status=201)
