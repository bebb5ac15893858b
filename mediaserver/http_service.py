"""A node's HTTP side, whatever its role: the app on the public port, with /metrics (behind
a bearer token there, and/or on an admin address of its own), started and stopped.

`MediaNode` (node.py) and `ControlNode` (control_node.py) each build their app and hand
it here, so both serve and measure it the same way.
"""

from __future__ import annotations

from aiohttp import web

from config.settings import Settings
from mediaserver.metrics import Metrics
from mediaserver.metrics_endpoint import MetricsListener, add_metrics_route

__all__ = ["HttpService"]


class HttpService:
    """Serves `app` at server.host:http_port (0: a free port, see `port` after start)."""

    def __init__(self, settings: Settings, app: web.Application, metrics: Metrics) -> None:
        self._settings = settings
        self.app = app
        app.middlewares.append(metrics.middleware)
        token = settings.server.metrics_token
        add_metrics_route(app, metrics, token=token)
        self.metrics_listener = (
            MetricsListener(metrics, settings.server.metrics_listen, token=token)
            if settings.server.metrics_listen else None
        )
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.server.host,
                           self._settings.server.http_port)
        await site.start()
        if self.metrics_listener is not None:
            await self.metrics_listener.start()

    @property
    def port(self) -> int:
        addresses = self._runner.addresses
        if not addresses:
            raise RuntimeError("the node is not started")
        port: int = addresses[0][1]
        return port

    async def close(self) -> None:
        if self.metrics_listener is not None:
            await self.metrics_listener.close()
        await self._runner.cleanup()
