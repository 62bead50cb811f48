"""JobService.retry: a new job from the old one's stored graph, the old one untouched."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from comfygate.clock import FakeClock
from comfygate.errors import Conflict, InvalidTransition, NotFound
from comfygate.ids import new_id
from comfygate.jobs.keys import prompt_key, request_key
from comfygate.jobs.model import InputFile, JobStatus, NewJob
from comfygate.jobs.quota import QuotaPolicy
from comfygate.jobs.service import JobService
from comfygate.principal import ADMIN, LOCAL, Principal
from tests.unit.jobs.fakes import FakeBlobs, FakeStore, NoUploads


@pytest.fixture
def service(parts: dict[str, Any]) -> JobService:
    return JobService(uploads=NoUploads(), workflows={}, **parts)


async def finished_job(parts: dict[str, Any], status: JobStatus = JobStatus.FAILED) -> str:
    store: FakeStore = parts["store"]
    blobs: FakeBlobs = parts["blobs"]
    clock: FakeClock = parts["clock"]
    job_id = new_id()
    blobs.objects[prompt_key(job_id)] = b'{"1": {"class_type": "X", "inputs": {}}}'
    blobs.objects[request_key(job_id)] = json.dumps(
        {"workflow": "wf", "params": {"seed": 7}, "owner_id": "alice", "accepted_at": "then"}
    ).encode()
    await store.create_job(
        NewJob(
            id=job_id,
            owner_id="alice",
            workflow="wf",
            workflow_version="v-old",
            pool="gpu",
            params={"seed": 7},
            metadata={"tag": "x"},
            inputs=(
                InputFile(key="inputs/u1/a.png", filename="a.png", bindings=(("3", "image"),)),
            ),
            priority=7,
            max_attempts=2,
            timeout_s=99.0,
            expires_at=clock.now() + timedelta(seconds=600),
        ),
        now=clock.now(),
    )
    store.set_status(job_id, status)
    return job_id


async def test_retry_copies_the_accepted_job_and_leaves_the_old_one(
    service: JobService, parts: dict[str, Any], clock: FakeClock
) -> None:
    old_id = await finished_job(parts)
    old = parts["store"].jobs[old_id]
    clock.advance(3600)
    rung = parts["doorbell"].arm("gpu")

    new = await service.retry(ADMIN, old_id)

    assert new.id != old_id and new.retry_of == old_id and new.status is JobStatus.QUEUED
    same = ("owner_id", "workflow", "workflow_version", "pool", "params", "metadata", "inputs")
    assert all(getattr(new, f) == getattr(old, f) for f in same)
    assert (new.priority, new.max_attempts, new.timeout_s) == (7, 2, 99.0)
    assert new.expires_at == clock.now() + timedelta(seconds=600)
    blobs = parts["blobs"].objects
    assert blobs[prompt_key(new.id)] == blobs[prompt_key(old_id)]
    request = json.loads(blobs[request_key(new.id)])
    assert request["retry_of"] == old_id and request["params"] == {"seed": 7}
    assert request["accepted_at"] == clock.now().isoformat()
    assert parts["store"].jobs[old_id] == old  # untouched
    assert rung.is_set()
    [event] = parts["events"].published
    assert (event.job_id, event.owner_id, event.data["status"]) == (new.id, "alice", "queued")


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELING])
async def test_only_a_finished_job_can_be_retried(
    service: JobService, parts: dict[str, Any], status: JobStatus
) -> None:
    old_id = await finished_job(parts, status)
    with pytest.raises(InvalidTransition) as raised:
        await service.retry(ADMIN, old_id)
    assert raised.value.status_code == 409
    assert list(parts["store"].jobs) == [old_id]


async def test_the_owner_may_retry_and_a_stranger_finds_nothing(
    service: JobService, parts: dict[str, Any]
) -> None:
    old_id = await finished_job(parts, JobStatus.SUCCEEDED)
    alice = Principal(id="alice", kind="visitor", scopes=frozenset({"jobs:write"}))
    assert (await service.retry(alice, old_id)).retry_of == old_id
    with pytest.raises(NotFound):
        await service.retry(LOCAL, old_id)


async def test_a_job_whose_graph_is_gone_is_a_conflict(
    service: JobService, parts: dict[str, Any]
) -> None:
    old_id = await finished_job(parts)
    del parts["blobs"].objects[prompt_key(old_id)]
    with pytest.raises(Conflict):
        await service.retry(ADMIN, old_id)


async def test_a_job_without_queue_ttl_gets_none(
    service: JobService, parts: dict[str, Any]
) -> None:
    old_id = await finished_job(parts)
    store: FakeStore = parts["store"]
    store.jobs[old_id] = replace(store.jobs[old_id], expires_at=None)
    assert (await service.retry(ADMIN, old_id)).expires_at is None


async def test_an_owners_retry_meets_the_owners_limits_and_an_admins_does_not(
    parts: dict[str, Any],
) -> None:
    service = JobService(
        uploads=NoUploads(),
        workflows={},
        quotas=QuotaPolicy(max_active={"key": 2}),
        **parts,
    )
    store: FakeStore = parts["store"]
    alice = Principal(id="alice", kind="key", scopes=frozenset({"jobs:read", "jobs:write"}))
    await service.retry(alice, await finished_job(parts))
    await service.retry(ADMIN, await finished_job(parts))
    owner, admin = store.admissions[1], store.admissions[3]
    # The workflow is gone from the folder: the retry costs nothing, but the limit holds.
    assert owner is not None and (owner.max_active, owner.cost) == (2, 0.0)
    assert admin is None
