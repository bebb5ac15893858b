"""The cluster as an operator sees it (admins): every media node that ever reported, alive
or dead, and the sessions it carries. The rules are control/nodes/registry.py's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from control.http.responses import json
from control.http.routing import Ctx, Routes
from control.models import Role
from control.models.base import utcnow
from control.nodes.registry import NodeStatus, node_listing

routes = Routes("nodes")


def node_json(node: NodeStatus) -> dict[str, Any]:
    return {
        "name": node.name,
        "url": node.url,
        "alive": node.alive,
        "first_seen": node.first_seen,
        "last_seen": node.last_seen,
        "session_ids": list(node.session_ids),
    }


@routes.route("GET", "/nodes/", name="nodes.list",
              summary="The media nodes (admin): alive or dead (silent longer than"
              " node_dead_seconds), and the live sessions each carries")
async def list_nodes(ctx: Ctx) -> Any:
    ctx.require_role(Role.ADMIN)
    dead_after = ctx.state.settings.cluster.node_dead_seconds
    nodes = await node_listing(ctx.db, now=utcnow(), dead_after=timedelta(seconds=dead_after))
    return json({"dead_after_seconds": dead_after, "results": [node_json(n) for n in nodes]})
