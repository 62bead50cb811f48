"""A lease carries its job's graph: the agent reads no prompt from storage or the
gateway when the gateway has it, and still runs the job when it has not."""

from __future__ import annotations

import json
from pathlib import Path

from comfygate.clock import FakeClock
from comfygate.jobs.fresh_prompts import FreshPrompts
from comfygate.jobs.keys import prompt_key
from comfygate.jobs.model import Lessee
from comfygate.storage.local import LocalStorage
from comfygate.store import SqlJobStore
from tests.integration.store.helpers import gate_over, new_job

GRAPH = {"9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}}
W1 = Lessee(agent_id="w1", backend="http://gpu-1", pools=("default",))


async def test_a_lease_carries_the_graph_this_gateway_just_accepted(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    gate.fresh = FreshPrompts()
    job = await store.create_job(new_job(), now=clock.now())
    # Not in storage at all: the graph can only have come from memory.
    gate.fresh.keep(job.id, json.dumps(GRAPH).encode())
    lease = await gate.lease(W1, wait_s=0)
    assert lease is not None and lease.job_id == job.id
    assert lease.graph == GRAPH
    assert len(gate.fresh) == 0


async def test_a_lease_reads_the_graph_from_storage_when_it_is_not_at_hand(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    job = await store.create_job(new_job(), now=clock.now())
    assert isinstance(gate.blobs, LocalStorage)
    await gate.blobs.put_bytes(prompt_key(job.id), json.dumps(GRAPH).encode(), "application/json")
    lease = await gate.lease(W1, wait_s=0)
    assert lease is not None and lease.graph == GRAPH


async def test_a_lease_whose_graph_cannot_be_read_is_handed_out_without_it(
    store: SqlJobStore, clock: FakeClock, tmp_path: Path
) -> None:
    gate = gate_over(store, clock, tmp_path)
    job = await store.create_job(new_job(), now=clock.now())
    lease = await gate.lease(W1, wait_s=0)  # the job is claimed: it must reach the agent
    assert lease is not None and lease.job_id == job.id and lease.graph is None
