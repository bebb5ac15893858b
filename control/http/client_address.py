"""Which address a request comes from, for per-address rate limits.

The TCP peer, unless it is one of the operator's `trusted_proxies`: then the nearest
X-Forwarded-For hop that is not a trusted proxy. The header is never believed from
anyone else (a client would write whatever address suits it). IPv6 clients are counted
per /64, the block one subscriber usually holds, so rotating through it gains nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(setting: str) -> tuple[Network, ...]:
    """Parses `trusted_proxies` (comma-separated addresses or networks); ValueError if bad."""
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in setting.split(",") if part.strip()
        )
    except ValueError as exc:
        raise ValueError(f"trusted_proxies: {exc}") from None


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
             networks: Iterable[Network]) -> bool:
    return address is not None and any(address in network for network in networks)


def _key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_address(request: web.Request, trusted: tuple[Network, ...]) -> str:
    peer = _parse(request.remote or "")
    if peer is None:
        return request.remote or "unknown"
    if not _trusted(peer, trusted):
        return _key(peer)
    hops = [
        hop for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
    ]
    # Walk back from the nearest hop: each trusted proxy vouches for the one before it.
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break  # a hop we cannot read: stop believing the header here
        if not _trusted(address, trusted):
            return _key(address)
    return _key(peer)
