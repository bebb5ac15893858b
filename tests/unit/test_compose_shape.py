"""docker-compose.yml holds together (there is no Docker here to run it): every control
process and media node is where the others look for it, under the name and address it
announces; every ACADEMIA_* variable is a real setting and the edge's configuration renders
from them; no secret has a default; images are pinned; only the edge and the RTMP ports
are public; stopping leaves media nodes time to finalise recordings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from config.loading import ENV_PREFIX, load_settings
from mediaserver.edge.nginx_config import edge_config

ROOT = Path(__file__).parents[2]
# Secrets compose passes on; those optional ones whose empty value turns a feature off.
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN")
_OPTIONAL_SECRETS = {"ACADEMIA_PAYMENT_WEBHOOK_SECRET", "ACADEMIA_METRICS_TOKEN"}
_SUBSTITUTION = re.compile(r"\$\{(\w+)(?:(:?[-?+])([^}]*))?\}")


def services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment with every `${VAR...}` filled in with a test value."""
    return {key: _SUBSTITUTION.sub(lambda m: f"test-{m.group(1).lower()}-0123456789",
                                   str(value))
            for key, value in (service.get("environment") or {}).items()}


def role(service: dict[str, Any]) -> str | None:
    command = service.get("command") or []
    return command[command.index("--role") + 1] if "--role" in command else None


def test_every_process_is_where_the_others_look_for_it() -> None:
    every = services()
    controls = sorted(name for name, s in every.items() if role(s) == "control")
    media = sorted(name for name, s in every.items() if role(s) == "media")
    assert len(controls) == 2 and len(media) == 2
    env = environment(every[media[0]])
    control_urls = [f"http://{name}:8080" for name in controls]
    assert sorted(env["ACADEMIA_CONTROL_URL"].split(",")) == control_urls
    assert sorted(env["ACADEMIA_EDGE_CONTROL_URLS"].split(",")) == control_urls
    listed = dict(pair.split("=", 1) for pair in env["ACADEMIA_EDGE_MEDIA_NODES"].split(","))
    for name in media:
        announced = environment(every[name])
        assert announced["ACADEMIA_NODE_NAME"] == name
        assert listed[name] == announced["ACADEMIA_NODE_URL"] == f"http://{name}:8080"
    # Processes start once the schema is migrated, by one process.
    for name in controls + media:
        assert every[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully")
    assert every["edge"]["command"][:3] == ["nginx", "-c", "/edge/nginx.conf"]


def test_every_variable_is_a_setting_and_the_edge_config_renders() -> None:
    """A misspelt variable would be silently ignored: caught here."""
    known = {ENV_PREFIX + key.upper() for section in vars(load_settings(environ={})).values()
             for key in vars(section)}
    for name, service in services().items():
        env = environment(service)
        given = {key for key in env if key.startswith(ENV_PREFIX)}
        assert given <= known, (name, given - known)
    settings = load_settings(environ=environment(services()["media-1"]))
    assert settings.storage.storage_backend == "s3"
    assert settings.storage.s3_endpoint == "minio:9000"
    config = edge_config(settings, Path("/var/cache/academia-edge"))
    assert "upstream academia_node_media-2" in config


def test_no_secret_has_a_default() -> None:
    """Every secret comes from the operator's .env, and compose refuses to start without it
    (`${VAR:?message}`): a forgotten .env must not run with a password from this file."""
    checked = set()
    for name, service in services().items():
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
            "ACADEMIA_PLAYBACK_SIGNING_KEY", "ACADEMIA_NODE_SECRET"} <= checked


def test_images_are_pinned_and_only_the_edge_and_rtmp_are_public() -> None:
    every = services()
    for name, service in every.items():
        image = service.get("image")
        if image is not None and not image.startswith("academia-live:"):  # built here
            assert ":" in image and not image.endswith(":latest"), (name, image)
        for port in service.get("ports", []):
            published = str(port).split(":")
            # host:container is every interface: only the edge and encoders' RTMP.
            if len(published) < 3:
                allowed = "80" if name == "edge" else "1935" if role(service) == "media" else ""
                assert published[-1] == allowed, (name, port)
            else:
                assert published[0] == "127.0.0.1", (name, port)
    minio = every["minio"]
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", minio["image"])


def test_the_edge_image_has_the_modules_its_configuration_loads() -> None:
    edge = services()["edge"]
    dockerfile = (ROOT / edge["build"]["dockerfile"]).read_text()
    # A dated Debian base, whose nginx and Lua module are the ones the tests run.
    assert re.search(r"^FROM debian:bookworm-\d{8}-slim$", dockerfile, re.M), dockerfile
    assert "nginx libnginx-mod-http-lua" in dockerfile


def test_stopping_leaves_media_nodes_time_to_finalise_recordings() -> None:
    """`docker compose stop` sends SIGTERM, then SIGKILL after the grace period: it must
    reach `academia serve` (not a shell that ignores it as PID 1) and leave it time to
    finalise the live classes' recordings."""
    for name, service in services().items():
        if role(service) != "media":
            continue
        grace = re.fullmatch(r"(\d+)(s|m)", str(service.get("stop_grace_period")))
        assert grace, (name, service.get("stop_grace_period"))
        assert int(grace.group(1)) * (60 if grace.group(2) == "m" else 1) >= 120
        assert service["command"][:2] == ["academia", "serve"]  # no shell in between
    dockerfile = (ROOT / "scripts" / "Dockerfile").read_text()
    command = [line for line in dockerfile.splitlines() if line.startswith("CMD ")]
    assert len(command) == 1
    shell = json.loads(command[0].removeprefix("CMD "))
    assert shell[:2] == ["sh", "-c"]
    assert shell[2].split("&&")[-1].split()[:3] == ["exec", "academia", "serve"], shell
