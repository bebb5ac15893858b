"""Mounts the internal API for media nodes on the control plane's app (when a node secret
is set; see control/node_api/routing.py)."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from config.settings import Settings
from control.db.database import Database
from control.node_api import edge_questions, heartbeats
from control.node_api.edge_check import add_edge_check
from control.node_api.routing import NodeEndpoint, add_node_endpoints
from control.streaming.edge_questions import EdgeQuestions
from control.streaming.playback_tokens import PlaybackSigner

__all__ = ["add_node_api", "node_endpoints"]


def node_endpoints() -> list[NodeEndpoint]:
    return [*edge_questions.routes.endpoints, *heartbeats.routes.endpoints]


def add_node_api(
    app: web.Application, settings: Settings, database: Database, signer: PlaybackSigner
) -> None:
    questions = EdgeQuestions(
        database, settings.courses, signer=signer, public_url=settings.public_url,
        node_dead_after=timedelta(seconds=settings.cluster.node_dead_seconds))
    add_node_endpoints(app, node_endpoints(), settings=settings, database=database,
                       questions=questions)
    add_edge_check(app, settings, database, questions)
