"""Settings: defaults from default.toml, a TOML file on top, ACADEMIA_* variables last."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

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


def test_docker_compose_sets_only_real_settings() -> None:
    """A misspelt variable in docker-compose.yml would be silently ignored: catch it here."""
    import yaml

    compose = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
    environment = compose["services"]["app"]["environment"]
    known = {
        "ACADEMIA_" + f.name.upper()
        for section in dataclasses.fields(Settings)
        for f in dataclasses.fields(section.default_factory)  # type: ignore[arg-type]
    }
    assert set(environment) <= known, set(environment) - known
    assert environment["ACADEMIA_STORAGE_BACKEND"] == "s3"
    assert environment["ACADEMIA_S3_ENDPOINT"] == "minio:9000"


# Secrets compose passes on; those optional ones whose empty value turns a feature off.
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN")
_OPTIONAL_SECRETS = {"ACADEMIA_PAYMENT_WEBHOOK_SECRET", "ACADEMIA_METRICS_TOKEN"}
_SUBSTITUTION = re.compile(r"\$\{(\w+)(?:(:?[-?+])([^}]*))?\}")


def _compose() -> dict[str, Any]:
    import yaml

    loaded: dict[str, Any] = yaml.safe_load(
        (Path(__file__).parents[2] / "docker-compose.yml").read_text()
    )
    return loaded


def test_docker_compose_has_no_default_passwords() -> None:
    """Every secret comes from the operator's .env, and compose refuses to start without it
    (`${VAR:?message}`): a forgotten .env must not run with a password from this file."""
    compose = _compose()
    checked = set()
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            text = str(value)
            uses = _SUBSTITUTION.findall(text)
            for variable, operator, word in uses:
                if not _SECRET_NAME.search(variable):
                    continue
                checked.add(variable)
                if variable in _OPTIONAL_SECRETS:
                    assert (operator, word) == (":-", ""), (name, key, text)
                else:
                    assert operator == ":?" and word.strip(), (name, key, text)
            if _SECRET_NAME.search(key) and key != "ACADEMIA_S3_ACCESS_KEY":
                # A secret setting is never a literal in this file.
                assert uses, (name, key, text)
    assert {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "ACADEMIA_ADMIN_PASSWORD",
            "ACADEMIA_PLAYBACK_SIGNING_KEY"} <= checked


def test_docker_compose_pins_images_and_hides_the_minio_console() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        if "image" in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), (name, image)
        for port in service.get("ports", []):
            published = str(port).split(":")
            # host:container is every interface; only the app's public ports may be that.
            if len(published) < 3:
                assert name == "app" and published[-1] in {"8080", "1935"}, (name, port)
            else:
                assert published[0] == "127.0.0.1", (name, port)
    minio = compose["services"]["minio"]
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", minio["image"])
    assert all(str(port).startswith("127.0.0.1:") for port in minio.get("ports", []))


def test_docker_stop_leaves_time_to_finalise_recordings() -> None:
    """`docker compose stop` sends SIGTERM, then SIGKILL after the grace period: it must
    reach `academia serve` (not a shell that ignores it as PID 1) and leave it time to
    finalise the live classes' recordings."""
    app = _compose()["services"]["app"]
    grace = re.fullmatch(r"(\d+)(s|m)", str(app["stop_grace_period"]))
    assert grace, app.get("stop_grace_period")
    seconds = int(grace.group(1)) * (60 if grace.group(2) == "m" else 1)
    assert seconds >= 120
    dockerfile = (Path(__file__).parents[2] / "scripts" / "Dockerfile").read_text()
    command = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    assert len(command) == 1
    shell = json.loads(command[0].removeprefix("CMD "))
    assert shell[:2] == ["sh", "-c"]
    assert shell[2].split("&&")[-1].split()[:3] == ["exec", "academia", "serve"], shell
