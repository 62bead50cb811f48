"""Outbound HTTP to addresses the public chose (webhooks, image URLs), without SSRF.

Every connection goes through :class:`GuardedTransport`: the host is resolved once, every
address it resolves to must be public (or allow-listed), and the request is sent to the
checked address, keeping the name in the ``Host`` header and in TLS (SNI and certificate
verification). A DNS answer that changes between the check and the connect (rebinding)
therefore cannot move the request. Redirects are never followed by the client; a caller
that follows them sends each hop through the same transport.

Usage::

    guard = AddressGuard.from_settings(["10.1.2.0/24", "hooks.internal"])
    async with guarded_client(guard) as client:
        await client.post("https://example.com/hook", content=b"{}")
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from comfygate.errors import ComfygateError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(host, port) -> addresses``; tests inject one to make a name resolve anywhere
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

RESOLVE_TIMEOUT_S = 5.0
#: IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64)
NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class UnsafeAddress(ComfygateError):
    """The address is not public, so the gateway will not connect to it."""

    code = "unsafe_address"
    status_code = 422


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    # The scope of a link-local IPv6 address ("fe80::1%eth0") is not part of the address.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast: not private, loopback, link-local, unique-local,
    CGNAT (100.64/10), multicast, reserved, unspecified or documentation space, and
    for IPv6 not an IPv4 address in disguise that is any of those."""
    inner = embedded_ipv4(address)
    if inner is not None and not is_public(inner):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return True  # a socket to it reaches the (public) IPv4 address
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_private
    )


@dataclass(frozen=True)
class AddressGuard:
    """Which addresses outbound requests may reach: public ones, plus an allow-list of
    networks and host names an operator trusts (a receiver on the local network)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()
    resolver: Resolver = system_resolver

    @classmethod
    def from_settings(cls, allow: Iterable[str], resolver: Resolver | None = None) -> AddressGuard:
        """``allow`` holds CIDRs or addresses (``10.0.0.0/8``, ``::1``) and host names."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        return cls(
            networks=tuple(networks),
            hosts=frozenset(hosts),
            resolver=resolver or system_resolver,
        )

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows(self, address: IPAddress) -> bool:
        return is_public(address) or any(
            address.version == net.version and address in net for net in self.networks
        )

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address of ``host``, checked: one bad answer refuses the name, so
        round-robin DNS cannot slip a private address in."""
        literal = _ip_literal(host)
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_S):
                found = [literal] if literal is not None else await self.resolver(host, port)
        except OSError as exc:
            raise UnsafeAddress(f"{host} does not resolve: {exc}") from None
        except TimeoutError:
            raise UnsafeAddress(f"{host} did not resolve within {RESOLVE_TIMEOUT_S:g} s") from None
        if not found:
            raise UnsafeAddress(f"{host} does not resolve")
        if not self.allows_host(host):
            for address in found:
                if not self.allows(address):
                    raise UnsafeAddress(f"{host} resolves to {address}, which is not public")
        return found

    async def resolve(self, host: str, port: int) -> IPAddress:
        """The one address to connect to."""
        return (await self.addresses(host, port))[0]

    def listed(self, host: str, addresses: Sequence[IPAddress]) -> bool:
        """Whether the allow-list names the host or holds every address it has."""
        return self.allows_host(host) or all(
            any(a.version == net.version and a in net for net in self.networks) for a in addresses
        )

    async def check_url(self, url: str, *, http_if_listed: bool = False) -> None:
        """Refuse a URL that is malformed, not https (http only to an allow-listed host,
        if ``http_if_listed``), carries credentials, or whose host is not public."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise UnsafeAddress(f"not a valid URL: {exc}") from None
        if parsed.scheme not in ("https", "http") or not parsed.host:
            raise UnsafeAddress("the URL must be https with a host")
        if parsed.userinfo:
            raise UnsafeAddress("the URL must not carry credentials")
        found = await self.addresses(parsed.host, parsed.port or _default_port(parsed.scheme))
        if parsed.scheme == "http" and not (http_if_listed and self.listed(parsed.host, found)):
            raise UnsafeAddress("the URL must be https (http only to an allow-listed host)")


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class GuardedTransport(httpx.AsyncBaseTransport):
    """Sends each request to the address :class:`AddressGuard` checked for its host."""

    def __init__(self, guard: AddressGuard, inner: httpx.AsyncBaseTransport) -> None:
        self.guard = guard
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.host
        address = await self.guard.resolve(host, url.port or _default_port(url.scheme))
        if _ip_literal(host) is None:
            # Host header is already the name; TLS keeps it as SNI and verifies the
            # certificate against it, while the socket goes to the checked address.
            request.url = url.copy_with(host=str(address))
            # Pooled connections are keyed by address: one verified for another name
            # that shares it must never carry this request.
            request.headers["Connection"] = "close"
            if url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def guarded_client(
    guard: AddressGuard,
    *,
    timeout_s: float = 10.0,
    verify: ssl.SSLContext | bool = True,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An httpx client whose every connection passes the guard; it never follows
    redirects and ignores proxy variables (a proxy would connect for us, unchecked)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, httpx.AsyncHTTPTransport(verify=verify)),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
        **kwargs,
    )
