"""JobService.retry: a new job from the old one's stored graph, the old one untouched."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from comfygate.clock import FakeClock
from comfygate.errors import Conflict, InvalidTransition, NotFound, TooManyActiveJobs
from comfygate.jobs.keys import prompt_key, request_key
from comfygate.jobs.model import JobStatus
from comfygate.jobs.quota import QuotaPolicy
from comfygate.principal import ADMIN, LOCAL, Principal
from tests.unit.jobs.parts import Parts


async def test_retry_copies_the_accepted_job_and_leaves_the_old_one(
    parts: Parts, clock: FakeClock
) -> None:
    old_id = await parts.finished_job()
    old = await parts.store.get_job(old_id)
    assert old is not None
    clock.advance(3600)
    rung = parts.doorbell.arm("gpu")

    new = await parts.service().retry(ADMIN, old_id)

    assert new.id != old_id and new.retry_of == old_id and new.status is JobStatus.QUEUED
    same = ("owner_id", "workflow", "workflow_version", "pool", "params", "metadata", "inputs")
    assert all(getattr(new, f) == getattr(old, f) for f in same)
    assert (new.priority, new.max_attempts, new.timeout_s) == (7, 2, 99.0)
    assert new.expires_at == clock.now() + timedelta(seconds=600)
    blobs = parts.blobs
    assert await blobs.get_bytes(prompt_key(new.id)) == await blobs.get_bytes(prompt_key(old_id))
    request = json.loads(await blobs.get_bytes(request_key(new.id)))
    assert request["retry_of"] == old_id and request["params"] == {"seed": 7}
    assert request["accepted_at"] == clock.now().isoformat()
    assert await parts.store.get_job(old_id) == old  # untouched
    assert rung.is_set()
    [event] = parts.events.published
    assert (event.job_id, event.owner_id, event.data["status"]) == (new.id, "alice", "queued")


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELING])
async def test_only_a_finished_job_can_be_retried(parts: Parts, status: JobStatus) -> None:
    old_id = await parts.finished_job(status)
    with pytest.raises(InvalidTransition) as raised:
        await parts.service().retry(ADMIN, old_id)
    assert raised.value.status_code == 409
    assert list(parts.store.jobs) == [old_id]


async def test_the_owner_may_retry_and_a_stranger_finds_nothing(parts: Parts) -> None:
    old_id = await parts.finished_job(JobStatus.SUCCEEDED)
    alice = Principal(id="alice", kind="visitor", scopes=frozenset({"jobs:write"}))
    service = parts.service()
    assert (await service.retry(alice, old_id)).retry_of == old_id
    with pytest.raises(NotFound):
        await service.retry(LOCAL, old_id)


async def test_a_job_whose_graph_is_gone_is_a_conflict(parts: Parts) -> None:
    old_id = await parts.finished_job()
    await parts.blobs.delete(prompt_key(old_id))
    with pytest.raises(Conflict):
        await parts.service().retry(ADMIN, old_id)


async def test_a_job_without_queue_ttl_gets_none(parts: Parts) -> None:
    old_id = await parts.finished_job(queue_ttl_s=None)
    assert (await parts.service().retry(ADMIN, old_id)).expires_at is None


async def test_an_owners_retry_meets_the_owners_limits_and_an_admins_does_not(
    parts: Parts,
) -> None:
    service = parts.service(quotas=QuotaPolicy(max_active={"key": 2}))
    alice = Principal(id="alice", kind="key", scopes=frozenset({"jobs:read", "jobs:write"}))
    old_id = await parts.finished_job()
    await service.retry(alice, old_id)
    await service.retry(alice, old_id)
    with pytest.raises(TooManyActiveJobs):  # two of alice's are queued now
        await service.retry(alice, old_id)
    assert (await service.retry(ADMIN, old_id)).owner_id == "alice"
    # The workflow is gone from the folder: the owner's retry costs nothing.
    owner, admin = parts.store.admissions[1], parts.store.admissions[-1]
    assert owner is not None and owner.cost == 0.0
    assert admin is None
