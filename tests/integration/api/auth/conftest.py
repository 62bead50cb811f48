"""A gateway as deployed: no anonymous use, the public site open; and a principal of
each kind to call it as."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.integration.conftest import GatewayFactory, RunningGateway


@dataclass
class Caller:
    """One principal: how it authenticates and which scopes it holds."""

    name: str
    headers: dict[str, str] = field(default_factory=dict)
    scopes: frozenset[str] = frozenset()
    #: a browser: the visitor cookie (and the CSRF cookie its scripts echo)
    visitor: bool = False

    @property
    def anonymous(self) -> bool:
        return not self.headers and not self.visitor


@pytest.fixture
async def locked(start_gateway: GatewayFactory) -> RunningGateway:
    return await start_gateway(allow_anonymous=False, public_site=True)


async def make_key(rg: RunningGateway, name: str, *scopes: str) -> Caller:
    _, secret = await rg.gw.api_keys.create(name, frozenset(scopes))
    return Caller(name, {"authorization": f"Bearer {secret}"}, frozenset(scopes))


@pytest.fixture
async def callers(locked: RunningGateway) -> dict[str, Caller]:
    """Owner and another principal (keys that read and write), a visitor, a key with
    each single scope, the admin token, and nobody."""
    admin = locked.settings.admin_key()
    found = [
        await make_key(locked, "owner", "jobs:read", "jobs:write"),
        await make_key(locked, "other", "jobs:read", "jobs:write"),
        *[await make_key(locked, f"key:{s}", s) for s in ("jobs:read", "jobs:write")],
        *[await make_key(locked, f"key:{s}", s) for s in ("admin", "worker", "raw")],
        Caller("visitor", scopes=frozenset({"jobs:read", "jobs:write"}), visitor=True),
        Caller("admin", {"authorization": f"Bearer {admin}"}, frozenset({"admin"})),
        Caller("anonymous"),
    ]
    return {c.name: c for c in found}


ClientFactory = Callable[[Caller], httpx.AsyncClient]


@pytest.fixture
async def client_as(locked: RunningGateway) -> AsyncIterator[ClientFactory]:
    """A client per caller, kept open for the test; a visitor's has opened a page."""
    opened: dict[str, httpx.AsyncClient] = {}

    def make(caller: Caller) -> httpx.AsyncClient:
        if caller.name not in opened:
            opened[caller.name] = locked.client(headers=caller.headers)
        return opened[caller.name]

    yield make
    for client in opened.values():
        await client.aclose()


async def as_visitor(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Open the home page like a browser, then echo the CSRF cookie as its scripts do."""
    r = await client.get("/")
    assert r.status_code == 200, r.text
    client.headers["x-csrf-token"] = client.cookies["comfygate_csrf"]
    return client
