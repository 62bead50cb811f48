"""Previews are fenced like progress: a lease this gate handed out publishes without a
read of the job row; a token that does not hold the job publishes nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from comfygate.clock import FakeClock
from comfygate.jobs.model import Lessee, LiveEvent
from comfygate.jobs.worker_gate import PROGRESS_SAVE_S
from comfygate.store import SqlJobStore
from tests.integration.store.helpers import gate_over, new_job

W1 = Lessee(agent_id="w1", backend="http://gpu-1", pools=("default",))
PNG = b"\x89PNG\r\n\x1a\n"


async def test_previews_of_a_lease_handed_out_here_need_no_read_until_it_is_stale(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_over(store, clock, tmp_path)
    job = await store.create_job(new_job(), now=clock.now())
    lease = await gate.lease(W1, wait_s=0)
    assert lease is not None
    published: list[LiveEvent] = []
    reads: list[str] = []
    real_get = store.get_job
    real_publish = gate.events.publish

    async def get_job(job_id: str) -> Any:
        reads.append(job_id)
        return await real_get(job_id)

    async def publish(event: LiveEvent) -> None:
        published.append(event)
        await real_publish(event)

    monkeypatch.setattr(store, "get_job", get_job)
    monkeypatch.setattr(gate.events, "publish", publish)

    await gate.preview(lease, node_id="3", content_type="image/png", data=PNG)
    assert reads == []
    [event] = published
    assert event.type == "preview" and event.owner_id == job.owner_id

    clock.advance(PROGRESS_SAVE_S)  # a lease not heard of for a while is checked again
    await gate.preview(lease, node_id="3", content_type="image/png", data=PNG)
    assert reads == [job.id] and len(published) == 2

    stale = replace(lease, lease_token="not-the-holder")
    await gate.preview(stale, node_id="3", content_type="image/png", data=PNG)
    assert len(published) == 2
