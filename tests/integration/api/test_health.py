"""Health probes: /healthz for the process, /readyz for what jobs need."""

from __future__ import annotations

import shutil

from comfygate.sim import SimServer
from comfygate.storage.local import LocalStorage
from tests.integration.conftest import GatewayFactory
from tests.wait import eventually


async def test_ready_with_a_backend_for_every_pool(
    start_gateway: GatewayFactory, sim: SimServer
) -> None:
    gateway = await start_gateway(sim.url)
    async with gateway.client() as c:
        # The agent's socket comes up just after start.
        r = await eventually(lambda: c.get("/readyz"), lambda r: r.status_code == 200, "ready")
        assert r.json() == {
            "ready": True,
            "checks": {"database": "ok", "storage": "ok", "pool:default": "ok"},
        }
        assert (await c.get("/healthz")).json()["backends"] == {sim.url: True}


async def test_not_ready_names_what_is_missing(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway()  # no backend at all
    assert isinstance(gateway.gw.storage, LocalStorage)
    storage_root = gateway.gw.storage.root
    async with gateway.client() as c:
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["pool:default"] == "no backend connected"
        assert r.json()["checks"]["storage"] == "ok"
        # Storage that cannot be written shows as failing.
        shutil.rmtree(storage_root)
        storage_root.write_text("not a directory")
        r = await c.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["storage"].startswith("failing")
        assert (await c.get("/healthz")).status_code == 200
