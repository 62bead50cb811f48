"""A job is leased only to a backend whose ComfyUI lists every model file its graph
names; a backend that reports no list is offered every job."""

from __future__ import annotations

from typing import Any

from comfygate.clock import FakeClock
from comfygate.ids import new_id, new_prompt_id
from comfygate.store import SqlJobStore
from tests.integration.store.helpers import new_job


async def _claim(store: SqlJobStore, clock: FakeClock, models: Any) -> str | None:
    claimed = await store.claim(
        pool="default",
        agent_id="w1",
        backend="http://gpu-1",
        prompt_id=new_prompt_id(),
        lease_token=new_id(),
        lease_ttl_s=30,
        now=clock.now(),
        models=models,
    )
    return None if claimed is None else claimed[0].id


async def test_a_claim_skips_jobs_naming_models_the_backend_lacks(
    store: SqlJobStore, clock: FakeClock
) -> None:
    sdxl = await store.create_job(new_job(models=("sdxl.safetensors",)), now=clock.now())
    both = await store.create_job(
        new_job(models=("lora.safetensors", "sd15.safetensors")), now=clock.now()
    )
    plain = await store.create_job(new_job(), now=clock.now())
    sd15_box = frozenset({"sd15.safetensors", "lora.safetensors", "vae.pt"})
    assert await store.has_claimable(pool="default", now=clock.now(), models=sd15_box)
    # In queue order, skipping the sdxl job.
    assert await _claim(store, clock, sd15_box) == both.id
    assert await _claim(store, clock, sd15_box) == plain.id
    assert await _claim(store, clock, sd15_box) is None
    assert not await store.has_claimable(pool="default", now=clock.now(), models=sd15_box)
    assert not await store.has_claimable(pool="default", now=clock.now(), models=frozenset())
    # A backend that reports nothing is not filtered.
    assert await _claim(store, clock, None) == sdxl.id
