"""`academia edge-config`: the [cluster] settings parsed strictly, and the nginx.conf made
from them (read as text here; tests/e2e/test_edge_nginx.py runs it in nginx)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.loading import SettingsError, load_settings
from config.settings import Settings
from mediaserver.cli import main
from mediaserver.edge.edge_plan import Address, edge_plan
from mediaserver.edge.nginx_config import edge_config

SECRET = "a-node-secret-of-some-length"
PREFIX = Path("/var/lib/academia-edge")
GOOD = {
    "edge_listen": "0.0.0.0:80",
    "edge_control_urls": "http://10.0.0.1:8080, http://control-2.internal:8080/",
    "edge_media_nodes": "media-1=http://10.0.1.1:8080,media-2=http://[fd00::2]:8081,"
                        "media_3.dc=http://media3",
    "node_secret": SECRET,
}


def settings(**cluster: str) -> Settings:
    base = load_settings(environ={f"ACADEMIA_{key.upper()}": value
                                  for key, value in {**GOOD, **cluster}.items()})
    return base


def test_the_plan_reads_every_address() -> None:
    plan = edge_plan(settings())
    assert plan.listen == Address("0.0.0.0", 80)
    assert plan.controls == (Address("10.0.0.1", 8080), Address("control-2.internal", 8080))
    assert [(n.name, str(n.address)) for n in plan.media_nodes] == [
        ("media-1", "10.0.1.1:8080"), ("media-2", "[fd00::2]:8081"),
        ("media_3.dc", "media3:80")]
    assert edge_plan(settings(edge_listen="[::]:8443")).listen == Address("::", 8443)


@pytest.mark.parametrize(("key", "value", "says"), [
    ("edge_listen", "80", "edge_listen"),
    ("edge_listen", "0.0.0.0:0", "not a TCP port"),
    ("edge_listen", "0.0.0.0:65536", "not a TCP port"),
    ("edge_listen", "[::1]:80x", "not a TCP port"),
    ("edge_listen", "bad host:80", "not an IP address or a host name"),
    ("edge_listen", "[nope]:80", "edge_listen"),
    ("edge_control_urls", "", "required by the edge"),
    ("edge_control_urls", "http://a:1,,http://b:2", "an empty entry"),
    ("edge_control_urls", "https://a:1", "must start with http://"),
    ("edge_control_urls", "a:1", "must start with http://"),
    ("edge_control_urls", "http://a:1/api", "without a path"),
    ("edge_control_urls", "http://a:1?x=1", "without a path"),
    ("edge_control_urls", "http://u:p@a:1", "user or password"),
    ("edge_control_urls", "http://a;b:1", "not an IP address or a host name"),
    ("edge_control_urls", "http://a:99999", "not a URL"),
    ("edge_control_urls", "http://a:1,http://a:1", "listed twice"),
    ("edge_media_nodes", "", "required by the edge"),
    ("edge_media_nodes", "http://a:1", "expected name=http://host:port"),
    ("edge_media_nodes", "storage=http://a:1", "reserved"),
    ("edge_media_nodes", "default=http://a:1", "keyword"),
    ("edge_media_nodes", "a b=http://a:1", "not a node name"),
    ("edge_media_nodes", "a{=http://a:1", "not a node name"),
    ("edge_media_nodes", "x=http://a:1,x=http://b:1", "used twice"),
    ("edge_media_nodes", "x=http://a:1,y=http://a:1", "share an address"),
    ("edge_media_nodes", "x=https://a:1", "must start with http://"),
    ("node_secret", "", "required by the edge"),
    ("node_secret", "short", "node_secret"),
    ("node_secret", "sixteen-chars-and-$more", "node_secret"),
    ("node_secret", 'sixteen-chars-and-"quote', "node_secret"),
    ("node_secret", "sixteen-chars-and-;semicolon", "node_secret"),
    ("node_secret", "sixteen chars and spaces", "node_secret"),
])
def test_bad_settings_are_refused_by_name(key: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(says)) as raised:
        edge_config(settings(**{key: value}), PREFIX)
    assert key in str(raised.value)
    # A refused secret is never repeated in the message.
    if key == "node_secret" and value:
        assert value not in str(raised.value)


def _block(config: str, head: str) -> str:
    match = re.search(re.escape(head) + r" \{\n(.*?)\n    \}", config, re.S)
    assert match is not None, head
    return match[1]


def test_every_node_gets_its_upstream_and_all_of_them_serve_recordings() -> None:
    config = edge_config(settings(), PREFIX)
    assert "server 10.0.1.1:8080 " in _block(config, "upstream academia_node_media-1")
    assert "server [fd00::2]:8081 " in _block(config, "upstream academia_node_media-2")
    assert "server media3:80 " in _block(config, "upstream academia_node_media_3.dc")
    every = _block(config, "upstream academia_media_all")
    assert all(f"server {a} " in every for a in ("10.0.1.1:8080", "[fd00::2]:8081", "media3:80"))
    origins = _block(config, "map $academia_origin $academia_origin_upstream")
    assert "storage academia_media_all;" in origins
    for name in ("media-1", "media-2", "media_3.dc"):
        assert f"{name} academia_node_{name};" in origins
    controls = _block(config, "upstream academia_control")
    assert "server 10.0.0.1:8080 " in controls and "server control-2.internal:8080 " in controls
    assert "listen 0.0.0.0:80;" in config


def test_the_secret_goes_to_the_control_plane_only_and_keys_leave_the_token_out() -> None:
    config = edge_config(settings(), PREFIX)
    assert config.count(SECRET) == 1
    assert f'proxy_set_header Authorization "Bearer {SECRET}";' in config
    keys = re.findall(r"proxy_cache_key (.*);", config)
    assert keys == ["$academia_session/$academia_file",
                    "$academia_session/$academia_file$is_args$args",
                    "$academia_session/$academia_token"]  # the last: the check's answers
    # Concurrent requests wait for the first with the same key, which leaves the token
    # out too; a plain playlist reload never waits (its key is empty).
    flights = re.findall(r'set \$academia_flight_key "(.*)";', config)
    assert flights == ["$academia_session/$academia_file", "$academia_playlist_flight"]
    assert '0 "$academia_session/$academia_file?$args";' in _block(
        config, "map $academia_plain_reload $academia_playlist_flight")
    # nginx's own lock is not used: its waiters look again every 500 ms.
    assert re.search(r"^ *proxy_cache_lock", config, re.M) is None
    # Every path nginx writes is under the prefix (and the modules are Debian's).
    paths = re.findall(r'"(/[^"]*)"', config)
    written = [p for p in paths if not p.startswith(
        ("/play", "/internal", "/sessions", "/usr/lib/nginx/modules/", "/usr/share/lua/"))]
    assert written and all(p.startswith(f"{PREFIX}/") for p in written), written


def test_the_prefix_is_absolute_and_plain() -> None:
    with pytest.raises(SettingsError, match="absolute"):
        edge_config(settings(), Path("relative/edge"))
    with pytest.raises(SettingsError, match="absolute"):
        edge_config(settings(), Path('/tmp/a"b'))


def test_the_command_prints_the_configuration(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    for key, value in GOOD.items():
        monkeypatch.setenv(f"ACADEMIA_{key.upper()}", value)
    assert main(["edge-config", "--prefix", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out == edge_config(settings(), tmp_path)
    monkeypatch.setenv("ACADEMIA_EDGE_MEDIA_NODES", "")
    assert main(["edge-config", "--prefix", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "edge_media_nodes: required by the edge" in captured.err
