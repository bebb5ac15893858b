"""One Academia Live node, composed: the HTTP API, HLS delivery, /metrics (on the public port
behind a bearer token, and/or on an admin address), RTMP and WHIP ingest,
the live streams and their storage, started and stopped in the right order.

`academia serve` runs one; end-to-end tests start one in-process on free ports.
"""

from __future__ import annotations

from aiohttp import web

from config.settings import Settings
from control.api.app import build_app
from control.database import Database
from control.playback_tokens import PlaybackSigner, signing_key
from mediaserver.control_inprocess import InProcessControl
from mediaserver.hls_delivery import HlsDelivery
from mediaserver.http_client_errors import quiet_client_protocol_errors
from mediaserver.live_registry import LiveRegistry
from mediaserver.live_streams import LiveStreams
from mediaserver.metrics import Metrics
from mediaserver.metrics_endpoint import MetricsListener, add_metrics_route
from mediaserver.pending_uploads import PendingUploads
from mediaserver.rtmp.server import RtmpServer
from mediaserver.whip.endpoint import WhipEndpoint
from transcode.segment_receiver import SegmentReceiver
from transcode.storage.configured import open_storage

__all__ = ["MediaNode"]


class MediaNode:
    """Everything but the database's migration and first-start setup (see server.py).

    Ports 0 in settings pick free ports: see `http_port` and `rtmp.port` after start().
    """

    def __init__(self, settings: Settings, database: Database, *, ffmpeg: str = "ffmpeg") -> None:
        self.settings = settings
        self.database = database
        self.storage = open_storage(settings)
        self.receiver = SegmentReceiver()
        self.metrics = Metrics()
        self.control = InProcessControl(
            database, settings.courses, public_url=settings.public_url,
            signer=PlaybackSigner(signing_key(settings)),
        )
        self.live = LiveStreams(self.control, settings, storage=self.storage,
                                receiver=self.receiver, metrics=self.metrics, ffmpeg=ffmpeg)
        self.app = build_app(settings, database, live_observer=self.live)
        self.app.middlewares.append(self.metrics.middleware)
        metrics_token = settings.server.metrics_token
        add_metrics_route(self.app, self.metrics, token=metrics_token)
        self.metrics_listener = (
            MetricsListener(self.metrics, settings.server.metrics_listen, token=metrics_token)
            if settings.server.metrics_listen else None
        )
        self.delivery = HlsDelivery(self.live, self.storage, metrics=self.metrics)
        self.delivery.add_routes(self.app)
        self.live.viewers = self.delivery.viewers
        self.rtmp = RtmpServer(
            self.live,
            self.live.sink_factory,
            host=settings.server.host,
            port=settings.streaming.rtmp_port,
            timeout=settings.streaming.rtmp_timeout_seconds,
            auth_timeout=settings.streaming.rtmp_auth_timeout_seconds,
            max_connections=settings.streaming.rtmp_max_connections,
            max_connections_per_ip=settings.streaming.rtmp_max_connections_per_ip,
            registry=LiveRegistry(max_streams=settings.streaming.max_streams),
        )
        # WHIP publishers share the RTMP registry: one publisher per course, either way.
        self.whip = WhipEndpoint(self.live, self.live.sink_factory, self.rtmp.registry,
                                 settings.streaming)
        self.whip.add_routes(self.app)
        self.live.disconnect = self._disconnect
        self.live.publishing_key = self._publishing_key
        data_dir = settings.server.data_dir
        self.pending = PendingUploads(
            self.storage, self.live, spool_dir=data_dir / "spool",
            unsent_dir=data_dir / "work" / "unsent", active=self.live.active_sessions,
            events=self.metrics.on_event, budget=self.live.spool_budget,
        )
        quiet_client_protocol_errors()  # malformed requests are no server error
        self._runner = web.AppRunner(self.app, access_log=None)
        self._site: web.TCPSite | None = None

    def _disconnect(self, course_id: int, reason: str) -> bool:
        return (self.rtmp.disconnect_course(course_id, reason)
                or self.whip.disconnect_course(course_id, reason))

    def _publishing_key(self, course_id: int) -> int | None:
        publication = self.rtmp.registry.get(course_id)  # RTMP and WHIP publishers alike
        return publication.key_id if publication is not None else None

    async def start(self) -> None:
        await self.receiver.start()
        # Before ingest opens: an encoder coming back finds its session taken up.
        await self.live.resume_unfinished()
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.settings.server.host,
                                 self.settings.server.http_port)
        await self._site.start()
        if self.metrics_listener is not None:
            await self.metrics_listener.start()
        await self.rtmp.start()
        self.pending.start()

    @property
    def http_port(self) -> int:
        addresses = self._runner.addresses
        if not addresses:
            raise RuntimeError("the node is not started")
        port: int = addresses[0][1]
        return port

    async def close(self) -> None:
        """Stop taking streams, then end every live class properly (last segments
        written, recording finalised and marked ready) before anything else closes."""
        await self.rtmp.close()
        await self.whip.close()
        await self.live.close()
        await self.pending.close()
        await self.receiver.close()
        if self.metrics_listener is not None:
            await self.metrics_listener.close()
        await self._runner.cleanup()
        await self.storage.close()
