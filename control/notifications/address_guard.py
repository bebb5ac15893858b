"""Where a webhook may be sent: never to this machine or the private network behind it
(server-side request forgery), unless an admin allowed those networks
(`webhook_allowed_networks`).

The check runs on the addresses a name resolves to at delivery time, and the connection
is made to exactly those addresses (webhooks.py's resolver), so a name that resolves to a
public address when registered and to 127.0.0.1 later is still refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["AddressRefused", "allowed_networks", "check_address"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(ValueError):
    """The target is internal and no setting allows it; the message says which address."""


def allowed_networks(setting: str) -> tuple[Network, ...]:
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in setting.split(",") if part.strip()
    )


def _internal(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _internal(address.ipv4_mapped)
    return (
        address.is_loopback or address.is_private or address.is_link_local
        or address.is_multicast or address.is_reserved or address.is_unspecified
        # 100.64.0.0/10 (carrier-grade NAT) is neither private nor global in Python's view.
        or not address.is_global
    )


def check_address(host: str, allowed: Iterable[Network]) -> None:
    """Raise AddressRefused unless `host` (an IP address) is public or explicitly allowed."""
    address = ipaddress.ip_address(host)
    if any(address in network for network in allowed):
        return
    if _internal(address):
        raise AddressRefused(f"{address} is an internal address; webhooks may not reach it")
