"""The WHIP HTTP resource (RFC 9725) on the node's aiohttp app, built on aiortc.

    POST   /whip/{course_id}              SDP offer in (application/sdp), the stream key as
                                          `Authorization: Bearer`; 201 with the answer and
                                          `Location: /whip/{course_id}/{resource}`
    PATCH  /whip/{course_id}/{resource}   trickle ICE (application/trickle-ice-sdpfrag):
                                          204, ignored (see below)
    DELETE /whip/{course_id}/{resource}   ends the publish: 200
    OPTIONS on both                       CORS preflight for browser publishers

A publish goes through the sequence RTMP uses (mediaserver/publishing.py): the key is
authorized (a key of another course is refused like a bad one, without saying whose it is);
the offer is negotiated; only then is the course's slot claimed (one publisher per course,
whatever the protocol), the session made live and its sink made, so a bad offer never makes
a course go live. aiortc gathers its candidates before `setLocalDescription` returns, so
the answer is complete (OBS 30 sends no trickle ICE and needs none); trickled client
candidates are accepted and ignored, since aiortc cannot add them reliably to a running
connection: clients put theirs in the offer (OBS, and browsers waiting for gathering, do).
aiortc receives no simulcast: offers with simulcast layers are refused, so "simulcast off".

Errors are JSON {"error": {"code", "message"}}, like the API's. Stream keys are never
logged: at most a short hash (`key_fingerprint`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets

from aiohttp import web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from config.settings import StreamingSettings
from mediaserver.http_errors import error_response
from mediaserver.key_fingerprint import key_fingerprint
from mediaserver.publishing import Arrival, Publishing, Refusal, Refused
from mediaserver.whip.frame_encoder import FrameEncoder
from mediaserver.whip.ice_addresses import (
    ice_configuration,
    parse_addresses,
    restrict_host_addresses,
)
from mediaserver.whip.offer_checks import MAX_OFFER_BYTES, offer_problem
from mediaserver.whip.publisher import WhipPublisher

__all__ = ["WhipEndpoint"]

log = logging.getLogger("mediaserver.whip")

_SDP = "application/sdp"
_TRICKLE = "application/trickle-ice-sdpfrag"
# WHIP publishers take these numbers in the registry, far from RTMP connection ids.
_CONNECTION_IDS = itertools.count(1_000_000_001)
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, ETag",
}


def _with_cors(response: web.Response) -> web.Response:
    response.headers.update(_CORS)
    return response


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    response = error_response(status, code, message)
    response.headers.update(headers)
    return _with_cors(response)


def _unauthorized(message: str) -> web.Response:
    return _error(401, "unauthorized", message, **{"WWW-Authenticate": "Bearer"})


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        return None
    return token


class WhipEndpoint:
    """WHIP publishers of this node; see the module docstring."""

    def __init__(self, publishing: Publishing, settings: StreamingSettings) -> None:
        self._publishing = publishing
        self._settings = settings
        self._publishers: dict[str, WhipPublisher] = {}
        self._closing = False
        addresses = parse_addresses(settings.whip_ice_addresses)
        if addresses:
            restrict_host_addresses(addresses)

    @property
    def publishers(self) -> list[WhipPublisher]:
        return list(self._publishers.values())

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(r"/whip/{course:\d+}", self._post)
        app.router.add_route("OPTIONS", r"/whip/{course:\d+}", self._options)
        resource = r"/whip/{course:\d+}/{resource:[0-9a-f]+}"
        app.router.add_patch(resource, self._patch)
        app.router.add_delete(resource, self._delete)
        app.router.add_route("OPTIONS", resource, self._options)

    # ------------------------------------------------------------------ handlers

    async def _options(self, request: web.Request) -> web.Response:
        return _with_cors(web.Response(status=204, headers={
            "Accept-Post": _SDP,
            "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
        }))

    async def _post(self, request: web.Request) -> web.Response:
        course_id = int(request.match_info["course"])
        if self._closing:
            return _error(503, "shutting_down", "the server is shutting down; try again later")
        if request.content_type != _SDP:
            return _error(415, "unsupported_media_type",
                          f"the offer must be sent as {_SDP}")
        key = _bearer(request)
        if key is None:
            return _unauthorized("send the stream key as: Authorization: Bearer <stream key>")
        if (request.content_length or 0) > MAX_OFFER_BYTES:
            return _error(413, "body_too_large", "the offer is too large")
        raw = await request.read()
        if len(raw) > MAX_OFFER_BYTES:
            return _error(413, "body_too_large", "the offer is too large")
        try:
            offer = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "malformed_sdp", "the offer is not UTF-8 text")
        problem = offer_problem(offer)
        if problem is not None:
            return _error(400, "malformed_sdp", problem)

        peer = f"whip {request.remote}"
        fingerprint = key_fingerprint(key)
        arrival = Arrival("live", key, next(_CONNECTION_IDS), peer, "WHIP", peer,
                          course_id=course_id)
        grant = await self._publishing.check_key(arrival)
        if isinstance(grant, Refusal) and grant.why is Refused.KEY_CHECK_FAILED:
            return _error(503, "control_unavailable",
                          "the server could not check the stream key; try again later")
        if isinstance(grant, Refusal):
            log.warning("%s: publish to course %d refused (%s), key %s", peer, course_id,
                        grant.detail, fingerprint)
            return _unauthorized(
                "stream key refused: copy the key for this course from Academia Live")

        pc = RTCPeerConnection(ice_configuration(self._settings.whip_stun_url))
        tracks: list[MediaStreamTrack] = []
        pc.on("track", tracks.append)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await pc.close()
            log.info("%s: unusable offer for course %d: %s", peer, course_id, exc)
            return _error(400, "malformed_sdp", f"the offer could not be used: {exc}"[:300])
        if not tracks:
            await pc.close()
            return _error(400, "malformed_sdp", "the offer sends no audio or video")

        publication = await self._publishing.go_live(arrival, grant)
        if isinstance(publication, Refusal):
            await pc.close()
            return self._refused(peer, course_id, publication)
        assert publication.sink is not None

        kinds = {track.kind for track in tracks}
        encoder = FrameEncoder(
            has_video="video" in kinds, has_audio="audio" in kinds,
            preset=self._settings.x264_preset, video_kbps=self._settings.whip_video_kbps,
        )
        resource_id = secrets.token_hex(16)
        publisher = WhipPublisher(
            resource_id, publication, pc, tracks, publication.sink, encoder,
            on_gone=self._publisher_gone,
            timeout=float(self._settings.rtmp_timeout_seconds),
            sink_timeout=float(self._settings.rtmp_timeout_seconds),
        )
        self._publishers[resource_id] = publisher
        publisher.start()
        publication.on_stop(publisher.end)
        log.info("%s: publishing course %d, session %d, key %s, %s (resource %s)", peer,
                 course_id, publication.session_id, fingerprint, "+".join(sorted(kinds)),
                 resource_id[:8])
        answer = pc.localDescription
        return _with_cors(web.Response(
            status=201, body=answer.sdp.encode(), content_type=_SDP,
            headers={"Location": f"/whip/{course_id}/{resource_id}",
                     "ETag": f'"{resource_id}"'},
        ))

    def _refused(self, peer: str, course_id: int, refusal: Refusal) -> web.Response:
        if refusal.why is Refused.COURSE_BUSY:
            log.warning("%s: publish refused: course %d is already live from another encoder",
                        peer, course_id)
            return _error(409, "course_busy", "this course is already live from another encoder")
        if refusal.why is Refused.AT_CAPACITY:
            log.warning("%s: publish refused: at capacity (%s)", peer, refusal.detail)
            return _error(503, "at_capacity", "the server carries its maximum number of live "
                          "streams; try again later", **{"Retry-After": "30"})
        return _error(503, "go_live_failed",
                      "the server could not start the live class; try again later")

    def _resource(self, request: web.Request) -> WhipPublisher | None:
        publisher = self._publishers.get(request.match_info["resource"])
        if publisher is None or publisher.course_id != int(request.match_info["course"]):
            return None
        return publisher

    async def _patch(self, request: web.Request) -> web.Response:
        publisher = self._resource(request)
        if publisher is None or publisher.closed:
            return _error(404, "not_found", "no such WHIP session")
        if request.content_type != _TRICKLE:
            return _error(415, "unsupported_media_type",
                          f"trickle ICE is sent as {_TRICKLE}")
        # Accepted and ignored: see the module docstring.
        await request.read()
        return _with_cors(web.Response(status=204))

    async def _delete(self, request: web.Request) -> web.Response:
        publisher = self._resource(request)
        if publisher is None:
            return _error(404, "not_found", "no such WHIP session")
        await publisher.close("the client ended the session (DELETE)")
        return _with_cors(web.Response(status=200))

    # ------------------------------------------------------------------ ending

    async def _publisher_gone(self, publisher: WhipPublisher) -> None:
        self._publishers.pop(publisher.resource_id, None)
        await self._publishing.publisher_left(publisher.publication, protocol="WHIP")

    async def close(self) -> None:
        """Stop taking publishes and end every running one."""
        self._closing = True
        publishers = list(self._publishers.values())
        if publishers:
            await asyncio.gather(*(p.close("the server shuts down") for p in publishers),
                                 return_exceptions=True)
