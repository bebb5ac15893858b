"""The address a request is counted against: the TCP peer, unless a trusted proxy vouches
for an X-Forwarded-For hop. Nobody else's header is believed."""

from __future__ import annotations

from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from control.http.client_address import client_address, trusted_networks


def request(peer: str, forwarded: str | None = None) -> web.Request:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 12345) if name == "peername" else default
    )
    return make_mocked_request("POST", "/auth/login", headers=headers, transport=transport)


def test_the_peer_by_default_whatever_the_header_says() -> None:
    assert client_address(request("203.0.113.9", "1.2.3.4"), ()) == "203.0.113.9"


def test_a_header_from_an_untrusted_peer_is_ignored() -> None:
    trusted = trusted_networks("10.0.0.0/8")
    assert client_address(request("203.0.113.9", "1.2.3.4"), trusted) == "203.0.113.9"


def test_a_trusted_proxy_names_the_client() -> None:
    trusted = trusted_networks("10.0.0.1, 10.0.1.0/24")
    # The client wrote its own (spoofed) first hop; each proxy appended what it saw.
    req = request("10.0.0.1", "6.6.6.6, 198.51.100.4, 10.0.1.7")
    assert client_address(req, trusted) == "198.51.100.4"


def test_an_unreadable_hop_stops_the_walk_at_the_proxy() -> None:
    trusted = trusted_networks("10.0.0.1")
    assert client_address(request("10.0.0.1", "not-an-address"), trusted) == "10.0.0.1"


def test_ipv6_clients_count_per_64() -> None:
    one = client_address(request("2001:db8:1:2::1"), ())
    other = client_address(request("2001:db8:1:2:ffff::9"), ())
    assert one == other == "2001:db8:1:2::/64"
    assert client_address(request("::ffff:192.0.2.1"), ()) == "192.0.2.1"


def test_a_bad_trusted_proxies_setting_is_refused() -> None:
    with pytest.raises(ValueError):
        trusted_networks("10.0.0.1, proxy.example")
