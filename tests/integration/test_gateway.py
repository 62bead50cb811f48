"""The gateway's local agents reach https backends (ComfyUI behind a TLS proxy) with
the gateway's trusted CAs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from comfygate.sim import SimServer
from tests.integration.conftest import GatewayFactory, wait_status
from tests.integration.tls_front import TlsFront
from tests.wait import until


@pytest.fixture
async def front(sim: SimServer) -> AsyncIterator[TlsFront]:
    front = TlsFront(sim.url)
    await front.start()
    yield front
    await front.stop()


async def test_a_job_runs_on_an_https_backend_the_ca_bundle_trusts(
    front: TlsFront, start_gateway: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(front.ca_file(tmp_path)))
    rg = await start_gateway(front.url)
    async with rg.client() as c:
        r = await c.post("/v1/workflows/txt2img/jobs", json={"params": {"steps": 2}})
        job = await wait_status(c, r.json()["id"], "succeeded", "failed", within_s=30)
    assert job["status"] == "succeeded", job
    assert job["outputs"]


async def test_the_agents_trust_the_gateways_tls_context(
    front: TlsFront, start_gateway: GatewayFactory
) -> None:
    rg = await start_gateway(front.url, build={"tls": front.trusting()})
    stats = await rg.gw.agents[0].comfy.system_stats()
    assert stats.comfyui_version


async def test_a_job_runs_on_an_https_backend_the_gateways_tls_context_trusts(
    front: TlsFront, start_gateway: GatewayFactory
) -> None:
    # No SSL_CERT_FILE: only the gateway's own context trusts the front's CA, for the
    # requests and for the socket alike (the agent takes no work without its socket).
    rg = await start_gateway(front.url, build={"tls": front.trusting()})
    async with rg.client() as c:
        r = await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        job = await wait_status(c, r.json()["id"], "succeeded", "failed", within_s=30)
    assert job["status"] == "succeeded", job


async def test_a_job_leased_where_it_was_accepted_never_reads_its_graph_from_storage(
    sim: SimServer, start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rg = await start_gateway(sim.url)
    read: list[str] = []
    get_bytes = rg.gw.storage.get_bytes

    async def recorded(key: str) -> bytes:
        read.append(key)
        return await get_bytes(key)

    monkeypatch.setattr(rg.gw.storage, "get_bytes", recorded)
    async with rg.client() as c:
        r = await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        job = await wait_status(c, r.json()["id"], "succeeded", "failed")
    assert job["status"] == "succeeded", job
    assert f"jobs/{job['id']}/prompt.json" not in read, read


async def test_a_job_submitted_while_an_agent_waits_is_leased_in_its_own_transaction(
    sim: SimServer, start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rg = await start_gateway(sim.url)
    await until(lambda: rg.gw.gate.waiting("default"), "the agent to wait for work")
    claims: list[str] = []
    claim = rg.gw.store.claim

    async def recorded(**kw: Any) -> Any:
        claims.append(kw["pool"])
        return await claim(**kw)

    monkeypatch.setattr(rg.gw.store, "claim", recorded)
    async with rg.client() as c:
        r = await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        job = await wait_status(c, r.json()["id"], "succeeded", "failed")
        [attempt] = (await c.get(f"/v1/jobs/{job['id']}/attempts")).json()["attempts"]
    assert job["status"] == "succeeded", job
    assert claims == []
    assert attempt["started_at"] == job["created_at"]
