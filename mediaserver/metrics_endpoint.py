"""Who may read `GET /metrics`, and where it is served.

The metrics name courses, routes and error rates: not for the public. Prometheus is let in
one of the two ways deployments expect (both may be set):
- `metrics_token`: a bearer secret the scraper sends (`Authorization: Bearer <token>`);
  on the public port /metrics answers 401 to anyone else.
- `metrics_listen`: a separate admin address ("127.0.0.1:9108") serving only /metrics,
  reachable where the operator's network allows (the token, if set, is checked there too).
With neither, /metrics on the public port answers 404: it is not served at all.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from config.loading import SettingsError
from mediaserver.http_errors import error_response
from mediaserver.metrics import Metrics

__all__ = ["METRICS_PATH", "MetricsListener", "add_metrics_route", "parse_listen_address"]

METRICS_PATH = "/metrics"


def _bearer_matches(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Compared in constant time: the answer's timing says nothing about the secret.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def add_metrics_route(
    app: web.Application, metrics: Metrics, *, token: str, open_without_token: bool = False
) -> None:
    """GET /metrics on `app`: to holders of `token` when one is set; without a token, to
    everyone only when `open_without_token` (the admin listener), else to no one (404)."""

    async def serve(request: web.Request) -> web.StreamResponse:
        if token:
            if not _bearer_matches(request, token):
                refusal = error_response(401, "unauthorized", "/metrics needs its bearer token")
                refusal.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
                return refusal
        elif not open_without_token:
            return error_response(404, "not_found", "no such resource")
        return await metrics.handle_metrics(request)

    app.router.add_get(METRICS_PATH, serve)


def parse_listen_address(value: str) -> tuple[str, int]:
    """ "host:port" (an IPv6 host in brackets) -> (host, port); SettingsError otherwise."""
    host, sep, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"metrics_listen: expected host:port, got {value!r}")
    return host, int(port)


class MetricsListener:
    """The admin address: an HTTP server of its own that answers /metrics and nothing else."""

    def __init__(self, metrics: Metrics, address: str, *, token: str) -> None:
        self.host, self.port = parse_listen_address(address)
        app = web.Application()
        add_metrics_route(app, metrics, token=token, open_without_token=True)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    @property
    def bound_port(self) -> int:
        """The port listened on (the chosen one when the setting said port 0)."""
        addresses = self._runner.addresses
        if not addresses:
            raise RuntimeError("the metrics listener is not started")
        port: int = addresses[0][1]
        return port

    async def close(self) -> None:
        await self._runner.cleanup()
