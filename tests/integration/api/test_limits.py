"""Rate limits, the concurrency limit and budgets over HTTP, on a gateway without
backends (jobs stay queued, so they stay active)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfygate.jobs.quota import Budget
from tests.integration.api.helpers import IMAGE_OPS, become_visitor
from tests.integration.conftest import GatewayFactory, RunningGateway
from tests.integration.store.conftest import throwaway_pg_database

TXT2IMG = "/v1/workflows/txt2img/jobs"
#: txt2img's x-comfygate.cost at its defaults: 1 + 0.1 * 20 steps + 1e-6 * 512 * 512
TXT2IMG_COST = 1 + 2 + 512 * 512 * 1e-6


def local_limits(**limits: Any) -> dict[str, Any]:
    return {"kinds": {"local": limits}}


async def post_many(gateway: RunningGateway, n: int, **kw: Any) -> list[httpx.Response]:
    async with gateway.client() as c:
        return await asyncio.gather(
            *(c.post(IMAGE_OPS, json={"params": {}}, **kw) for _ in range(n))
        )


async def test_over_the_rate_a_submit_gets_429_with_ratelimit_headers(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(limits=local_limits(per_minute=3))
    async with gateway.client() as c:
        accepted = [await c.post(IMAGE_OPS, json={"params": {}}) for _ in range(3)]
        refused = await c.post(IMAGE_OPS, json={"params": {}})
        other_route = await c.get("/v1/jobs")
    assert [r.status_code for r in accepted] == [202, 202, 202]
    assert accepted[0].headers["ratelimit-policy"] == '"principal";q=3;w=60'
    remaining = [re.search(r";r=(\d+);", r.headers["ratelimit"]) for r in accepted]
    assert [int(m.group(1)) for m in remaining if m] == [2, 1, 0]

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["details"] == {"limits": ["principal"]}
    assert refused.headers["ratelimit-policy"] == '"principal";q=3;w=60'
    state = re.fullmatch(r'"principal";r=0;t=(\d+)', refused.headers["ratelimit"])
    assert state is not None and 0 < int(state.group(1)) <= 60
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert other_route.status_code == 200, "only submissions are counted"


async def test_an_owners_retry_counts_as_a_submission(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(limits=local_limits(per_minute=2))
    async with gateway.client() as c:
        job_id = (await c.post(IMAGE_OPS, json={"params": {}})).json()["id"]
        assert (await c.post(f"/v1/jobs/{job_id}/cancel")).status_code == 202
        retried = await c.post(f"/v1/jobs/{job_id}/retry")
        refused = await c.post(f"/v1/jobs/{job_id}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["retry_of"] == job_id
    assert retried.headers["location"] == f"/v1/jobs/{retried.json()['id']}"
    assert retried.headers["ratelimit"].startswith('"principal";r=0;')
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["retry-after"]


async def test_the_rate_limit_is_exact_under_concurrent_submits(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(limits=local_limits(per_minute=5))
    codes = sorted(r.status_code for r in await post_many(gateway, 20))
    assert codes == [202] * 5 + [429] * 15


async def submit_from(gateway: RunningGateway, forwarded_for: str) -> httpx.Response:
    async with gateway.client() as c:
        return await c.post(
            IMAGE_OPS, json={"params": {}}, headers={"X-Forwarded-For": forwarded_for}
        )


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_count(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(
        limits=local_limits(per_address_per_minute=2), trusted_proxies=["127.0.0.1/32"]
    )
    # The leftmost hop is forged by the client; the proxy appended the real address.
    first = [await submit_from(gateway, f"10.9.9.{i}, 198.51.100.1") for i in range(3)]
    assert [r.status_code for r in first] == [202, 202, 429]
    assert first[2].headers["ratelimit-policy"] == '"address";q=2;w=60'
    # Another client behind the proxy has a count of its own: the header was believed.
    assert (await submit_from(gateway, "198.51.100.2")).status_code == 202


async def test_without_trusted_proxies_a_forwarded_header_from_loopback_is_ignored(
    start_gateway: GatewayFactory,
) -> None:
    """Loopback is no proxy unless trusted_proxies says so (uvicorn would believe it)."""
    gateway = await start_gateway(limits=local_limits(per_address_per_minute=2))
    codes = [(await submit_from(gateway, f"198.51.100.{i}")).status_code for i in range(3)]
    assert codes == [202, 202, 429], "each forged address got a count of its own"


async def test_on_a_public_site_a_caller_without_a_cookie_is_limited_like_a_visitor(
    start_gateway: GatewayFactory,
) -> None:
    """Anonymous use and the public site, as on the demo: leaving the visitor cookie out
    must not skip the visitors' limits; each address is counted as one visitor."""
    gateway = await start_gateway(
        allow_anonymous=True,
        public_site=True,
        limits={"kinds": {"visitor": {"per_minute": 2}}},
        trusted_proxies=["127.0.0.1/32"],
    )
    first = [await submit_from(gateway, "198.51.100.1") for _ in range(3)]
    assert [r.status_code for r in first] == [202, 202, 429]
    assert first[2].json()["error"]["details"] == {"limits": ["principal"]}
    assert first[2].headers["ratelimit-policy"] == '"principal";q=2;w=60'
    assert (await submit_from(gateway, "198.51.100.2")).status_code == 202, (
        "another address is another anonymous caller, with a count of its own"
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""
    else:
        yield from throwaway_pg_database()


async def test_concurrent_submits_cannot_pass_the_active_limit(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    gateway = await start_gateway(
        limits=local_limits(max_active=2, per_minute=100), database_url=database_url
    )
    responses = await post_many(gateway, 16)
    assert sorted(r.status_code for r in responses) == [202] * 2 + [429] * 14
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "too_many_active_jobs"
    assert refused.json()["error"]["details"] == {"active_jobs": 2, "max_active": 2}
    assert refused.headers["retry-after"]
    # The refusal still tells the rate limit's state.
    assert refused.headers["ratelimit-policy"] == '"principal";q=100;w=60'
    assert re.fullmatch(r'"principal";r=\d+;t=\d+', refused.headers["ratelimit"])
    async with gateway.client() as c:
        usage = (await c.get("/v1/usage")).json()
    assert (usage["active_jobs"], usage["max_active"]) == (2, 2)
    await gateway.stop()


async def test_a_job_over_budget_gets_402_with_remaining_and_resets_at(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(limits=local_limits(per_minute=100))
    gw = gateway.gw
    await gw.budgets.set("local", Budget(5, "day"), now=gw.clock.now())
    async with gateway.client() as c:
        accepted = await c.post(TXT2IMG, json={"params": {"prompt": "a fox"}})
        refused = await c.post(TXT2IMG, json={"params": {"prompt": "a fox"}})
        too_big = await c.post(TXT2IMG, json={"params": {"prompt": "a fox", "steps": 50}})
        cheap = await c.post(TXT2IMG, json={"params": {"prompt": "a fox", "steps": 1}})
        free = await c.post(IMAGE_OPS, json={"params": {}})
        usage = (await c.get("/v1/usage")).json()
    assert accepted.status_code == 202, accepted.text
    assert refused.status_code == 402
    error = refused.json()["error"]
    tomorrow = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )
    assert error["code"] == "quota_exceeded"
    assert error["details"]["remaining"] == pytest.approx(5 - TXT2IMG_COST)
    assert error["details"]["cost"] == pytest.approx(TXT2IMG_COST)
    assert datetime.fromisoformat(error["details"]["resets_at"]) == tomorrow
    # Retry-After is the wait until the budget resets, when the job fits a whole budget.
    wait = (tomorrow - datetime.now(UTC)).total_seconds()
    assert abs(int(refused.headers["retry-after"]) - wait) <= 60
    assert refused.headers["ratelimit-policy"] == '"principal";q=100;w=60'
    assert too_big.status_code == 402 and "retry-after" not in too_big.headers
    assert cheap.status_code == 202, "a job that fits what remains is accepted"
    assert free.status_code == 202, "a workflow without a cost is free"

    cheap_cost = 1 + 0.1 + 512 * 512 * 1e-6
    assert usage["principal_id"] == "local"
    assert (usage["budget"], usage["period"]) == (5, "day")
    assert usage["used"] == pytest.approx(TXT2IMG_COST + cheap_cost)
    assert usage["remaining"] == pytest.approx(5 - TXT2IMG_COST - cheap_cost)
    assert datetime.fromisoformat(usage["resets_at"]) == tomorrow
    assert usage["active_jobs"] == 3 and usage["max_active"] is None
    stored = list((gateway.settings.storage_dir / "jobs").iterdir())
    assert len(stored) == 3, "a refused job leaves no prompt or request behind"


async def test_a_canceled_queued_job_is_refunded(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway()
    async with gateway.client() as c:
        job = (await c.post(TXT2IMG, json={"params": {"prompt": "a fox"}})).json()
        assert (await c.get("/v1/usage")).json()["used"] == pytest.approx(TXT2IMG_COST)
        await c.post(f"/v1/jobs/{job['id']}/cancel")
        usage = (await c.get("/v1/usage")).json()
    assert usage["used"] == 0 and usage["budget"] is None and usage["remaining"] is None


async def test_each_visitor_gets_the_default_budget(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(limits={"visitor_budget": {"amount": 4, "period": "month"}})
    for _ in range(2):  # two browsers, two visitors, a budget each
        async with gateway.client() as c:
            await become_visitor(c)
            first = await c.post(TXT2IMG, json={"params": {"prompt": "a fox"}})
            second = await c.post(TXT2IMG, json={"params": {"prompt": "a fox"}})
            usage = (await c.get("/v1/usage")).json()
        assert (first.status_code, second.status_code) == (202, 402)
        assert (usage["budget"], usage["period"]) == (4, "month")
        assert usage["principal_id"] != "local"
    async with gateway.client() as c:
        assert (await c.post(TXT2IMG, json={"params": {"prompt": "a fox"}})).status_code == 202
