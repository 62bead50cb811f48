"""A pool's warm-up runs on a freshly started backend before it takes traffic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from comfygate.contracts import load_workflows
from comfygate.errors import ContractError
from comfygate.sim import SimServer
from tests.integration.conftest import WORKFLOWS, GatewayFactory, SimFactory, wait_status
from tests.wait import until


def warmups(sim: SimServer) -> int:
    return sum(
        1 for _, path, body in sim.log if path == "/prompt" and "comfygate/warmup" in str(body)
    )


def prompts(sim: SimServer) -> list[Any]:
    return [body for _, path, body in sim.log if path == "/prompt"]


def with_warmup(tmp_path: Path) -> Path:
    root = tmp_path / "warm-workflows"
    shutil.copytree(WORKFLOWS, root)
    warm = root / "warm"
    shutil.copytree(WORKFLOWS / "image-ops", warm)
    contract = json.loads((warm / "contract.json").read_text())
    contract["x-comfygate"]["warmup"] = True
    (warm / "contract.json").write_text(json.dumps(contract))
    return root


async def test_warmup_before_traffic_and_again_after_a_backend_restart(
    tmp_path: Path, start_sim: SimFactory, start_gateway: GatewayFactory
) -> None:
    sim = await start_sim()
    gateway = await start_gateway(sim.url, workflows_dir=with_warmup(tmp_path))
    async with gateway.client() as c:
        job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        await wait_status(c, job["id"], "succeeded")
        assert warmups(sim) == 1 and "comfygate/warmup" in str(prompts(sim)[0])
        await sim.restart()  # starts empty: it needs warming again
        await until(
            lambda: warmups(sim) == 2 and not gateway.gw.agents[0].warming,
            "the restarted backend to be warmed once more",
        )
        job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        await wait_status(c, job["id"], "succeeded")
    assert warmups(sim) == 2  # a job on a warm backend warms nothing


async def test_two_warmups_for_one_pool_are_refused(tmp_path: Path) -> None:
    root = with_warmup(tmp_path)
    shutil.copytree(root / "warm", root / "warm-too")
    with pytest.raises(ContractError, match="more than one warm-up"):
        load_workflows(root)
