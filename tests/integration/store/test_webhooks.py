"""The webhook outbox on SQLite and PostgreSQL, drained by the dispatcher on a FakeClock:
rows written with the transition, retries with backoff for a day, 410, redelivery."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import httpx

from comfygate.clock import FakeClock
from comfygate.jobs.model import Job, JobFailure, JobStatus
from comfygate.jobs.webhooks import Backoff, DeliveryStatus
from comfygate.store import SqlJobStore
from comfygate.store.webhooks import SqlWebhookStore
from comfygate.webhooks.dispatcher import Dispatcher, DispatchPolicy
from tests.integration.store.helpers import claim, new_job

HOOK: dict[str, Any] = {
    "url": "https://hooks.example/in",
    "events": ["job.started", "job.canceled"],
}
BACKOFF = Backoff(base_s=5.0, max_s=3600.0, retry_for_s=24 * 3600.0)


class Receiver:
    """Answers each POST with the next status code of its script (the last one repeats)."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        return httpx.Response(code, headers={"location": "https://elsewhere.example/"})


def dispatcher(store: SqlJobStore, clock: FakeClock, receiver: Receiver) -> Dispatcher:
    def render(job: Job, data: dict[str, Any]) -> dict[str, Any]:
        return {"id": job.id, "status": data["status"]}

    return Dispatcher(
        outbox=SqlWebhookStore(store.db),
        jobs=store,
        render=render,
        client=httpx.AsyncClient(transport=httpx.MockTransport(receiver)),
        secret_of=lambda owner: "whsec_" + "A" * 43 + "=",
        clock=clock,
        policy=DispatchPolicy(backoff=BACKOFF, batch=10, lease_s=60.0),
        rng=random.Random(7),
    )


async def canceled_job(store: SqlJobStore, clock: FakeClock, **kw: Any) -> Job:
    job = await store.create_job(new_job(webhook=HOOK, **kw), now=clock.now())
    return await store.request_cancel(job.id, now=clock.now())


async def test_a_terminal_transition_writes_its_outbox_row_in_the_same_commit(
    store: SqlJobStore, clock: FakeClock
) -> None:
    plain = await store.create_job(new_job(), now=clock.now())
    await store.request_cancel(plain.id, now=clock.now())
    job = await canceled_job(store, clock)
    hooks = SqlWebhookStore(store.db)
    assert await hooks.for_job(plain.id) == []
    [row] = await hooks.for_job(job.id)
    assert (row.type, row.url, row.status) == ("job.canceled", HOOK["url"], DeliveryStatus.PENDING)
    assert row.data["status"] == "canceled" and row.event_at == clock.now()


async def test_started_is_sent_once_on_request_and_only_terminal_events_otherwise(
    store: SqlJobStore, clock: FakeClock
) -> None:
    job = await store.create_job(new_job(webhook=HOOK), now=clock.now())
    leased, _ = await claim(store, clock)
    await store.fail(
        leased.id,
        leased.lease_token,
        JobFailure(code="backend_unreachable", message="down"),
        retry_at=clock.now(),
        now=clock.now(),
    )
    await claim(store, clock)  # a second attempt is not a second start
    types = [d.type for d in await SqlWebhookStore(store.db).for_job(job.id)]
    assert types == ["job.started"]
    quiet = await store.create_job(
        new_job(webhook={"url": HOOK["url"], "events": ["job.succeeded"]}), now=clock.now()
    )
    await store.request_cancel(quiet.id, now=clock.now())
    assert await SqlWebhookStore(store.db).for_job(quiet.id) == []


