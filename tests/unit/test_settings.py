"""Settings: defaults from default.toml, a TOML file on top, ACADEMIA_* variables last."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from config.loading import SettingsError, load_settings
from config.settings import Settings


def test_seed_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.courses.course_enrollment_limit == 100
    assert settings.courses.session_duration_limit == 180
    assert settings.courses.chat_message_limit == 1000
    assert settings.courses.chat_max_length == 500
    assert settings.courses.chat_rate_burst == 5
    assert settings.courses.chat_rate_refill_seconds == 2
    assert settings.courses.heartbeat_seconds == 30
    assert settings.courses.attendance_present_percent == 50
    assert settings.courses.auto_enrollment_enabled is True
    assert settings.server.http_port == 8080 and settings.server.host == "127.0.0.1"
    assert settings.streaming.rtmp_port == 1935
    assert settings.streaming.reconnect_grace_seconds == 30
    assert settings.streaming.segment_seconds == 2
    assert settings.database_url == "sqlite+aiosqlite:///var/academia.sqlite3"


def test_file_then_environment(tmp_path: Path) -> None:
    file = tmp_path / "site.toml"
    file.write_text('[server]\nhttp_port = 9000\ndata_dir = "/srv/academia"\n'
                    "[courses]\ncourse_enrollment_limit = 40\n")
    settings = load_settings(file, environ={
        "ACADEMIA_HTTP_PORT": "9100",
        "ACADEMIA_RTMP_PORT": "19350",
        "ACADEMIA_RECONNECT_GRACE_SECONDS": "5",
        "ACADEMIA_SEGMENT_SECONDS": "4",
        "ACADEMIA_DATABASE_URL": "postgresql+asyncpg://u@db/academia",
        "ACADEMIA_PAYMENT_REQUIRED": "yes",
    })
    assert settings.server.http_port == 9100
    assert settings.server.data_dir == Path("/srv/academia")
    assert settings.courses.course_enrollment_limit == 40
    assert settings.streaming.rtmp_port == 19350
    assert settings.streaming.reconnect_grace_seconds == 5
    assert settings.streaming.segment_seconds == 4
    assert settings.database_url == "postgresql+asyncpg://u@db/academia"
    assert settings.courses.payment_required is True


def test_data_dir_moves_the_sqlite_file() -> None:
    settings = load_settings(environ={"ACADEMIA_DATA_DIR": "/tmp/x"})
    assert settings.database_url == "sqlite+aiosqlite:////tmp/x/academia.sqlite3"


def test_bad_values_are_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="ACADEMIA_HTTP_PORT"):
        load_settings(environ={"ACADEMIA_HTTP_PORT": "eighty"})
    with pytest.raises(SettingsError, match="ACADEMIA_PAYMENT_REQUIRED"):
        load_settings(environ={"ACADEMIA_PAYMENT_REQUIRED": "perhaps"})
    file = tmp_path / "bad.toml"
    file.write_text("[server]\nhttp_prot = 1\n")
    with pytest.raises(SettingsError, match="http_prot"):
        load_settings(file, environ={})


def test_key_names_are_unique_across_sections() -> None:
    # Environment variables name keys without their section, so no two may share a name.
    sections = [getattr(Settings(), section.name) for section in dataclasses.fields(Settings)]
    names = [f.name for section in sections for f in dataclasses.fields(section)]
    assert len(names) == len(set(names))


def test_secrets_stay_out_of_repr() -> None:
    settings = load_settings(environ={"ACADEMIA_ADMIN_PASSWORD": "hunter22-secret",
                                      "ACADEMIA_PAYMENT_WEBHOOK_SECRET": "whsec-secret"})
    assert "hunter22" not in repr(settings) and "whsec" not in repr(settings)
