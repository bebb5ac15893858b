"""Media nodes saying they are alive, where, and carrying which sessions
(control/nodes/registry.py keeps it)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from control.http.bodies import Body, Id
from control.http.responses import no_content
from control.models.base import utcnow
from control.node_api.routing import NodeCall, NodeRoutes
from control.nodes.registry import record_heartbeat

routes = NodeRoutes()


class Heartbeat(Body):
    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=500)
    # Far more than one node carries (max_streams): a bound on the body, not a policy.
    session_ids: list[Id] = Field(default_factory=list, max_length=10_000)


@routes.route("/heartbeat", name="node.heartbeat", body=Heartbeat,
              summary="A media node is alive at its URL, carrying these sessions")
async def heartbeat(call: NodeCall) -> web.StreamResponse:
    beat = call.parsed(Heartbeat)
    async with call.database.transaction(write=True) as db:
        await record_heartbeat(db, name=beat.name, url=beat.url,
                               session_ids=beat.session_ids, now=utcnow())
    return no_content()