async def test_failed_deliveries_back_off_exponentially_with_jitter_then_give_up_after_a_day(
    store: SqlJobStore, clock: FakeClock
) -> None:
    job = await canceled_job(store, clock)
    receiver = Receiver(500)
    d = dispatcher(store, clock, receiver)
    start = clock.now()
    delays = []
    while True:
        # Fake time runs as fast as the loop: a delivery that never gives up fails here.
        assert clock.now() - start <= timedelta(days=1, hours=1), "still retrying past a day"
        statuses = await d.run_once()
        if not statuses:
            clock.advance(1)
            continue
        [status] = statuses
        [row] = await SqlWebhookStore(store.db).for_job(job.id)
        if status is not DeliveryStatus.PENDING:
            break
        assert row.next_attempt_at is not None
        delays.append((row.next_attempt_at - clock.now()).total_seconds())
        assert await d.run_once() == []  # nothing is due before its time
        clock.advance(delays[-1])
    assert status is DeliveryStatus.FAILED
    for n, delay in enumerate(delays, start=1):
        ceiling = min(3600.0, 5.0 * 2 ** (n - 1))
        assert ceiling * 0.5 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered
    assert clock.now() - start >= timedelta(hours=23)
    assert [a.attempt for a in row.log] == list(range(1, len(delays) + 2))
    assert all(a.status_code == 500 and a.error for a in row.log)
    assert len(receiver.seen) == len(row.log)
    assert {r.headers["webhook-id"] for r in receiver.seen} == {row.id}


async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    store: SqlJobStore, clock: FakeClock
) -> None:
    job = await canceled_job(store, clock)
    receiver = Receiver(302)
    assert await dispatcher(store, clock, receiver).run_once() == [DeliveryStatus.PENDING]
    [row] = await SqlWebhookStore(store.db).for_job(job.id)
    assert row.log[0].status_code == 302 and "not followed" in (row.log[0].error or "")
    assert [str(r.url) for r in receiver.seen] == [HOOK["url"]]


async def test_410_disables_the_endpoint_for_its_owner_and_redelivery_enables_it(
    store: SqlJobStore, clock: FakeClock
) -> None:
    first = await canceled_job(store, clock)
    receiver = Receiver(410, 200)
    d = dispatcher(store, clock, receiver)
    assert await d.run_once() == [DeliveryStatus.DISABLED]
    hooks = SqlWebhookStore(store.db)
    assert "410" in (await hooks.disabled("alice"))[HOOK["url"]]
    later = await canceled_job(store, clock)
    other_owner = await canceled_job(store, clock, owner_id="bob")
    assert await d.run_once() == [DeliveryStatus.DELIVERED]  # bob's only
    [skipped] = await hooks.for_job(later.id)
    assert skipped.status is DeliveryStatus.DISABLED and skipped.log == ()
    assert "410" in (skipped.last_error or "")
    assert (await hooks.for_job(other_owner.id))[0].status is DeliveryStatus.DELIVERED
    assert len(receiver.seen) == 2

    assert len(await hooks.redeliver(later.id, now=clock.now())) == 1
    assert await d.run_once() == [DeliveryStatus.DELIVERED]
    assert await hooks.disabled("alice") == {}
    [again] = await hooks.for_job(later.id)
    assert again.status is DeliveryStatus.DELIVERED and again.id == skipped.id
    assert (await hooks.for_job(first.id))[0].status is DeliveryStatus.DISABLED


async def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(
    store: SqlJobStore, clock: FakeClock
) -> None:
    await canceled_job(store, clock)
    hooks = SqlWebhookStore(store.db)
    args: dict[str, Any] = dict(limit=10, lease_s=60.0, retry_for_s=86400.0)
    [claimed] = await hooks.claim_due(now=clock.now(), **args)
    assert await hooks.claim_due(now=clock.now(), **args) == []
    clock.advance(61)
    [again] = await hooks.claim_due(now=clock.now(), **args)
    assert again.id == claimed.id and again.attempts == 2
    assert again.give_up_at == claimed.give_up_at


async def test_purging_a_job_removes_its_deliveries(store: SqlJobStore, clock: FakeClock) -> None:
    job = await canceled_job(store, clock)
    await dispatcher(store, clock, Receiver(200)).run_once()
    clock.advance(10)
    await store.purge_jobs(finished_before=clock.now())
    assert await SqlWebhookStore(store.db).for_job(job.id) == []
    assert job.status is JobStatus.CANCELED


async def test_concurrent_claims_take_disjoint_deliveries(
    store: SqlJobStore, clock: FakeClock
) -> None:
    """Several gateways drain one outbox (FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    for _ in range(12):
        await canceled_job(store, clock)
    hooks = SqlWebhookStore(store.db)
    claims = await asyncio.gather(
        *(
            hooks.claim_due(now=clock.now(), limit=5, lease_s=60.0, retry_for_s=86400.0)
            for _ in range(4)
        )
    )
    ids = [d.id for claim in claims for d in claim]
    assert len(ids) == len(set(ids)) == 12
