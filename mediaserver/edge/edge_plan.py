"""The edge's settings, parsed strictly: what nginx listens on and whom it sends to.

Every value read here is written into an nginx configuration file, where a stray `;`,
`{`, quote or `$` would change the meaning of the file (`$` starts a variable even inside
quotes). So each value is parsed into a narrow shape (an IP address or host name and a
port, a node name of a few safe characters, a secret without nginx syntax in it) and a
value outside it is a SettingsError naming the setting, never something quoted around.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from config.loading import SettingsError
from config.settings import Settings
from control.node_api.edge_check import STORAGE_ORIGIN

__all__ = ["STORAGE_ORIGIN", "Address", "EdgePlan", "MediaNode", "edge_plan"]

# The origin the control plane names for a recording: any media node serves it.
# Words nginx's `map` block reads as its own (a node named so would not be a key there).
_MAP_WORDS = frozenset({"default", "hostnames", "include", "volatile"})
# A host name: dot-separated labels of letters, digits and inner hyphens.
_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
# A node's name becomes part of an nginx upstream name and a map key: what a host name
# may hold (the default node name is the host name), plus `_`.
_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# The secret goes into a quoted nginx string: letters, digits and punctuation that means
# nothing to nginx (base64, hex and URL-safe tokens all fit); no quotes, `\`, `$`, `;`,
# braces, `#` or spaces.
_SECRET = re.compile(r"[A-Za-z0-9._~+/=:@%!*,^-]{16,512}")
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True)
class Address:
    """A host (IP address or DNS name) and a TCP port, as nginx writes them."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:  # IPv6
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class MediaNode:
    name: str
    address: Address


@dataclass(frozen=True)
class EdgePlan:
    """Everything the nginx configuration is made from."""

    listen: Address
    controls: tuple[Address, ...]
    media_nodes: tuple[MediaNode, ...]
    node_secret: str
    # The media's segment length: blocking requests are held a few of these.
    segment_seconds: int
    # The control plane's largest request body: the edge refuses bigger ones first.
    max_body_bytes: int


def _host(setting: str, text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if _HOST_NAME.fullmatch(text) is None:
        raise SettingsError(f"{setting}: {text!r} is not an IP address or a host name")
    return text


def _port(setting: str, text: str) -> int:
    if _PORT.fullmatch(text) is None or not 1 <= int(text) <= 65535:
        raise SettingsError(f"{setting}: {text!r} is not a TCP port (1-65535)")
    return int(text)


def parse_listen(text: str) -> Address:
    """`host:port` or `[ipv6]:port`: the address nginx listens on."""
    setting = "edge_listen"
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([^:]*)|([^:\[\]]+):([^:]*)", text.strip())
    if match is None:
        raise SettingsError(f"edge_listen: expected host:port or [ipv6]:port, got {text!r}")
    if match[1] is not None:
        host, port = match[1], match[2]
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise SettingsError(f"edge_listen: {host!r} is not an IPv6 address") from None
    else:
        host, port = _host(setting, match[3]), match[4]
    return Address(host, _port(setting, port))


def parse_http_url(setting: str, text: str) -> Address:
    """`http://host:port` (a trailing `/` allowed): where nginx sends requests. Only
    plain HTTP: the edge talks to its own processes on a private network."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise SettingsError(f"{setting}: {text!r} is not a URL ({exc})") from None
    if parts.scheme != "http":
        raise SettingsError(f"{setting}: {text!r} must start with http:// "
                            "(the edge reaches control and media processes over plain HTTP)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SettingsError(f"{setting}: {text!r} must be http://host:port, without a path")
    if parts.username is not None or parts.password is not None:
        raise SettingsError(f"{setting}: {text!r} must not carry a user or password")
    if not parts.hostname:
        raise SettingsError(f"{setting}: {text!r} names no host")
    return Address(_host(setting, parts.hostname), 80 if port is None else port)


def _items(setting: str, text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not text.strip():
        raise SettingsError(f"{setting}: required by the edge, and empty")
    if any(not item for item in items):
        raise SettingsError(f"{setting}: an empty entry in {text!r}")
    return items


def parse_control_urls(text: str) -> tuple[Address, ...]:
    setting = "edge_control_urls"
    addresses = tuple(parse_http_url(setting, item) for item in _items(setting, text))
    if len(set(addresses)) != len(addresses):
        raise SettingsError(f"{setting}: a control process is listed twice in {text!r}")
    return addresses


def parse_media_nodes(text: str) -> tuple[MediaNode, ...]:
    """`name=http://host:port, ...`: each media node by the name it registers with (the
    name the control plane answers in X-Academia-Origin)."""
    setting = "edge_media_nodes"
    nodes = []
    for item in _items(setting, text):
        name, equals, url = item.partition("=")
        name = name.strip()
        if not equals:
            raise SettingsError(f"{setting}: expected name=http://host:port, got {item!r}")
        if _NODE_NAME.fullmatch(name) is None:
            raise SettingsError(f"{setting}: {name!r} is not a node name (letters, digits,"
                                " '.', '_', '-'; at most 63)")
        if name in _MAP_WORDS:
            raise SettingsError(f"{setting}: {name!r} cannot name a node (nginx reads it as"
                                " a keyword)")
        if name == STORAGE_ORIGIN:
            raise SettingsError(f"{setting}: {STORAGE_ORIGIN!r} is reserved (recordings"
                                " from storage, served by any node)")
        nodes.append(MediaNode(name, parse_http_url(f"{setting} ({name})", url)))
    names = [node.name for node in nodes]
    if len(set(names)) != len(names):
        raise SettingsError(f"{setting}: a node name is used twice in {text!r}")
    addresses = [node.address for node in nodes]
    if len(set(addresses)) != len(addresses):
        raise SettingsError(f"{setting}: two nodes share an address in {text!r}")
    return tuple(nodes)


def parse_node_secret(text: str) -> str:
    if not text:
        raise SettingsError("node_secret: required by the edge (its playback checks to the"
                            " control plane carry it)")
    if _SECRET.fullmatch(text) is None:
        raise SettingsError("node_secret: 16 to 512 of letters, digits and ._~+/=:@%!*,^-"
                            " (no spaces, quotes, backslashes, '$', ';', '#' or braces)")
    return text


def edge_plan(settings: Settings) -> EdgePlan:
    """The edge's plan from the settings; SettingsError names the first bad value."""
    cluster = settings.cluster
    return EdgePlan(
        listen=parse_listen(cluster.edge_listen),
        controls=parse_control_urls(cluster.edge_control_urls),
        media_nodes=parse_media_nodes(cluster.edge_media_nodes),
        node_secret=parse_node_secret(cluster.node_secret),
        segment_seconds=settings.streaming.segment_seconds,
        max_body_bytes=settings.server.max_body_bytes,
    )
