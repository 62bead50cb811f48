"""The agent against a backend that answers like ComfyUI does at a prompt's end."""

from __future__ import annotations

from tests.integration.conftest import GatewayFactory, SimFactory, wait_status


async def test_a_history_written_after_the_success_message_is_waited_for(
    start_sim: SimFactory, start_gateway: GatewayFactory
) -> None:
    # ComfyUI writes /history after execution_success has gone out: here 300 ms after.
    sim = await start_sim(history_lag_ms=300)
    gateway = await start_gateway(sim.url)
    async with gateway.client() as c:
        r = await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        assert r.status_code == 202, r.text
        done = await wait_status(c, r.json()["id"], "succeeded", "failed")
        attempts = (await c.get(f"/v1/jobs/{done['id']}/attempts")).json()["attempts"]
    assert done["status"] == "succeeded", done
    assert [a["outcome"] for a in attempts] == ["succeeded"]
    assert [o["kind"] for o in done["outputs"]] == ["image"]
