"""docker-compose.yml's cluster holds together (no Docker here to run it): every control
process and media node is in the edge's lists and the media nodes' control list, under
the names and addresses they announce; every ACADEMIA_* variable is a setting; the edge's
configuration renders from that environment; every image is pinned.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from config.loading import ENV_PREFIX, load_settings
from mediaserver.edge.nginx_config import edge_config

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"


def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, Any] = document["services"]
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """The service's environment with `${VAR:?...}` / `${VAR:-default}` filled in."""
    def fill(value: str) -> str:
        return re.sub(r"\$\{(\w+)(:[-?][^}]*)?\}",
                      lambda m: f"test-{m.group(1).lower()}-0123456789", value)

    return {key: fill(str(value)) for key, value in service.get("environment", {}).items()}


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
    # Control processes start only once the schema is migrated, by one process.
    for name in controls:
        assert every[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully")


def test_every_variable_is_a_setting_and_the_edge_config_renders() -> None:
    every = services()
    env = environment(every["media-1"])
    names = {name for name in env if name.startswith(ENV_PREFIX)}
    settings = load_settings(environ=env)
    known = {ENV_PREFIX + key.upper() for section in vars(settings).values()
             for key in vars(section)}
    assert names <= known, names - known
    config = edge_config(settings, Path("/var/cache/academia-edge"))
    assert "upstream academia_node_media-2" in config
    edge = every["edge"]
    assert edge["command"][:3] == ["nginx", "-c", "/edge/nginx.conf"]


def test_every_image_is_pinned() -> None:
    for name, service in services().items():
        image = service.get("image")
        if image is None or image.startswith("academia-live:"):
            continue  # built here from the Dockerfile
        tag = image.rpartition(":")[2]
        assert ":" in image and tag not in ("latest", ""), (name, image)
