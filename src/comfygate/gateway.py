"""The composition root: builds every part from Settings and runs the background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import httpx

from comfygate import extras
from comfygate.admin.console import AdminConsole, build_console
from comfygate.api.render import Renderer
from comfygate.clock import SYSTEM_CLOCK, Clock
from comfygate.comfy.client import ComfyClient
from comfygate.comfy.session import open_session
from comfygate.config import LimitSettings, Settings
from comfygate.contracts import Workflow, load_workflows, patch_graph, validate_params
from comfygate.events.broker import Broker
from comfygate.events.memory import MemoryBus, SubscriberOverflow
from comfygate.events.relay import Relay
from comfygate.jobs.doorbell import Doorbell
from comfygate.jobs.fresh_prompts import FreshPrompts
from comfygate.jobs.lease_requests import LeaseRequests
from comfygate.jobs.model import TERMINAL, WorkflowVersion
from comfygate.jobs.model_lists import ModelLists
from comfygate.jobs.ports import EventSink
from comfygate.jobs.quota import CHARGES_KEPT, Budget, QuotaPolicy
from comfygate.jobs.rescuer import Rescuer
from comfygate.jobs.service import JobService
from comfygate.jobs.sweeper import DAY_S, Retention, Sweeper
from comfygate.jobs.webhooks import Backoff
from comfygate.jobs.worker_gate import LeaseTimes, WorkerGate
from comfygate.keys import ApiKeys
from comfygate.limiting.address import Network, networks
from comfygate.limiting.failures import AuthFailures
from comfygate.limiting.rate import SubmitRateLimiter, kind_rates, open_storage
from comfygate.shares import ShareLinks
from comfygate.ssrf import AddressGuard, Resolver, guarded_client
from comfygate.storage.base import Storage
from comfygate.storage.local import LocalStorage
from comfygate.storage.remote import RemoteImageFetcher
from comfygate.storage.signing import Signer
from comfygate.storage.uploads import UploadLimits, Uploads
from comfygate.store import SqlJobStore, open_store
from comfygate.store.api_keys import SqlApiKeys
from comfygate.store.quotas import SqlBudgets
from comfygate.store.share_links import SqlShareLinks
from comfygate.store.stats import SqlStatsStore
from comfygate.store.webhooks import SqlWebhookStore
from comfygate.users import JwtUsers
from comfygate.webhooks.dispatcher import Dispatcher, DispatchPolicy
from comfygate.webhooks.signing import owner_secret
from comfygate.webhooks.urls import WebhookUrlCheck
from comfygate.worker.agent import Agent
from comfygate.worker.hygiene import HygienePolicy
from comfygate.worker.transport.inprocess import InProcessTransport

log = logging.getLogger(__name__)

MAINTENANCE_EVERY_S = 5.0
WEBHOOK_BELL = "webhooks"
#: statuses whose transition may have queued a webhook
WAKES_WEBHOOKS = frozenset({"running", *(s.value for s in TERMINAL)})
READY_TIMEOUT_S = 2.0
#: how long an in-process agent's lease call waits for work, at least
AGENT_LEASE_WAIT_S = 25.0


@dataclass
class Gateway:
    settings: Settings
    clock: Clock
    store: SqlJobStore
    storage: Storage
    bus: MemoryBus
    workflows: dict[str, Workflow]
    service: JobService
    gate: WorkerGate
    rescuer: Rescuer
    sweeper: Sweeper
    uploads: Uploads
    admin: AdminConsole
    api_keys: ApiKeys
    shares: ShareLinks
    #: signed-in users of an identity provider, when ``jwt`` is configured
    users: JwtUsers | None
    lease_requests: LeaseRequests
    doorbell: Doorbell
    webhooks: SqlWebhookStore
    dispatcher: Dispatcher
    rate_limiter: SubmitRateLimiter
    auth_failures: AuthFailures
    budgets: SqlBudgets
    trusted_proxies: tuple[Network, ...]
    outbound: list[httpx.AsyncClient] = field(default_factory=list)
    #: trusted CAs of outbound requests, https ComfyUI backends included
    tls: ssl.SSLContext | bool | None = None
    #: joins this gateway's events and doorbell to the other gateways'; None alone
    relay: Relay | None = None
    #: remote agents' model lists, by digest
    model_lists: ModelLists = field(default_factory=ModelLists)
    agents: list[Agent] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: one session for every local agent's ComfyClient
    _http: aiohttp.ClientSession | None = None

    def pool_available(self, pool: str) -> bool:
        if any(pool in a.pools and a.connected for a in self.agents):
            return True
        # Remote agents count while they keep asking for work over HTTP.
        local = {a.backend for a in self.agents}
        return bool(self.gate.backends_seen(pool) - local)

    async def readiness(self) -> dict[str, str]:
        """Each dependency and "ok" or why not: the database, storage, and a live
        backend for every pool a workflow uses."""
        checks: dict[str, str] = {}
        for name, check in (("database", self.store.check), ("storage", self.storage.check)):
            try:
                await asyncio.wait_for(check(), READY_TIMEOUT_S)
                checks[name] = "ok"
            except Exception as exc:  # any failure means not ready; say which
                checks[name] = f"failing: {type(exc).__name__}"
        for pool in sorted({wf.pool for wf in self.workflows.values()}):
            up = self.pool_available(pool)
            checks[f"pool:{pool}"] = "ok" if up else "no backend connected"
        return checks

    async def start(self) -> None:
        self._http = open_session(tls=self.tls)
        if self.relay is not None:
            await self.relay.start()
        for i, backend in enumerate(self.settings.backends):
            tls = self.tls if isinstance(self.tls, ssl.SSLContext) else None
            comfy = ComfyClient(backend.url, http=self._http, tls=tls)
            agent = Agent(
                agent_id=f"local-{i}",
                pool=backend.pool,
                comfy=comfy,
                transport=InProcessTransport(self.gate),
                storage=self.storage,
                clock=self.clock,
                hygiene=HygienePolicy(
                    every_jobs=self.settings.hygiene.free_every_jobs,
                    min_free_fraction=self.settings.hygiene.free_below_fraction,
                ),
                interrupt_grace_s=self.settings.interrupt_grace_s,
                # A lease call looks at the queue when it starts: a longer poll needs a
                # longer call.
                lease_wait_s=max(AGENT_LEASE_WAIT_S, self.settings.poll_s),
                **self._warmup_of(backend.pool),
            )
            self.agents.append(agent)
            self._spawn(agent.run(), f"agent-{i}")
        self._spawn(self._maintenance(), "maintenance")
        self._spawn(self._rescue(), "rescuer")
        self._spawn(self._sweep(), "sweeper")
        self._spawn(self._deliver_webhooks(), "webhooks")
        self._spawn(self._wake_webhooks(), "webhooks-bell")

    def webhook_secret(self, owner_id: str) -> str:
        return owner_secret(self.settings.signing_key(), owner_id)

    async def _deliver_webhooks(self) -> None:
        while True:
            bell = self.doorbell.arm(WEBHOOK_BELL)
            try:
                sent = await self.dispatcher.run_once()
            except Exception:
                log.exception("webhook delivery pass failed")
                sent = []
            if len(sent) < self.dispatcher.policy.batch:
                await self.doorbell.wait_armed(bell, self.settings.webhooks.poll_s)

    async def _wake_webhooks(self) -> None:
        """A transition in this gateway of a job with a webhook may have written an
        outbox row: look at once. Jobs without one cost the dispatcher nothing, and the
        ring stays in this process (the gateway that made the transition sends it)."""
        while True:
            subscription = self.bus.subscribe_all()
            try:
                async for event in subscription:
                    if (
                        event.webhook
                        and event.type == "status"
                        and event.data.get("status") in WAKES_WEBHOOKS
                    ):
                        self.doorbell.ring_here(WEBHOOK_BELL)
            except SubscriberOverflow:
                continue
            finally:
                await subscription.aclose()

    def _warmup_of(self, pool: str) -> dict[str, Any]:
        """The pool's warm-up prompt: its workflow at its first example (or defaults)."""
        for wf in self.workflows.values():
            if wf.warmup and wf.pool == pool:
                example = wf.examples[0]["params"] if wf.examples else {}
                params = validate_params(wf, dict(example))
                return {"warmup": patch_graph(wf, params), "warmup_timeout_s": wf.timeout_s}
        return {}

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)

    async def _sweep(self) -> None:
        try:
            # A crash between a job's commit and its manifest leaves the manifest out.
            day_ago = self.clock.now() - timedelta(days=1)
            if repaired := await self.sweeper.repair_manifests(since=day_ago):
                log.warning("wrote %d manifest(s) a crash had left unwritten", repaired)
        except Exception:
            log.exception("manifest repair failed")
        while True:
            try:
                await self.sweeper.run_once()
                await self.budgets.purge_charges(older_than=self.clock.now() - CHARGES_KEPT)
            except Exception:
                log.exception("sweep failed")
            await self.clock.sleep(self.settings.retention.sweep_every_s)

    async def _rescue(self) -> None:
        every = self.settings.lease.rescue_every_s
        # Start-up grace of one lease: agents that outlived a gateway restart renew
        # their leases before anything of theirs is taken back.
        await self.clock.sleep(self.settings.lease.ttl_s)
        jitter = random.Random()
        while True:
            try:
                rescued = await self.rescuer.run_once()
                if rescued:
                    log.warning("rescued %d job(s) whose lease ran out", len(rescued))
            except Exception:
                log.exception("rescue pass failed")
            # Jittered, so the rescuers of several gateways drift apart.
            await self.clock.sleep(every * jitter.uniform(0.8, 1.2))

    async def _maintenance(self) -> None:
        while True:
            try:
                await self.service.expire_due()
                await self.store.purge_idempotency_keys(
                    older_than=self.clock.now() - timedelta(seconds=self.settings.idempotency_ttl_s)
                )
            except Exception:
                log.exception("maintenance pass failed")
            await self.clock.sleep(MAINTENANCE_EVERY_S)

    async def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.lease_requests.close()
        for client in self.outbound:
            await client.aclose()
        if self.relay is not None:
            await self.relay.close()
        if self._http is not None:
            await self._http.close()
        await self.admin.aclose()
        await self.rate_limiter.aclose()
        await self.auth_failures.aclose()
        await self.store.close()


