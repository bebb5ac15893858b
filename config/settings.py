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


@dataclass(frozen=True)
class AuthSettings:
    token_ttl_seconds: int = 86_400
    allow_self_registration: bool = True
    admin_password: str = field(default="", repr=False)
    password_time_cost: int = 3
    password_memory_cost_kib: int = 65_536


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


@dataclass(frozen=True)
class PaymentSettings:
    payment_webhook_secret: str = field(default="", repr=False)
    currency: str = "EUR"


@dataclass(frozen=True)
class StreamingSettings:
    rtmp_port: int = 1935
    rtmp_timeout_seconds: int = 30
    reconnect_grace_seconds: int = 30
    segment_seconds: int = 2
    max_streams: int = 50


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    courses: CourseSettings = field(default_factory=CourseSettings)
    payments: PaymentSettings = field(default_factory=PaymentSettings)
    streaming: StreamingSettings = field(default_factory=StreamingSettings)

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
