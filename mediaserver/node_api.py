"""The media node's internal routes, through which control processes reach its classes.

The control plane's `NodeCalls` (control/nodes/node_calls.py) posts here when its API
ends a class or revokes stream keys, and asks for a live stream's details; the node hands
each to its `ClassObserver` (the same LiveObserver the API calls in a single process).
Only callers with the node secret are heard (401 otherwise); without a secret the routes
are not mounted (404). A class this node does not carry is no error: the control plane
tells every alive node about a session none has reported yet.

One call is not the observer's: `finalise-recording`, the control plane asking this node
to make the recording of a class whose node died and that nobody took up within the
grace period (control/nodes/orphan_sweep.py). It is answered at once (202); the node
says `recording_ready` when the recording is stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from control.nodes.node_calls import NODE_PREFIX
from control.nodes.node_secret import carries_secret
from control.sessions.live_observer import LiveObserver
from mediaserver.http_errors import error_response

__all__ = ["NodeClasses", "add_node_routes"]

log = logging.getLogger(__name__)

_MAX_ID = 2**31 - 1
_MAX_BODY = 64 * 1024

Route = Callable[[dict[str, Any]], Awaitable[web.Response]]


class NodeClasses(LiveObserver, Protocol):
    """What the routes reach: mediaserver/class_observer.py's ClassObserver."""

    async def finalise_recording(self, course_id: int, session_id: int) -> None: ...


class _BadBody(Exception):
    pass


def _id(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_ID:
        raise _BadBody(f"{name} must be an id")
    return value


def _ids(body: dict[str, Any], name: str) -> frozenset[int]:
    values = body.get(name)
    if not isinstance(values, list):
        raise _BadBody(f"{name} must be a list of ids")
    return frozenset(_id({name: v}, name) for v in values)


def add_node_routes(app: web.Application, observer: NodeClasses, secret: str) -> None:
    """Mount the routes on the node's app; nothing without a secret. `observer` is the
    node's ClassObserver (mediaserver/class_observer.py)."""
    if not secret:
        return

    async def session_ended(body: dict[str, Any]) -> web.Response:
        await observer.session_ended(_id(body, "course_id"), _id(body, "session_id"))
        return web.Response(status=204)

    async def keys_revoked(body: dict[str, Any]) -> web.Response:
        await observer.keys_revoked(_id(body, "course_id"), _ids(body, "key_ids"))
        return web.Response(status=204)

    async def stream_details(body: dict[str, Any]) -> web.Response:
        return web.json_response({"stream": await observer.details(_id(body, "course_id"))})

    async def finalise_recording(body: dict[str, Any]) -> web.Response:
        await observer.finalise_recording(_id(body, "course_id"), _id(body, "session_id"))
        return web.Response(status=202)

    routes: dict[str, Route] = {
        "finalise-recording": finalise_recording,
        "session-ended": session_ended,
        "keys-revoked": keys_revoked,
        "stream-details": stream_details,
    }
    for name, route in routes.items():
        app.router.add_post(f"{NODE_PREFIX}/{name}", _guarded(name, route, secret))


def _guarded(
    name: str, route: Route, secret: str
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        if not carries_secret(request.headers.get("Authorization"), secret):
            log.warning("internal call %s from %s refused: wrong or missing node secret",
                        name, request.remote)
            return error_response(401, "unauthorized",
                                  "control processes send Authorization: Bearer <node secret>")
        raw = await request.content.read(_MAX_BODY + 1)
        if len(raw) > _MAX_BODY:
            return error_response(413, "body_too_large", "the request body is too large")
        try:
            body = json.loads(raw)
        except ValueError:
            return error_response(400, "malformed_json", "the body is not valid JSON")
        try:
            if not isinstance(body, dict):
                raise _BadBody("the body must be a JSON object")
            return await route(body)
        except _BadBody as exc:
            return error_response(422, "invalid", str(exc))

    handle.__name__ = name.replace("-", "_")
    return handle
