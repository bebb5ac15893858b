"""Prometheus metrics of the media server, and the `GET /metrics` route that exposes them.

`Metrics` owns its own `CollectorRegistry` (never the process-global one), so several
servers, or several tests, each count on their own. Transcode events arrive through
`on_event` (an `EventSink`), the RTMP side calls `publisher_started` / `publisher_stopped` /
`ingest_bytes`, and `middleware` counts every HTTP request by route template. Who may read
the rendered text, and on which address, is mediaserver.metrics_endpoint's business.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from transcode.events import (
    BufferOverflow,
    Event,
    SegmentStored,
    SpoolRefused,
    UploadFailed,
    WorkerFailed,
    WorkerRestarted,
)

__all__ = ["UNMATCHED_ROUTE", "Metrics", "route_label"]

UNMATCHED_ROUTE = "unmatched"

# Any token is a valid HTTP method to aiohttp: the label keeps only the known ones so a
# scanner cannot grow the series without bound.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Playback refusal reasons the control port documents; anything else is counted as "other".
_REFUSAL_REASONS = frozenset(
    {"bad_token", "expired", "wrong_session", "not_allowed", "not_available"}
)

# Why the upload spool refuses media (transcode.storage.upload_queue); others are "other".
_SPOOL_REFUSALS = frozenset({"full", "unwritable"})

# Uploads of 2 s segments: interesting between a few milliseconds and tens of seconds.
_UPLOAD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def route_label(request: web.Request) -> str:
    """The matched route's template ("/sessions/{session_id}/playback"), never the raw path,
    so ids and tokens in URLs never become label values."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED_ROUTE
    return resource.canonical


class Metrics:
    """The media server's counters, gauges and histograms, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.active_publishers = Gauge(
            "academia_active_publishers", "Encoders publishing right now.", registry=r
        )
        self.ingest_bytes_total = Counter(
            "academia_ingest_bytes",
            "Media bytes received from publishers, per course.",
            ["course"],
            registry=r,
        )
        self.worker_restarts_total = Counter(
            "academia_worker_restarts", "ffmpeg runs restarted after dying.", registry=r
        )
        self.worker_failures_total = Counter(
            "academia_worker_failures", "Transcode workers that gave up.", registry=r
        )
        self.buffer_overflow_bytes_total = Counter(
            "academia_buffer_overflow_bytes",
            "Media bytes dropped because a worker's input buffer was full.",
            registry=r,
        )
        self.segment_upload_seconds = Histogram(
            "academia_segment_upload_seconds",
            "Latency of storing one object (segment, playlist, recording).",
            buckets=_UPLOAD_BUCKETS,
            registry=r,
        )
        self.segment_upload_failures_total = Counter(
            "academia_segment_upload_failures", "Failed attempts to store an object.", registry=r
        )
        self.spool_refusals_total = Counter(
            "academia_spool_refusals",
            "Uploads refused because the spool was full or could not be written (media lost).",
            ["reason"],
            registry=r,
        )
        self.spool_refused_bytes_total = Counter(
            "academia_spool_refused_bytes",
            "Bytes of media refused because the spool was full or could not be written.",
            registry=r,
        )
        self.http_requests_total = Counter(
            "academia_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_seconds = Histogram(
            "academia_http_request_duration_seconds",
            "Time to answer an HTTP request (headers and body), by route template.",
            ["route"],
            registry=r,
        )
        self.playback_refusals_total = Counter(
            "academia_playback_refusals",
            "Playback requests refused by the control plane, by reason.",
            ["reason"],
            registry=r,
        )
        self.playback_bytes_total = Counter(
            "academia_playback_bytes",
            "Media bytes sent to viewers (playlists, segments, recordings).",
            registry=r,
        )

    # -- transcode events -------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """An `EventSink`: counts the events metrics care about, ignores the rest."""
        if isinstance(event, WorkerRestarted):
            self.worker_restarts_total.inc()
        elif isinstance(event, WorkerFailed):
            self.worker_failures_total.inc()
        elif isinstance(event, BufferOverflow):
            self.buffer_overflow_bytes_total.inc(max(event.dropped_bytes, 0))
        elif isinstance(event, SegmentStored):
            self.segment_upload_seconds.observe(max(event.seconds, 0.0))
        elif isinstance(event, UploadFailed):
            self.segment_upload_failures_total.inc()
        elif isinstance(event, SpoolRefused):
            reason = event.reason if event.reason in _SPOOL_REFUSALS else "other"
            self.spool_refusals_total.labels(reason=reason).inc()
            self.spool_refused_bytes_total.inc(max(event.size, 0))

    # -- ingest -----------------------------------------------------------------------

    def publisher_started(self) -> None:
        self.active_publishers.inc()

    def publisher_stopped(self) -> None:
        self.active_publishers.dec()

    def ingest_bytes(self, course_id: int, n: int) -> None:
        self.ingest_counter(course_id)(n)

    def ingest_counter(self, course_id: int) -> Callable[[int], None]:
        """`count(n)` for one course's input: the labelled series is looked up once per
        publish, not once per RTMP message."""
        series = self.ingest_bytes_total.labels(course=str(course_id))

        def count(n: int) -> None:
            if n > 0:
                series.inc(n)

        return count

    # -- delivery ---------------------------------------------------------------------

    def playback_refused(self, reason: str) -> None:
        label = reason if reason in _REFUSAL_REASONS else "other"
        self.playback_refusals_total.labels(reason=label).inc()

    def playback_bytes(self, n: int) -> None:
        if n > 0:
            self.playback_bytes_total.inc(n)

    # -- HTTP -------------------------------------------------------------------------

    def _count(self, request: web.Request, status: int, started: float) -> None:
        route = route_label(request)
        method = request.method if request.method in _METHODS else "other"
        self.http_requests_total.labels(method=method, route=route, status=str(status)).inc()
        self.http_request_seconds.labels(route=route).observe(time.perf_counter() - started)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Counts every request once: answers, raised HTTP errors, and crashes as 500."""
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self._count(request, exc.status, started)
            raise
        except Exception:
            self._count(request, 500, started)
            raise
        self._count(request, response.status, started)
        return response

    async def handle_metrics(self, request: web.Request) -> web.Response:
        """The registry as Prometheus text; never routed directly (see metrics_endpoint)."""
        # Rendering a registry this size takes well under a millisecond: no thread needed.
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
