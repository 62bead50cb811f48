"""HttpTransport while the gateway is away: it retries with backoff, and a lease call
keeps its request id across retries so a lease taken for a lost answer comes back."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest

from comfygate.clock import FakeClock
from comfygate.errors import LeaseLost
from comfygate.jobs.model import Lessee, Progress
from comfygate.worker.transport.http import GatewayRefused, HttpTransport
from comfygate.worker.transport.wire import lease_from_dict, lease_to_dict, models_digest
from tests.unit.worker.helpers import LEASE

LESSEE = Lessee(
    agent_id="a", backend="http://c", pools=("default",), capacity=2, models=frozenset({"m"})
)


def _transport(handler: httpx.MockTransport, clock: FakeClock) -> HttpTransport:
    return HttpTransport("http://gw", "cgw_x", clock=clock, transport=handler)


async def test_a_lease_is_retried_with_the_same_request_id_while_the_gateway_is_away() -> None:
    seen: list[str] = []
    retries: list[bool] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body["request_id"])
        retries.append(body.get("retry", False))
        assert body["pools"] == ["default"] and body["models"] == ["m"]
        if len(seen) == 1:
            raise httpx.ConnectError("refused")
        if len(seen) == 2:
            return httpx.Response(503)
        return httpx.Response(200, json=lease_to_dict(LEASE))

    clock = FakeClock()
    t = _transport(httpx.MockTransport(answer), clock)
    got = await t.lease(LESSEE, wait_s=25)
    assert got == LEASE
    assert len(seen) == 3 and len(set(seen)) == 1
    # Resends say so: the gateway that gets one looks for a lease the first try took.
    assert retries == [False, True, True]
    assert 0 < clock.monotonic() <= 1.5  # backed off, not hammering
    await t.aclose()


async def test_a_lease_gives_up_when_no_longer_wanted() -> None:
    calls = 0

    def away(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused")

    t = _transport(httpx.MockTransport(away), FakeClock())
    got = await t.lease(LESSEE, wait_s=25, wanted=lambda: calls < 4)
    assert got is None and calls == 4
    await t.aclose()


async def test_backoff_is_capped_and_a_terminal_call_gives_up_after_a_while() -> None:
    clock = FakeClock()
    t = _transport(httpx.MockTransport(lambda r: httpx.Response(502)), clock)
    with pytest.raises(GatewayRefused):
        await t.canceled(LEASE)
    assert 60 <= clock.monotonic() <= 75
    await t.aclose()


async def test_409_lease_lost_raises_lease_lost_and_other_errors_are_refusals() -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        return httpx.Response(409, json={"error": {"code": "lease_lost", "message": "gone"}})

    t = _transport(httpx.MockTransport(lost), FakeClock())
    with pytest.raises(LeaseLost):
        await t.heartbeat(LEASE)
    with pytest.raises(LeaseLost):
        await t.complete(LEASE, [])
    await t.aclose()
    bad = _transport(
        httpx.MockTransport(lambda r: httpx.Response(422, json={"error": {"code": "x"}})),
        FakeClock(),
    )
    with pytest.raises(GatewayRefused):
        await bad.heartbeat(LEASE)
    # Progress is best effort: a refusal is not the job's failure.
    assert (await bad.progress(LEASE, Progress())).cancel is False
    await bad.aclose()


async def test_the_model_list_goes_once_per_gateway_then_by_digest() -> None:
    bodies: list[dict[str, object]] = []
    forgot = False

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if forgot and "models" not in body:  # a gateway that never saw the list
            return httpx.Response(
                409, json={"error": {"code": "models_unknown", "message": "send them"}}
            )
        return httpx.Response(204)

    t = _transport(httpx.MockTransport(answer), FakeClock())
    assert await t.lease(LESSEE, wait_s=0) is None
    assert await t.lease(LESSEE, wait_s=0) is None
    assert bodies[0]["models"] == ["m"]
    assert "models" not in bodies[1]
    assert bodies[0]["models_digest"] == bodies[1]["models_digest"] == models_digest(["m"])
    # Another gateway behind the same address asks for the list: it is sent again, in
    # the same call (same request id).
    forgot = True
    assert await t.lease(LESSEE, wait_s=0) is None
    assert "models" not in bodies[2] and bodies[3]["models"] == ["m"]
    assert bodies[2]["request_id"] == bodies[3]["request_id"]
    # Other model files: sent whole at once.
    forgot = False
    other = Lessee(agent_id="a", backend="http://c", pools=("default",), models=frozenset({"n"}))
    assert await t.lease(other, wait_s=0) is None
    assert bodies[4]["models"] == ["n"]
    await t.aclose()


def test_a_lease_carries_its_graph_over_the_wire_when_the_gateway_has_it() -> None:
    graph = {"9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}
    carried = lease_from_dict(json.loads(json.dumps(lease_to_dict(replace(LEASE, graph=graph)))))
    assert carried.graph == graph
    assert lease_from_dict(lease_to_dict(LEASE)).graph is None
