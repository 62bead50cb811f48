"""The dashboard's overview: backends, queue depth, throughput. Cheap to poll."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends
from pydantic import BaseModel, Field

from comfygate.admin.backends import BackendView, State
from comfygate.api.admin.guard import admin_router
from comfygate.api.deps import gateway
from comfygate.errors import NotFound
from comfygate.gateway import Gateway
from comfygate.jobs.model import JobStatus, Lessee
from comfygate.jobs.stats import Bucket, throughput, window
from comfygate.worker.agent import Agent

router = admin_router()
GW = Annotated[Gateway, Depends(gateway)]

THROUGHPUT_MINUTES = 60


class QueueInfo(BaseModel):
    running: int = Field(description="Prompts ComfyUI runs now (all its clients)")
    pending: int = Field(description="Prompts waiting in ComfyUI's own queue")
    length: int = Field(description="running + pending")


class SystemInfo(BaseModel):
    comfyui_version: str
    vram_total: int = Field(description="Bytes, first device (RAM on a CPU-only server)")
    vram_free: int
    ram_total: int = Field(description="Bytes")
    ram_free: int


class LesseeOut(BaseModel):
    agent_id: str
    url: str = Field(description="The backend's ComfyUI, as its agent names it")
    pools: list[str]
    capacity: int | None = Field(description="Free slots when it last asked for work")
    models: list[str] | None = Field(
        description="Model files its ComfyUI lists; it is offered no job naming others "
        "(null: not reported, offered every job)"
    )


class BackendOut(BaseModel):
    id: str = Field(description="The agent that drives this backend")
    pool: str
    url: str
    state: State = Field(
        description="unreachable: no answer or no event socket; busy: a job or a prompt "
        "is on it; idle otherwise"
    )
    connected: bool = Field(description="The agent's WebSocket to the backend is up")
    draining: bool = Field(
        description="Drained by an operator: takes no new jobs until resumed (also while "
        "unreachable, when state says unreachable)"
    )
    current_jobs: list[str] = Field(description="Jobs the agent holds a lease on now")
    queue: QueueInfo | None = Field(description="From /queue; null when unreachable")
    system: SystemInfo | None = Field(description="From /system_stats; null when unreachable")
    error: str | None = Field(description="Why the backend did not answer")
    checked_at: datetime = Field(description="When the backend was last asked (cached a few s)")
    lessee: LesseeOut | None = Field(
        default=None, description="What its agent said when it last asked for work"
    )


class BackendsOut(BaseModel):
    backends: list[BackendOut]
    remote: list[LesseeOut] = Field(
        description="Agents on other hosts (comfygate worker) that asked for work lately"
    )


class PoolOut(BaseModel):
    pool: str
    queued: int
    running: int = Field(description="Running and canceling: jobs holding a lease")
    backends: int = Field(description="Backends configured for this pool")
    backends_connected: int


class BucketOut(BaseModel):
    start: datetime = Field(description="Start of the minute")
    succeeded: int
    failed: int
    canceled: int
    expired: int
    total: int


class ThroughputOut(BaseModel):
    since: datetime
    until: datetime = Field(description="End of the current minute, which is still filling")
    bucket_s: int = 60
    buckets: list[BucketOut] = Field(description="One per minute, oldest first")


class TotalsOut(BaseModel):
    queued: int
    running: int
    finished_last_hour: int
    succeeded_last_hour: int
    failed_last_hour: int
    canceled_last_hour: int
    expired_last_hour: int


class StatsOut(BaseModel):
    pools: list[PoolOut]
    throughput: ThroughputOut
    totals: TotalsOut
    db_statements: int = Field(
        description="Statements this gateway process has sent to the database since it "
        "started (BEGIN and COMMIT not counted)"
    )
    at: datetime


def _backend(view: BackendView) -> BackendOut:
    q, s = view.probe.queue, view.probe.stats
    return BackendOut(
        id=view.id,
        pool=view.pool,
        url=view.url,
        state=view.state,
        connected=view.connected,
        draining=view.draining,
        current_jobs=list(view.current_jobs),
        queue=None
        if q is None
        else QueueInfo(
            running=len(q.running), pending=len(q.pending), length=view.queue_length or 0
        ),
        system=None
        if s is None
        else SystemInfo(
            comfyui_version=s.comfyui_version,
            vram_total=s.vram_total,
            vram_free=s.vram_free,
            ram_total=s.ram_total,
            ram_free=s.ram_free,
        ),
        error=view.probe.error
        or (None if view.connected else "the event socket to the backend is down"),
        checked_at=view.probe.at,
    )


def _lessee(lessee: Lessee) -> LesseeOut:
    return LesseeOut(
        agent_id=lessee.agent_id,
        url=lessee.backend,
        pools=list(lessee.pools),
        capacity=lessee.capacity,
        models=None if lessee.models is None else sorted(lessee.models),
    )


@router.get("/backends")
async def list_backends(gw: GW) -> BackendsOut:
    """Every configured backend with its state, the jobs on it, ComfyUI's queue length
    and memory, and what its agent reports (pools, free slots, model files). Backends
    are asked live, at most once every few seconds. Remote agents are listed with what
    they report (this gateway's view: those that asked it for work lately)."""
    lessees = {x.backend: _lessee(x) for x in gw.gate.lessees()}
    backends = [_backend(v) for v in await gw.admin.monitor.view(gw.agents)]
    for b in backends:
        b.lessee = lessees.pop(b.url, None)
    return BackendsOut(backends=backends, remote=list(lessees.values()))


@router.post("/backends/{backend_id}/drain", status_code=202)
async def drain_backend(backend_id: str, gw: GW) -> BackendOut:
    """Stop giving this backend new jobs; the ones it runs finish. For maintenance."""
    agent = _agent(gw, backend_id)
    agent.drain()
    return _backend((await gw.admin.monitor.view([agent]))[0])


@router.post("/backends/{backend_id}/resume", status_code=202)
async def resume_backend(backend_id: str, gw: GW) -> BackendOut:
    """Give a drained backend jobs again."""
    agent = _agent(gw, backend_id)
    agent.resume()
    return _backend((await gw.admin.monitor.view([agent]))[0])


def _agent(gw: Gateway, backend_id: str) -> Agent:
    for agent in gw.agents:
        if agent.agent_id == backend_id:
            return agent
    raise NotFound(f"no backend {backend_id!r}")


def _bucket(b: Bucket) -> BucketOut:
    c = b.counts
    return BucketOut(
        start=b.start,
        succeeded=c[JobStatus.SUCCEEDED],
        failed=c[JobStatus.FAILED],
        canceled=c[JobStatus.CANCELED],
        expired=c[JobStatus.EXPIRED],
        total=b.total,
    )


@router.get("/stats")
async def stats(gw: GW) -> StatsOut:
    """Queue depth per pool, finished jobs per minute over the last hour by outcome,
    and totals. Pools with backends, workflows or jobs are all listed, so a pool whose
    jobs have no backend shows up."""
    now = gw.clock.now()
    since, until = window(now, THROUGHPUT_MINUTES)
    depths = {d.pool: d for d in await gw.admin.stats.pool_depths()}
    finished = await gw.admin.stats.finished_per_minute(since=since, until=until)
    buckets = [_bucket(b) for b in throughput(finished, since=since, minutes=THROUGHPUT_MINUTES)]
    names = (
        set(depths)
        | {a.pool for a in gw.agents}
        | {b.pool for b in gw.settings.backends}
        | {w.pool for w in gw.workflows.values()}
    )
    pools = []
    for name in sorted(names):
        depth = depths.get(name)
        agents = [a for a in gw.agents if a.pool == name]
        pools.append(
            PoolOut(
                pool=name,
                queued=depth.queued if depth else 0,
                running=depth.running if depth else 0,
                backends=len(agents),
                backends_connected=sum(a.connected for a in agents),
            )
        )

    def hour(field: str) -> int:
        return sum(getattr(b, field) for b in buckets)

    return StatsOut(
        pools=pools,
        throughput=ThroughputOut(since=since, until=until, buckets=buckets),
        totals=TotalsOut(
            queued=sum(p.queued for p in pools),
            running=sum(p.running for p in pools),
            finished_last_hour=hour("total"),
            succeeded_last_hour=hour("succeeded"),
            failed_last_hour=hour("failed"),
            canceled_last_hour=hour("canceled"),
            expired_last_hour=hour("expired"),
        ),
        db_statements=gw.store.db.statements,
        at=now,
    )
