"""What the store tests build on: new jobs, claims and a worker gate over a store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from comfygate.clock import Clock, FakeClock
from comfygate.events.memory import MemoryBus
from comfygate.ids import new_id, new_prompt_id
from comfygate.jobs.doorbell import Doorbell
from comfygate.jobs.model import Lease, Lessee, NewJob, OutputFile
from comfygate.jobs.worker_gate import LeaseTimes, WorkerGate
from comfygate.storage.local import LocalStorage
from comfygate.storage.signing import Signer
from comfygate.store import SqlJobStore
from tests.wait import until


def new_job(**kw: Any) -> NewJob:
    base: dict[str, Any] = dict(
        id=new_id(),
        owner_id="alice",
        workflow="wf",
        workflow_version="v1",
        pool="default",
        params={"a": 1},
        metadata={},
        inputs=(),
        priority=5,
        max_attempts=3,
        timeout_s=60.0,
        expires_at=None,
    )
    base.update(kw)
    return NewJob(**base)


async def claim(
    store: SqlJobStore, clock: FakeClock, pool: str = "default", agent: str = "a1"
) -> Any:
    return await store.claim(
        pool=pool,
        agent_id=agent,
        backend=f"http://{agent}",
        prompt_id=new_prompt_id(),
        lease_token=new_id(),
        lease_ttl_s=30,
        now=clock.now(),
    )


OUT = OutputFile(
    key="outputs/x/main/1/9-0.png",
    kind="image",
    content_type="image/png",
    bytes=3,
    sha256="ab",
    node_id="9",
)


def gate_over(store: SqlJobStore, clock: Clock, root: Path) -> WorkerGate:
    return WorkerGate(
        store=store,
        blobs=LocalStorage(root, Signer(b"k" * 32, clock)),
        events=MemoryBus(),
        doorbell=Doorbell(),
        clock=clock,
        lease_times=LeaseTimes(),
    )


W1 = Lessee(agent_id="w1", backend="http://gpu-1", pools=("default",))


def lessee(n: int, models: frozenset[str] | None = None) -> Lessee:
    return Lessee(agent_id=f"w{n}", backend=f"http://gpu-{n}", pools=("default",), models=models)


def claim_path_calls(store: SqlJobStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the store's claim-path calls from now on, in order."""
    calls: list[str] = []
    for name in ("queue_head", "has_claimable", "claim"):
        real = getattr(store, name)

        async def counted(*args: Any, _name: str = name, _real: Any = real, **kw: Any) -> Any:
            calls.append(_name)
            return await _real(*args, **kw)

        monkeypatch.setattr(store, name, counted)
    return calls


async def waiting_lease(
    gate: WorkerGate, who: Lessee, *, request_id: str | None = None, wait_s: float = 5
) -> asyncio.Task[Lease | None]:
    """A lease call of ``who``, once it waits for a ring (its first look reads in a
    thread)."""
    task = asyncio.create_task(gate.lease(who, wait_s=wait_s, request_id=request_id))
    await until(lambda: any(w is who for w in gate.waiting("default")), "the lease call to wait")
    return task
