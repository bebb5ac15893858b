"""A control process of a cluster (`academia serve --role control`): the HTTP API, the web
pages, chat, playback grants, the internal API media nodes ask, /metrics; no media.

Any number run behind a load balancer on one database (and one Redis, `server.redis_url`,
for chat, revocations and presence). When the API ends a class or revokes keys, the media
node that carries the class is told over HTTP (control/nodes/node_calls.py), found in the
registry its heartbeats keep. It opens the media storage too (GET /storage, the retention
job). Its orphan sweep ends the classes whose node died and that
no node took up within the reconnect grace period, and has their recordings finalised
(control/nodes/orphan_sweep.py).
"""

from __future__ import annotations

from config.settings import Settings
from control.app import build_app
from control.db.database import Database
from control.nodes.node_calls import NodeCalls
from control.nodes.orphan_sweep import OrphanSweep
from mediaserver.http_client_errors import quiet_client_protocol_errors
from mediaserver.http_service import HttpService
from mediaserver.metrics import Metrics
from mediaserver.recording_store import RecordingStore
from mediaserver.resource_files import ResourceFiles, resource_spool
from transcode.storage.configured import open_storage

__all__ = ["ControlNode"]


class ControlNode:
    """Port 0 in settings picks a free port: see `http_port` after start()."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.metrics = Metrics()
        self.calls = NodeCalls(settings, database)
        self.orphans = OrphanSweep(settings, database, self.calls)
        # The same storage the media nodes write: GET /storage and the retention job
        # measure and prune it from here.
        self.storage = open_storage(settings)
        self.store = RecordingStore(self.storage)
        self.app = build_app(settings, database, live_observer=self.calls,
                             media_store=self.store,
                             resource_store=ResourceFiles(self.storage,
                                                          resource_spool(settings)))
        self.http = HttpService(settings, self.app, self.metrics)
        quiet_client_protocol_errors()  # malformed requests are no server error

    async def start(self) -> None:
        await self.http.start()
        self.orphans.start()

    @property
    def http_port(self) -> int:
        return self.http.port

    async def close(self) -> None:
        await self.orphans.close()
        await self.http.close()
        await self.calls.close()
        await self.storage.close()
