"""The nginx edge's playback check: `GET /internal/edge/playback/{session_id}/{token}`.

The edge (mediaserver/edge/nginx_config.py) asks it in an `auth_request` sub-request
before serving anything under /play/, keeps the answer a few seconds per session and
token, and routes by it. So it answers with a status and a header, not a body to read:
- 204 with `X-Academia-Origin: <node name>`: the token may play a live session, which that
  media node carries (its live edge is in that node's memory);
- 204 with `X-Academia-Origin: storage`: the token may play the recording, which any
  media node serves from storage;
- 403: refused (bad or expired token, another session's, a viewer who may no longer
  watch); 404: nothing to play (no such session, or not live and no recording);
- 503: no answer now (the database, or a live class whose node is dead and whose encoder
  has not come back on another node yet); the edge keeps none of these.

The node carrying a live session is remembered for CARRIER_MEMO_SECONDS in this process:
every student of a class asks within the same few seconds (a class starting, and the
edge renewing their grants), and the question was a third of each check's cost. A node
that died is forgotten that much later, which the edge's own grant window dwarfs; a
session no node carries is never remembered (the encoder comes back any moment).

A grant says how long the edge may keep it (`X-Accel-Expires`, whole seconds): until the
token expires, at most the grant's window, and one or two seconds less for some tokens
(by a hash of the token). Students who joined in the same second would otherwise have
their grants renewed in the same second, every window, all waiting on this check.

Only for holders of the node secret (the edge's configuration carries it), like the rest
of the internal API; GET with the token in the path because that is what auth_request
sends. The control plane keeps no access log, so no token is written down here.
"""

from __future__ import annotations

import logging
import time
import zlib
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from control.db.database import Database
from control.errors import ApiError, forbidden, not_found, unauthorized
from control.models.base import utcnow
from control.nodes.node_secret import carries_secret
from control.nodes.registry import NodeAddress, carrier_of
from control.streaming.edge_questions import CannotAnswer, EdgeQuestions, PlaybackGrant

__all__ = ["CHECK_PATH", "ORIGIN_HEADER", "STORAGE_ORIGIN", "add_edge_check"]

log = logging.getLogger(__name__)

CHECK_PATH = "/internal/edge/playback"
ORIGIN_HEADER = "X-Academia-Origin"
STORAGE_ORIGIN = "storage"
CARRIER_MEMO_SECONDS = 1.0
# How the edge is told to keep an answer (nginx reads it before its own settings).
KEEP_HEADER = "X-Accel-Expires"
# Grants are kept up to this many whole seconds less than their window, by token.
KEEP_SPREAD_SECONDS = 2
# Sessions remembered at most (live classes at once are far fewer; past it, start over).
_CARRIER_MEMO_SIZE = 4096
# Refusals that mean "nothing here to play" rather than "not for you".
_NOTHING_TO_PLAY = frozenset({"not_available"})


def add_edge_check(app: web.Application, settings: Settings, database: Database,
                   questions: EdgeQuestions) -> None:
    """Mount the check (only with a node secret: without one there is no edge to serve)."""
    secret = settings.cluster.node_secret
    if not secret:
        return
    dead_after = timedelta(seconds=settings.cluster.node_dead_seconds)
    carriers: dict[int, tuple[float, NodeAddress]] = {}  # session -> (when asked, node)

    async def carrier(session_id: int) -> NodeAddress | None:
        now = time.monotonic()
        known = carriers.get(session_id)
        if known is not None and now - known[0] < CARRIER_MEMO_SECONDS:
            return known[1]
        async with database.transaction(write=False) as db:
            found = await carrier_of(db, session_id, now=utcnow(), dead_after=dead_after)
        if len(carriers) >= _CARRIER_MEMO_SIZE:
            carriers.clear()
        if found is None:
            carriers.pop(session_id, None)
        else:
            carriers[session_id] = (now, found)
        return found

    async def check(request: web.Request) -> web.StreamResponse:
        if not carries_secret(request.headers.get("Authorization"), secret):
            log.warning("edge playback check from %s refused: wrong or missing node secret",
                        request.remote)
            raise unauthorized("the edge sends Authorization: Bearer <node secret>")
        session_id = int(request.match_info["session_id"])
        try:
            answer = await questions.authorize_playback(session_id, request.match_info["token"])
            if not isinstance(answer, PlaybackGrant):
                if answer.reason in _NOTHING_TO_PLAY:
                    raise not_found("anything to play in this session")
                raise forbidden(f"playback refused ({answer.reason})")
            origin = STORAGE_ORIGIN
            if answer.live:
                node = await carrier(session_id)
                if node is None:
                    raise ApiError(503, "no_media_node",
                                   "no media node carries this class now; try again shortly")
                origin = node.name
        except (CannotAnswer, SQLAlchemyError) as exc:
            log.error("edge playback check: %s", exc)
            raise ApiError(503, "control_unavailable",
                           "the control plane cannot answer now; try again later") from exc
        return web.Response(status=204, headers={
            ORIGIN_HEADER: origin,
            KEEP_HEADER: str(keep_seconds(request.match_info["token"], answer.expires_at))})

    app.router.add_get(CHECK_PATH + r"/{session_id:\d{1,18}}/{token:[A-Za-z0-9_-]{1,256}}",
                       check)


def keep_seconds(token: str, expires_at: datetime) -> int:
    """How long the edge may keep a grant that lasts until `expires_at`: whole seconds,
    spread over KEEP_SPREAD_SECONDS by the token, at least one."""
    spread = zlib.crc32(token.encode()) % (KEEP_SPREAD_SECONDS + 1)
    # Rounded: a grant made for the whole window is a few microseconds old by now.
    return max(1, round((expires_at - utcnow()).total_seconds()) - spread)
