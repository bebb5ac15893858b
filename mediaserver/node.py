"""One Academia Live media node, composed: RTMP and WHIP ingest, the live streams and their
storage, HLS delivery, /metrics, started and stopped in the right order.

Two shapes. With a database it is the whole server in one process (`--role all`, the
default): the HTTP API and pages on the same app, the control plane asked in process.
Without one it is a media node of a cluster (`--role media`): it asks the control plane
over HTTP (cluster.control_url, with the node secret), takes its end-live calls on
/internal/node/*, and heartbeats the sessions it carries. `academia serve` runs one;
end-to-end tests start one in-process on free ports.
"""

from __future__ import annotations

from aiohttp import web

from config.loading import SettingsError
from config.settings import Settings
from control.app import build_app
from control.db.database import Database
from control.http.error_middleware import error_middleware
from control.streaming.playback_tokens import PlaybackSigner, signing_key
from mediaserver.class_observer import ClassObserver
from mediaserver.control_http import HttpControl
from mediaserver.control_inprocess import InProcessControl
from mediaserver.control_port import ControlPort
from mediaserver.hls_delivery import HlsDelivery
from mediaserver.http_client_errors import quiet_client_protocol_errors
from mediaserver.http_service import HttpService
from mediaserver.metrics import Metrics
from mediaserver.node_api import add_node_routes
from mediaserver.node_heartbeat import Heartbeats, NodeHeartbeat, node_identity
from mediaserver.pending_uploads import PendingUploads
from mediaserver.publisher_slots import PublisherSlots
from mediaserver.publishing import Publishing
from mediaserver.recording_store import RecordingStore
from mediaserver.resource_files import ResourceFiles, resource_spool
from mediaserver.rtmp.server import RtmpServer
from mediaserver.session_media import SessionMedia
from mediaserver.whip.endpoint import WhipEndpoint
from transcode.segment_receiver import SegmentReceiver
from transcode.storage.configured import open_storage

__all__ = ["MediaNode"]


class MediaNode:
    """Everything but the database's migration and first-start setup (see process.py).

    `database` given: the whole server in one process; None: a cluster's media node.
    Ports 0 in settings pick free ports: see `http_port` and `rtmp.port` after start().
    """

    def __init__(self, settings: Settings, database: Database | None = None, *,
                 ffmpeg: str = "ffmpeg") -> None:
        self.settings = settings
        self.database = database
        self.storage = open_storage(settings)
        self.receiver = SegmentReceiver()
        self.metrics = Metrics()
        self.remote_control: HttpControl | None = None
        self.heartbeat: NodeHeartbeat | None = None
        self.control: ControlPort
        if database is not None:
            self.control = InProcessControl(
                database, settings.courses, public_url=settings.public_url,
                signer=PlaybackSigner(signing_key(settings)),
            )
        else:
            cluster = settings.cluster
            if not cluster.control_url or not cluster.node_secret:
                raise SettingsError("a media node needs the control plane's address and the"
                                    " node secret: set ACADEMIA_CONTROL_URL and"
                                    " ACADEMIA_NODE_SECRET")
            self.control = self.remote_control = HttpControl(settings)
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
        observer = ClassObserver(self.publishing, self.media)
        if database is not None:
            self.app = build_app(settings, database, live_observer=observer,
                                 media_store=RecordingStore(self.storage),
                                 resource_store=ResourceFiles(self.storage,
                                                              resource_spool(settings)))
        else:
            # No API here: media, and the control plane's calls about its classes.
            self.app = web.Application(middlewares=[error_middleware],
                                       client_max_size=settings.server.max_body_bytes)
            add_node_routes(self.app, observer, settings.cluster.node_secret)
        self.http = HttpService(settings, self.app, self.metrics)
        self.metrics_listener = self.http.metrics_listener
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

    async def start(self) -> None:
        if self.remote_control is not None:
            await self.remote_control.start()
        await self.receiver.start()
        # Before ingest opens: an encoder coming back finds its session taken up.
        await self.publishing.resume_unfinished()
        await self.http.start()
        await self.rtmp.start()
        self.pending.start()
        # A cluster's media node tells the control plane what it carries; so does one
        # process with a node secret, for an nginx edge in front of it.
        beats: Heartbeats | None = self.remote_control
        if beats is None and self.settings.cluster.node_secret:
            assert isinstance(self.control, InProcessControl)
            beats = self.control
        if beats is not None:
            name, url = node_identity(self.settings, self.http_port)
            self.heartbeat = NodeHeartbeat(
                beats, name=name, url=url, sessions=self.media.active_sessions,
                interval=float(self.settings.cluster.node_heartbeat_seconds),
            )
            self.heartbeat.start()

    @property
    def http_port(self) -> int:
        return self.http.port

    async def close(self) -> None:
        """Stop taking streams, then end every live class properly (last segments
        written, recording finalised and marked ready) before anything else closes."""
        await self.rtmp.close()
        await self.whip.close()
        await self.publishing.close()
        await self.pending.close()
        await self.receiver.close()
        # Beats stop once nothing is carried; the control plane then sees the node go.
        if self.heartbeat is not None:
            await self.heartbeat.close()
        await self.http.close()
        await self.storage.close()
        if self.remote_control is not None:
            await self.remote_control.close()
