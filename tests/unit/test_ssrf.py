"""The SSRF guard: which addresses are public, names resolved once and checked, and the
request pinned to the checked address with the name kept for Host and TLS."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from comfygate.ssrf import AddressGuard, GuardedTransport, IPAddress, UnsafeAddress, is_public


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[IPAddress]:
        if host not in table:
            raise OSError("name unknown")
        return [ipaddress.ip_address(a) for a in table[host]]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.18.0.1",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


async def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    guard = AddressGuard(
        resolver=resolver(
            {
                "evil.test": ["10.0.0.7"],
                "mixed.test": ["8.8.8.8", "127.0.0.1"],
                "ok.test": ["8.8.4.4"],
            }
        )
    )
    with pytest.raises(UnsafeAddress, match=r"10\.0\.0\.7"):
        await guard.resolve("evil.test", 443)
    with pytest.raises(UnsafeAddress, match=r"127\.0\.0\.1"):
        await guard.resolve("mixed.test", 443)
    with pytest.raises(UnsafeAddress, match="does not resolve"):
        await guard.resolve("nowhere.test", 443)
    assert str(await guard.resolve("ok.test", 443)) == "8.8.4.4"


async def test_the_allow_list_takes_networks_and_names() -> None:
    table = {"hooks.lan": ["192.168.5.5"], "db.lan": ["10.9.9.9"]}
    guard = AddressGuard.from_settings(["10.9.0.0/16", "hooks.lan", "::1"], resolver(table))
    assert str(await guard.resolve("db.lan", 80)) == "10.9.9.9"
    assert str(await guard.resolve("hooks.lan", 80)) == "192.168.5.5"
    assert str(await guard.resolve("::1", 80)) == "::1"
    with pytest.raises(UnsafeAddress):
        await guard.resolve("127.0.0.1", 80)


async def test_urls_must_be_https_unless_the_host_is_allow_listed() -> None:
    guard = AddressGuard.from_settings(["127.0.0.1"], resolver({"pub.test": ["8.8.8.8"]}))
    await guard.check_url("https://pub.test/x")
    await guard.check_url("http://127.0.0.1:9/x", http_if_listed=True)
    for url in [
        "http://pub.test/x",
        "http://127.0.0.1:9/x",  # listed, but http not asked for
        "https://user:pw@pub.test/x",
        "file:///etc/passwd",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.2]/x",
        "https://[fe80::1]/x",
        "https://[fc00::1]/x",
        "not a url",
    ]:
        with pytest.raises(UnsafeAddress):
            await guard.check_url(url)


async def test_the_transport_connects_to_the_checked_address_keeping_the_name() -> None:
    sent: list[httpx.Request] = []

    def inner(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    answers = iter([["93.184.216.34"], ["10.0.0.1"]])  # a rebinding DNS server

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(a) for a in next(answers)]

    transport = GuardedTransport(AddressGuard(resolver=rebinding), httpx.MockTransport(inner))
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get("https://pub.example:8443/p?q=1")).status_code == 204
        with pytest.raises(UnsafeAddress):
            await client.get("https://pub.example:8443/p")
    [request] = sent
    assert request.url.host == "93.184.216.34" and request.url.port == 8443
    assert request.url.raw_path == b"/p?q=1"
    assert request.headers["host"] == "pub.example:8443"
    assert request.extensions["sni_hostname"] == "pub.example"