def _report_crash(task: asyncio.Task[None]) -> None:
    """A background loop must never end quietly: a dead agent would leave jobs queued."""
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s died", task.get_name(), exc_info=task.exception())


def build_broker(settings: Settings, dialect: str) -> Broker | None:
    """Redis when ``broker_url`` names one, else PostgreSQL's LISTEN/NOTIFY on a
    PostgreSQL database; None (this process only) on SQLite. Each adapter is imported
    only when chosen: its client library comes with an extra (see ``extras``)."""
    if settings.broker_url:
        from comfygate.events.redis_broker import RedisBroker

        return RedisBroker(settings.broker_url)
    if dialect == "postgresql":
        from comfygate.events.pg_broker import PgBroker

        return PgBroker(settings.db_url)
    return None


def build_storage(settings: Settings, signer: Signer, clock: Clock) -> Storage:
    """S3 when ``storage_url`` names a bucket, else files in the data directory."""
    if settings.storage_url:
        from comfygate.storage.s3 import S3Storage  # the s3 extra: imported only when chosen

        return S3Storage.from_settings(settings.storage_url, settings.s3, clock)
    return LocalStorage(settings.storage_dir, signer)


async def build_gateway(
    settings: Settings,
    *,
    clock: Clock = SYSTEM_CLOCK,
    resolver: Resolver | None = None,
    tls: ssl.SSLContext | bool = True,
) -> Gateway:
    """Load every workflow (failing loudly), migrate the database, wire the parts.
    ``resolver`` and ``tls`` (trusted CAs) of outbound requests are for tests."""
    extras.check(settings)
    workflows = load_workflows(settings.workflows_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.db_url, clock=clock, migrate_first=settings.migrate_on_start)
    for wf in workflows.values():
        await store.save_workflow_version(
            WorkflowVersion(
                version=wf.version,
                name=wf.name,
                graph=wf.graph,
                contract=wf.contract,
                created_at=clock.now(),
            )
        )
    signer = Signer(settings.signing_key(), clock)
    storage = build_storage(settings, signer, clock)
    bus = MemoryBus()
    broker = build_broker(settings, store.db.dialect)
    relay = Relay(broker, bus=bus, log=store) if broker is not None else None
    # Published here and, through the relay, on every other gateway.
    events: EventSink = relay or bus
    doorbell = relay.doorbell if relay is not None else Doorbell()
    uploads = Uploads(
        storage,
        UploadLimits(
            max_bytes=settings.uploads.max_bytes,
            max_pixels=settings.uploads.max_pixels,
            max_frames=settings.uploads.max_frames,
            formats=tuple(settings.uploads.formats),
            url_ttl_s=settings.uploads.url_ttl_s,
        ),
        clock,
    )
    rng = random.SystemRandom()
    guard = AddressGuard.from_settings(settings.outbound.allow, resolver)
    hooks = settings.webhooks
    if tls is True:  # one context for all: loading the trusted CAs takes 50 ms
        tls = httpx.create_ssl_context()
    webhook_client = guarded_client(guard, timeout_s=hooks.timeout_s, verify=tls)
    fetch_client = guarded_client(guard, timeout_s=settings.outbound.fetch_timeout_s, verify=tls)
    webhooks = SqlWebhookStore(store.db)
    signing_key = settings.signing_key()
    fresh = FreshPrompts()
    gate = WorkerGate(
        store=store,
        blobs=storage,
        events=events,
        doorbell=doorbell,
        clock=clock,
        lease_times=LeaseTimes(
            ttl_s=settings.lease.ttl_s,
            heartbeat_s=settings.lease.heartbeat_s,
            poll_s=settings.poll_s,
        ),
        log_prompts=settings.log_prompts,
        fresh=fresh,
    )
    service = JobService(
        store=store,
        blobs=storage,
        events=events,
        uploads=uploads,
        doorbell=doorbell,
        workflows=workflows,
        clock=clock,
        rng=rng,
        max_queue_depth=settings.max_queue_depth,
        remote_images=RemoteImageFetcher(
            fetch_client, uploads, max_redirects=settings.outbound.max_redirects
        ),
        webhook_urls=WebhookUrlCheck(guard),
        quotas=quota_policy(settings.limits),
        log_prompts=settings.log_prompts,
        fresh=fresh,
        waiters=gate,
    )
    rescuer = Rescuer(
        store=store, blobs=storage, events=events, doorbell=doorbell, clock=clock, rng=rng
    )
    return Gateway(
        settings=settings,
        clock=clock,
        store=store,
        storage=storage,
        bus=bus,
        workflows=workflows,
        service=service,
        gate=gate,
        rescuer=rescuer,
        sweeper=Sweeper(
            store=store,
            blobs=storage,
            clock=clock,
            retention=Retention(
                outputs_s=settings.retention.outputs_days * DAY_S,
                jobs_s=settings.retention.jobs_days * DAY_S,
                uploads_s=settings.retention.uploads_hours * 3600,
            ),
        ),
        uploads=uploads,
        admin=build_console(settings, SqlStatsStore(store.db), clock),
        api_keys=ApiKeys(SqlApiKeys(store.db), clock),
        shares=ShareLinks(SqlShareLinks(store.db), clock),
        users=JwtUsers.from_settings(settings.jwt, clock),
        lease_requests=LeaseRequests(clock, store),
        doorbell=doorbell,
        webhooks=webhooks,
        dispatcher=Dispatcher(
            outbox=webhooks,
            jobs=store,
            render=Renderer(storage, settings.url_ttl_s).job_at,
            client=webhook_client,
            secret_of=lambda owner_id: owner_secret(signing_key, owner_id),
            clock=clock,
            policy=DispatchPolicy(
                backoff=Backoff(
                    base_s=hooks.backoff_base_s,
                    max_s=hooks.backoff_max_s,
                    retry_for_s=hooks.retry_for_s,
                ),
                batch=hooks.batch,
                lease_s=hooks.timeout_s * 2 + 5,
            ),
            rng=rng,
        ),
        outbound=[webhook_client, fetch_client],
        tls=tls,
        relay=relay,
        rate_limiter=SubmitRateLimiter(
            kind_rates(
                settings.limits,
                public_anonymous=settings.allow_anonymous and settings.public_site,
            ),
            open_storage(settings.broker_url),
        ),
        auth_failures=AuthFailures(
            settings.limits.auth_failures_per_minute,
            open_storage(settings.broker_url, key_prefix="comfygate-auth"),
        ),
        budgets=SqlBudgets(store.db),
        trusted_proxies=networks(settings.trusted_proxies),
    )


def quota_policy(limits: LimitSettings) -> QuotaPolicy:
    budget = limits.visitor_budget
    return QuotaPolicy(
        max_active={kind: k.max_active for kind, k in limits.kinds.items()},
        visitor_budget=None if budget is None else Budget(budget.amount, budget.period),
    )
