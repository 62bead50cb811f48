"""The client's address: the peer, or, behind trusted proxies, the first hop of
``X-Forwarded-For`` counted from the right that is not a trusted proxy.

Only hops appended by proxies we trust can be believed; everything to their left was
written by the client and may be forged, so the walk stops at the first stranger."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(specs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


def parse_address(text: str) -> Address | None:
    """An IP from a hop as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1`` or
    ``[::1]:5678``; None when it is none of those."""
    hop = text.strip()
    if hop.startswith("["):
        hop, closed, _ = hop[1:].partition("]")
        if not closed:
            return None
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        address = ipaddress.ip_address(hop)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """``forwarded_for``: every ``X-Forwarded-For`` header value, in order."""
    current = parse_address(peer or "")
    if current is None:
        return peer or "unknown"
    if not trusted or not _trusted(current, trusted):
        return str(current)
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            # A trusted proxy would not write this: stop at the last address we believe.
            break
        current = address
        if not _trusted(address, trusted):
            break
    return str(current)
