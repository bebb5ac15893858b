"""Which local addresses WHIP offers as ICE host candidates, and which STUN server it asks.

aiortc (through aioice) offers every non-loopback interface address and, unless told
otherwise, asks Google's public STUN server. Academia Live asks no STUN server unless
`whip_stun_url` is set (a server on the public internet is reached on its host address;
one behind NAT needs STUN or a 1:1 address). `whip_ice_addresses` pins the host
candidates to a list (a public interface, or 127.0.0.1 in tests): aioice has no option
for that, so its address lookup is replaced for the whole process, once.
"""

from __future__ import annotations

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

__all__ = ["ice_configuration", "parse_addresses", "restrict_host_addresses"]

_original = aioice.ice.get_host_addresses


def parse_addresses(text: str) -> list[str]:
    """The setting's comma-separated addresses."""
    return [part.strip() for part in text.split(",") if part.strip()]


def restrict_host_addresses(addresses: list[str]) -> None:
    """Offer only `addresses` as host candidates (all interfaces again when empty)."""
    if not addresses:
        aioice.ice.get_host_addresses = _original
        return
    pinned = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in pinned if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


def ice_configuration(stun_url: str) -> RTCConfiguration:
    """The peer connection's configuration: no ICE server unless one is set."""
    servers = [RTCIceServer(urls=stun_url)] if stun_url else []
    return RTCConfiguration(iceServers=servers)
