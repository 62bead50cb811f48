"""Guessing credentials: past a few failures a minute, an address (or a refused key,
from any address) gets 429 with Retry-After, before its next credential is checked."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import GatewayFactory, RunningGateway

FAILURES = 3


@pytest.fixture
async def guarded(start_gateway: GatewayFactory) -> RunningGateway:
    return await start_gateway(
        allow_anonymous=False,
        limits={"auth_failures_per_minute": FAILURES},
        trusted_proxies=["127.0.0.1/32"],
    )


def from_address(address: str, **headers: str) -> dict[str, str]:
    return {"x-forwarded-for": address, **headers}


def assert_throttled(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "too_many_failed_attempts"
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_wrong_admin_tokens_are_throttled_per_address(guarded: RunningGateway) -> None:
    token = guarded.settings.admin_key()
    async with guarded.client(headers=from_address("198.51.100.1")) as c:
        wrong = [await c.post("/v1/admin/session", json={"token": f"guess{i}"}) for i in range(5)]
        right = await c.post("/v1/admin/session", json={"token": token})
    assert [r.status_code for r in wrong[:FAILURES]] == [401] * FAILURES
    for r in [*wrong[FAILURES:], right]:
        assert_throttled(r)  # even the right token: a guess that lands must not tell
    async with guarded.client(headers=from_address("198.51.100.2")) as c:
        other = await c.post("/v1/admin/session", json={"token": token})
    assert other.status_code == 204, "another address is not throttled"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/jobs"), ("GET", "/v1/admin/backends"), ("POST", "/worker/v1/adopt")],
)
async def test_wrong_bearer_keys_are_throttled_per_address(
    guarded: RunningGateway, method: str, path: str
) -> None:
    async with guarded.client() as c:
        codes = []
        for i in range(FAILURES + 2):
            headers = from_address("198.51.100.1", authorization=f"Bearer cgk_guess{i}")
            codes.append(await c.request(method, path, json={}, headers=headers))
        no_credentials = await c.get("/v1/jobs", headers=from_address("198.51.100.1"))
    assert [r.status_code for r in codes[:FAILURES]] == [401] * FAILURES
    for r in codes[FAILURES:]:
        assert_throttled(r)
    assert no_credentials.status_code == 401, "no credential is no guess"
    admin = from_address("198.51.100.1", authorization=f"Bearer {guarded.settings.admin_key()}")
    async with guarded.client() as c:
        assert_throttled(await c.request(method, path, json={}, headers=admin))


async def test_a_revoked_key_is_throttled_from_every_address(guarded: RunningGateway) -> None:
    key, secret = await guarded.gw.api_keys.create("leaked", frozenset({"jobs:read"}))
    await guarded.gw.api_keys.revoke(key.id)
    bearer = f"Bearer {secret}"
    async with guarded.client() as c:
        codes = [
            await c.get("/v1/jobs", headers=from_address(f"198.51.100.{i}", authorization=bearer))
            for i in range(FAILURES + 1)
        ]
        fresh = await c.get("/v1/jobs", headers=from_address("203.0.113.9", authorization=bearer))
    assert [r.status_code for r in codes[:FAILURES]] == [401] * FAILURES
    assert_throttled(codes[FAILURES])
    assert_throttled(fresh)
