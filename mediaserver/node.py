"""One Academia Live node, composed: the HTTP API, HLS delivery, /metrics (on the public port
behind a bearer token, and/or on an admin address), RTMP and WHIP ingest,
the live streams and their storage, started and stopped in the right order.

`academia serve` runs one; end-to-end tests start one in-process on free ports.
"""

from __future__ import annotations

from aiohttp import web

from config.settings import Settings
from control.app import build_app
from control.db.database import Database
from control.streaming.playback_tokens import PlaybackSigner, signing_key
from mediaserver.class_observer import ClassObserver
from mediaserver.control_inprocess import InProcessControl
from mediaserver.hls_delivery import HlsDelivery
from mediaserver.http_client_errors import quiet_client_protocol_errors
from mediaserver.metrics import Metrics
from mediaserver.metrics_endpoint import MetricsListener, add_metrics_route
from mediaserver.pending_uploads import PendingUploads
from mediaserver.publisher_slots import PublisherSlots
from mediaserver.publishing import Publishing
from mediaserver.rtmp.server import RtmpServer
from mediaserver.session_media import SessionMedia
from mediaserver.whip.endpoint import WhipEndpoint
from transcode.segment_receiver import SegmentReceiver
from transcode.storage.configured import open_storage

__all__ = ["MediaNode"]


class MediaNode:
    """Everything but the database's migration and first-start setup (see process.py).

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
        # The live edge is in the session's media (built below), looked up per request.
        self.delivery = HlsDelivery(self.control, self.storage, metrics=self.metrics,
                                    live=lambda session_id: self.media.live_output(session_id))
        self.media = SessionMedia(settings, storage=self.storage, receiver=self.receiver,
                                  viewers=self.delivery.viewers, metrics=self.metrics,
                                  ffmpeg=ffmpeg)
        # One registry for RTMP and WHIP publishers: one publisher per course, either way.
        self.publishing = Publishing(
            self.control, self.media,
            registry=PublisherSlots(max_streams=settings.streaming.max_streams),
            grace=float(settings.streaming.reconnect_grace_seconds),
        )
        self.app = build_app(settings, database,
                             live_observer=ClassObserver(self.publishing, self.media))
        self.app.middlewares.append(self.metrics.middleware)
        metrics_token = settings.server.metrics_token
        add_metrics_route(self.app, self.metrics, token=metrics_token)
        self.metrics_listener = (
            MetricsListener(self.metrics, settings.server.metrics_listen, token=metrics_token)
            if settings.server.metrics_listen else None
        )
        self.delivery.add_routes(self.app)
        self.rtmp = RtmpServer(
            self.publishing,
            host=settings.server.host,
            port=settings.streaming.rtmp_port,
            timeout=settings.streaming.rtmp_timeout_seconds,
            auth_timeout=settings.streaming.rtmp_auth_timeout_seconds,
            max_connections=settings.streaming.rtmp_max_connections,
            max_connections_per_ip=settings.streaming.rtmp_max_connections_per_ip,
        )
        self.whip = WhipEndpoint(self.publishing, settings.streaming)
        self.whip.add_routes(self.app)
        data_dir = settings.server.data_dir
        self.pending = PendingUploads(
            self.storage, self.control, spool_dir=data_dir / "spool",
            unsent_dir=data_dir / "work" / "unsent", active=self.media.active_sessions,
            events=self.metrics.on_event, budget=self.media.spool_budget,
        )
        quiet_client_protocol_errors()  # malformed requests are no server error
        self._runner = web.AppRunner(self.app, access_log=None)
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        await self.receiver.start()
        # Before ingest opens: an encoder coming back finds its session taken up.
        await self.publishing.resume_unfinished()
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
        await self.publishing.close()
        await self.pending.close()
        await self.receiver.close()
        if self.metrics_listener is not None:
            await self.metrics_listener.close()
        await self._runner.cleanup()
        await self.storage.close()
