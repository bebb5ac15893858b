"""The loopback HTTP endpoint ffmpeg uploads its HLS output to, one token per worker.

ffmpeg PUTs (or POSTs) `{base_url}/{run}/{rendition}/seg_NNNNN.ts` and
`.../index.m3u8`, where base_url is `http://127.0.0.1:{port}/ingest/{token}`. The token
is random per worker, made by the media server: it routes the upload to that session's
`SessionOutput`, and nothing else on the machine can inject segments without knowing
it. ffmpeg's DELETEs (old segments) are answered and ignored: we clean storage ourselves.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web

from transcode.session_output import SessionOutput

__all__ = ["MAX_BODY", "SegmentReceiver", "epoch_name"]

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_RUN = re.compile(r"^[0-9]{1,9}$")
_RENDITION = re.compile(r"^[a-z0-9_]{1,32}$")
_FILENAME = re.compile(r"^(seg_[0-9]{1,9}\.ts|index\.m3u8)$")


def epoch_name(token: str, run: int) -> str:
    """The epoch a worker's run is known by in `SessionOutput` (receive and start_epoch)."""
    return f"{token}/{run}"


class SegmentReceiver:
    """An aiohttp server on a free loopback port that feeds uploads to session outputs."""

    def __init__(self, host: str = "127.0.0.1", *, max_body: int = MAX_BODY) -> None:
        self.host = host
        self.max_body = max_body
        self._outputs: dict[str, SessionOutput] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the segment receiver is not started")
        return self._port

    async def start(self) -> None:
        app = web.Application(client_max_size=self.max_body)
        path = "/ingest/{token}/{run}/{rendition}/{filename}"
        app.router.add_route("PUT", path, self._upload)
        app.router.add_route("POST", path, self._upload)
        app.router.add_route("DELETE", path, self._delete)
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
                and _FILENAME.match(info["filename"])):
            raise web.HTTPBadRequest(text="bad run, rendition or file name\n")
        return output

    async def _read_body(self, request: web.Request) -> bytes:
        length = request.content_length
        if length is not None and length > self.max_body:
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body, actual_size=length)
        body = bytearray()
        # Read ourselves rather than request.read(): chunked bodies have no length to check.
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > self.max_body:
                raise web.HTTPRequestEntityTooLarge(max_size=self.max_body,
                                                    actual_size=len(body))
        return bytes(body)

    async def _upload(self, request: web.Request) -> web.Response:
        output = self._check(request)
        data = await self._read_body(request)
        info = request.match_info
        run = int(info["run"])
        try:
            await output.receive(epoch_name(info["token"], run), info["rendition"],
                                 info["filename"], data)
        except Exception:
            log.exception("session %s: failed to take %s/%s", output.session_id,
                          info["rendition"], info["filename"])
            raise web.HTTPInternalServerError() from None
        return web.Response(status=201)

    async def _delete(self, request: web.Request) -> web.Response:
        self._check(request)
        return web.Response(status=204)
