from __future__ import annotations

import pytest

from comfygate.limiting.address import client_address, networks, parse_address

PROXIES = networks(["10.0.0.0/8", "fd00::/8"])


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert client_address("203.0.113.7", ["198.51.100.1"], ()) == "203.0.113.7"


def test_a_header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_address("203.0.113.7", ["198.51.100.1"], PROXIES) == "203.0.113.7"


def test_the_first_untrusted_hop_from_the_right_is_the_client() -> None:
    # The client forged the leftmost hop; our proxies appended the rest.
    header = "1.1.1.1, 198.51.100.9, 10.0.0.2"
    assert client_address("10.0.0.1", [header], PROXIES) == "198.51.100.9"


def test_hops_of_several_headers_are_read_in_order() -> None:
    assert client_address("10.0.0.1", ["1.1.1.1", "198.51.100.9, 10.0.0.5"], PROXIES) == (
        "198.51.100.9"
    )


def test_when_every_hop_is_trusted_the_leftmost_is_the_client() -> None:
    assert client_address("10.0.0.1", ["10.1.1.1, 10.0.0.2"], PROXIES) == "10.1.1.1"


def test_without_the_header_a_trusted_peer_is_the_client() -> None:
    assert client_address("10.0.0.1", [], PROXIES) == "10.0.0.1"


def test_garbage_stops_the_walk_at_the_last_believed_address() -> None:
    assert client_address("10.0.0.1", ["198.51.100.9, nonsense, 10.0.0.2"], PROXIES) == ("10.0.0.2")


def test_ipv6_hops_and_ports() -> None:
    header = "[2001:db8::1]:4711, fd00::2"
    assert client_address("fd00::1", [header], PROXIES) == "2001:db8::1"
    assert client_address("10.0.0.1", ["198.51.100.9:5000"], PROXIES) == "198.51.100.9"


def test_an_ipv4_mapped_peer_is_read_as_ipv4() -> None:
    assert client_address("::ffff:10.0.0.1", ["198.51.100.9"], PROXIES) == "198.51.100.9"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.2.3.4", "1.2.3.4"), (" 1.2.3.4:80 ", "1.2.3.4"), ("[::1]:80", "::1"), ("::1", "::1")],
)
def test_parse_address(text: str, expected: str) -> None:
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize("text", ["", "unknown", "1.2.3", "[::1", "example.com"])
def test_parse_address_refuses_what_is_not_an_ip(text: str) -> None:
    assert parse_address(text) is None


def test_an_unparsable_peer_is_kept_as_it_is() -> None:
    assert client_address("testclient", [], PROXIES) == "testclient"
    assert client_address(None, [], PROXIES) == "unknown"
