"""The typed shape of Academia Live's settings; values come from config.loading."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    http_port: int = 8080
    data_dir: Path = Path("var")
    database_url: str = ""
    public_url: str = ""
    max_body_bytes: int = 1_048_576
    # Who may read /metrics: holders of this bearer secret (on the public port), and/or
    # anyone reaching the admin address "host:port". Neither set: /metrics is not served.
    metrics_token: str = field(default="", repr=False)
    metrics_listen: str = ""
    # Shared state of several processes (sign-in rate limits); empty: each process alone.
    redis_url: str = field(default="", repr=False)
    # Comma-separated addresses of reverse proxies whose X-Forwarded-For is believed;
    # empty (the default): the client is the TCP peer, whatever the header says.
    trusted_proxies: str = ""


@dataclass(frozen=True)
class AuthSettings:
    token_ttl_seconds: int = 86_400
    allow_self_registration: bool = True
    admin_password: str = field(default="", repr=False)
    password_time_cost: int = 3
    password_memory_cost_kib: int = 65_536
    # Threads that hash and verify passwords, off the event loop (each holds the memory
    # cost); 0: half the CPU cores, at least one, so hashing never takes every core.
    password_hash_threads: int = 0
    # Failed sign-ins per client address: a burst, then one more per refill period.
    login_ip_burst: int = 30
    login_ip_refill_seconds: int = 10
    # Failed sign-ins per account (from anywhere): a burst, then one more per refill period.
    # It slows guessing down and never locks out: an address that signed in to the account
    # within login_known_source_days is not held back by other addresses' failures.
    login_account_burst: int = 10
    login_account_refill_seconds: int = 60
    login_known_source_days: int = 30
    # Self-registrations per client address: a burst, then one more per refill period.
    register_ip_burst: int = 10
    register_ip_refill_seconds: int = 360
    # Chat tickets for anonymous readers of public chats, per client address (each is a
    # database write): a burst, then one more per refill period.
    anonymous_ticket_ip_burst: int = 30
    anonymous_ticket_ip_refill_seconds: int = 2


@dataclass(frozen=True)
class CourseSettings:
    course_enrollment_limit: int = 100
    session_duration_limit: int = 180
    chat_message_limit: int = 1000
    auto_enrollment_enabled: bool = True
    enrollment_approval_required: bool = True
    payment_required: bool = False
    prerequisite_enforcement: bool = True
    schedule_horizon_days: int = 60
    conflict_horizon_days: int = 365
    early_start_minutes: int = 15
    # Chat: longest message (characters), per-user burst and refill (staff exempt).
    chat_max_length: int = 500
    chat_rate_burst: int = 5
    chat_rate_refill_seconds: int = 2
    # Chat sockets: frames queued for one socket before it is dropped as too slow, the
    # longest one send may take, how often an open socket's access is checked again,
    # and how long a chat ticket (the WebSocket's one-time pass) stays valid.
    chat_send_queue_frames: int = 256
    chat_send_timeout_seconds: int = 10
    chat_access_recheck_seconds: int = 5
    chat_ticket_ttl_seconds: int = 30
    # Attendance: the player's heartbeat period, and the share of the live time
    # (in percent) a student must attend to count as present.
    heartbeat_seconds: int = 30
    attendance_present_percent: int = 50
    # Recording progress: at most one stored report per person per this many seconds (the
    # player reports more often; the rest are answered, not written), and the share of a
    # recording (in percent) a student must watch for the session to count as done.
    progress_write_seconds: int = 10
    recording_watched_percent: int = 90


@dataclass(frozen=True)
class PaymentSettings:
    payment_webhook_secret: str = field(default="", repr=False)
    currency: str = "EUR"


@dataclass(frozen=True)
class NotificationSettings:
    # "smtp://user:password@host:port" (STARTTLS when the server offers it) or "smtps://..."
    # (TLS from the first byte); empty: no mail is sent (in-app and webhooks still work).
    smtp_url: str = field(default="", repr=False)
    mail_from: str = "Academia Live <no-reply@localhost>"
    reminder_minutes: int = 15
    # Comma-separated networks ("127.0.0.1/32") webhooks may reach although they are
    # loopback, private or link-local; empty: none (no webhook reaches an internal address).
    webhook_allowed_networks: str = ""
    # Failed deliveries in a row after which a webhook endpoint is disabled and reported.
    webhook_failure_limit: int = 5
    delivery_max_attempts: int = 6
    # The first retry waits this long, each next one twice as long (capped at an hour).
    delivery_retry_seconds: int = 30
    # How often each process's worker looks for notifications to send.
    outbox_poll_seconds: int = 2


@dataclass(frozen=True)
class RungSettings:
    """One rung of the HLS ladder. `height` 0 is the audio-only rung. Rungs sharing a
    `label` are alternatives: the tallest that fits the source is kept (HD is 1080p for a
    1080p source, else 720p)."""

    name: str
    label: str
    height: int
    video_kbps: int
    audio_kbps: int


DEFAULT_LADDER = (
    RungSettings("hd1080", "HD", 1080, 4500, 128),
    RungSettings("hd", "HD", 720, 2500, 128),
    RungSettings("sd", "SD", 480, 1000, 96),
    RungSettings("mobile", "mobile", 360, 600, 64),
    RungSettings("audio", "audio only", 0, 0, 64),
)


@dataclass(frozen=True)
class StreamingSettings:
    rtmp_port: int = 1935
    rtmp_timeout_seconds: int = 30
    # From connecting to an accepted publish: an idle stranger holds a slot this long.
    rtmp_auth_timeout_seconds: int = 10
    # Open RTMP connections in all (checked against the open-files limit at start), and
    # from one address without publishing (publishers behind one NAT do not count).
    rtmp_max_connections: int = 1000
    rtmp_max_connections_per_ip: int = 20
    reconnect_grace_seconds: int = 30
    segment_seconds: int = 2
    max_streams: int = 50
    # "ladder" re-encodes into `ladder`; "passthrough" remuxes the source alone.
    transcode_mode: str = "ladder"
    x264_preset: str = "veryfast"
    # LL-HLS parts: about this long (ms); players sit three parts behind the live edge.
    part_ms: int = 200
    # Bytes of FLV queued for one worker before whole GOPs are dropped.
    worker_buffer_bytes: int = 16 * 1024 * 1024
    playback_token_ttl_seconds: int = 3600
    playback_signing_key: str = field(default="", repr=False)
    # WHIP (WebRTC) publishers are re-encoded to H.264 at this bitrate (the recording's).
    whip_video_kbps: int = 3000
    # Comma-separated addresses offered as ICE host candidates; empty: every interface.
    whip_ice_addresses: str = ""
    # A STUN server ("stun:host:port") for a server behind NAT; empty: none.
    whip_stun_url: str = ""
    # Which rungs a recording keeps once the class ends: "all", "HD", "SD" (the rungs of
    # that label, the audio) or "source" (the source alone); the live ladder is unchanged.
    recording_quality: str = "all"
    ladder: tuple[RungSettings, ...] = DEFAULT_LADDER


@dataclass(frozen=True)
class StorageSettings:
    # "local" keeps media under <data_dir>/media; "s3" uses an S3 or MinIO bucket.
    storage_backend: str = "local"
    s3_endpoint: str = ""
    s3_access_key: str = field(default="", repr=False)
    s3_secret_key: str = field(default="", repr=False)
    s3_bucket: str = "academia"
    s3_region: str = ""
    s3_secure: bool = False
    # Most bytes the upload spool (data_dir/spool) may hold while storage lags; 0 means a
    # quarter of the free space of data_dir when the server starts.
    spool_max_bytes: int = 0
    # Recordings may fill this much of storage (GB); past 80 % a warning, past 100 % the
    # oldest recordings go (control/storage_policy/retention.py says which).
    vod_storage_limit_gb: int = 1000
    # How often the retention job measures storage and deletes what the policy says.
    storage_check_minutes: int = 60
    # The largest course resource (slides, notes) a teacher may upload, in MB (10^6 bytes).
    resource_max_mb: int = 100


# What one `academia serve` process does (ClusterSettings.role).
ROLES = ("all", "control", "media")


@dataclass(frozen=True)
class ClusterSettings:
    """Several processes: control processes behind a load balancer, media nodes, an edge.

    One process (`role` "all", the default) needs none of it."""

    # "all" (one process), "control" (API, pages, chat, jobs) or "media" (ingest,
    # workers, the live origin); `academia serve --role` overrides it.
    role: str = "all"
    # Where a media node reaches the control plane ("http://control:8080", or several,
    # comma-separated, tried in turn), and the secret both sides share; control
    # processes accept media nodes only when it is set.
    control_url: str = ""
    node_secret: str = field(default="", repr=False)
    # This media node's name (unique in the cluster) and the address the control plane
    # and the edge reach it at ("http://10.0.0.5:8080"); empty: the host name and
    # http://<host>:<http_port>.
    node_name: str = ""
    node_url: str = ""
    # Media nodes tell the control plane they are alive this often; one silent for
    # `node_dead_seconds` is taken for dead and its classes wait for their encoders.
    node_heartbeat_seconds: int = 5
    node_dead_seconds: int = 15
    # The nginx edge (`academia edge-config`): its listen address, the control processes
    # and the media nodes ("name=http://host:port", comma-separated) it sends requests to.
    edge_listen: str = "0.0.0.0:80"
    edge_control_urls: str = ""
    edge_media_nodes: str = ""


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    courses: CourseSettings = field(default_factory=CourseSettings)
    payments: PaymentSettings = field(default_factory=PaymentSettings)
    streaming: StreamingSettings = field(default_factory=StreamingSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)

    @property
    def database_url(self) -> str:
        if self.server.database_url:
            return self.server.database_url
        return f"sqlite+aiosqlite:///{self.server.data_dir / 'academia.sqlite3'}"

    @property
    def public_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        return f"http://{self.server.host}:{self.server.http_port}"

    @property
    def media_dir(self) -> Path:
        return self.server.data_dir / "media"
