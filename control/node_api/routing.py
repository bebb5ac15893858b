"""The internal API's endpoint table: declared like the public one (control/http/routing.py),
run differently.

A media node is no user: it proves itself with the shared node secret (compared in
constant time; a wrong or missing one is 401), not with a sign-in token. Each question
runs its own short transaction in the domain (control/streaming/edge_questions.py,
control/nodes/registry.py), so the runner opens none. A question the control plane
cannot answer now (`CannotAnswer`, a database error) is a 503, which the node retries
and then reports as "try again later"; malformed bodies are 400/422 as everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from config.settings import Settings
from control.db.database import Database
from control.errors import ApiError, bad_request, unauthorized
from control.http.bodies import parse_body
from control.nodes.node_secret import carries_secret
from control.streaming.edge_questions import CannotAnswer, EdgeQuestions

__all__ = ["NodeCall", "NodeEndpoint", "NodeRoutes", "add_node_endpoints"]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
NodeHandler = Callable[["NodeCall"], Awaitable[web.StreamResponse]]

PREFIX = "/internal/control"


@dataclass(frozen=True)
class NodeCall:
    """One request from a media node, as a handler sees it."""

    request: web.Request
    settings: Settings
    database: Database
    questions: EdgeQuestions
    body: BaseModel

    def parsed(self, model: type[M]) -> M:
        assert isinstance(self.body, model)
        return self.body


@dataclass(frozen=True)
class NodeEndpoint:
    path: str  # below PREFIX
    name: str
    summary: str
    body: type[BaseModel]
    handler: NodeHandler


class NodeRoutes:
    """Collects the internal endpoints (all POST with a JSON body: nothing in a URL)."""

    def __init__(self) -> None:
        self.endpoints: list[NodeEndpoint] = []

    def route(
        self, path: str, *, name: str, summary: str, body: type[BaseModel]
    ) -> Callable[[NodeHandler], NodeHandler]:
        def register(handler: NodeHandler) -> NodeHandler:
            self.endpoints.append(NodeEndpoint(path, name, summary, body, handler))
            return handler

        return register


def add_node_endpoints(
    app: web.Application,
    endpoints: list[NodeEndpoint],
    *,
    settings: Settings,
    database: Database,
    questions: EdgeQuestions,
) -> None:
    """Mount `endpoints` under PREFIX; nothing at all without a node secret (404 then)."""
    secret = settings.cluster.node_secret
    if not secret:
        return
    for endpoint in endpoints:
        app.router.add_post(PREFIX + endpoint.path,
                            _runner(endpoint, secret, settings, database, questions))


def _runner(
    endpoint: NodeEndpoint, secret: str, settings: Settings, database: Database,
    questions: EdgeQuestions,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def run(request: web.Request) -> web.StreamResponse:
        # Who calls is settled before what they sent is looked at: 401 before 400/422.
        if not carries_secret(request.headers.get("Authorization"), secret):
            log.warning("internal call %s from %s refused: wrong or missing node secret",
                        endpoint.name, request.remote)
            raise unauthorized("media nodes send Authorization: Bearer <node secret>")
        raw = await request.read()
        if not raw.strip():
            raise bad_request("this call needs a JSON body", "missing_body")
        body = parse_body(endpoint.body, raw)
        try:
            return await endpoint.handler(NodeCall(request, settings, database, questions, body))
        except (CannotAnswer, SQLAlchemyError) as exc:
            log.error("internal call %s: %s", endpoint.name, exc)
            raise ApiError(503, "control_unavailable",
                           "the control plane cannot answer now; try again later") from exc

    run.__name__ = endpoint.name.replace(".", "_")
    return run
