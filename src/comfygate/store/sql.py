"""The job store on SQLAlchemy Core: every transition one guarded UPDATE … RETURNING,
with its timeline row in the same transaction.

Each public method builds one plain function over a ``Connection`` and hands it to the
``Database``, which runs it as one transaction (see ``engine.py``)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Connection,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from comfygate.clock import Clock
from comfygate.errors import (
    IdempotencyKeyInFlight,
    InvalidTransition,
    LeaseLost,
    NotFound,
    QueueFull,
)
from comfygate.jobs.model import (
    LEASED,
    TERMINAL,
    Attempt,
    Claim,
    IdempotencyRecord,
    Job,
    JobEvent,
    JobFailure,
    JobStatus,
    KeyReservation,
    NewJob,
    OutputFile,
    Progress,
    QueueHead,
    WorkflowVersion,
)
from comfygate.jobs.quota import Admission
from comfygate.jobs.snapshot import status_data
from comfygate.jobs.webhooks import event_for
from comfygate.store import migrate, quotas
from comfygate.store.engine import Database, open_database
from comfygate.store.rows import (
    attempt_from_row,
    event_from_row,
    idempotency_from_row,
    job_from_row,
    version_from_row,
)
from comfygate.store.tables import (
    idempotency_keys,
    job_attempts,
    job_events,
    jobs,
    lease_requests,
    pool_clocks,
    workflow_versions,
)
from comfygate.store.webhooks import enqueue_delivery, forget_jobs

Q, R, C = JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.CANCELING.value
#: the leased states as literals: an expanding IN parameter is compiled anew each time
LEASED_STATES = or_(*(jobs.c.status == literal(s.value) for s in LEASED))


# The hot path's statements are built once, their values bound at execution: building
# a statement per call (a bind parameter object per value, then its cache key) cost
# SQLite more than running it (insert 330 µs against 145, select 320 against 100).
INSERT_EVENT = insert(job_events)
INSERT_ATTEMPT = insert(job_attempts)
INSERT_JOB = insert(jobs).returning(*jobs.c)
JOB_BY_ID = select(jobs).where(jobs.c.id == bindparam("job_id"))
EVENTS_AFTER = (
    select(job_events)
    .where(job_events.c.job_id == bindparam("job_id"), job_events.c.seq > bindparam("seq"))
    .order_by(job_events.c.seq)
)
ATTEMPTS_OF = (
    select(job_attempts)
    .where(job_attempts.c.job_id == bindparam("job_id"))
    .order_by(job_attempts.c.attempt)
)
OWNER_LAST_KEY = select(func.max(jobs.c.fair_key)).where(
    jobs.c.pool == bindparam("pool"),
    jobs.c.owner_id == bindparam("owner_id"),
    jobs.c.status == Q,
)
POOL_KEY = select(pool_clocks.c.fair_key).where(pool_clocks.c.pool == bindparam("pool"))
QUEUED_IN = (
    select(func.count())
    .select_from(jobs)
    .where(jobs.c.pool == bindparam("pool"), jobs.c.status == Q)
)
#: what a new job's fair key rests on, in one statement
FAIR_KEY = select(OWNER_LAST_KEY.scalar_subquery(), POOL_KEY.scalar_subquery())
#: the same and its pool's queue depth, for a gateway that bounds the queue
FAIR_KEY_AND_DEPTH = select(
    OWNER_LAST_KEY.scalar_subquery(), POOL_KEY.scalar_subquery(), QUEUED_IN.scalar_subquery()
)


def _append(
    conn: Connection, job: Job, kind: str, data: dict[str, Any], seq: int, at: datetime
) -> None:
    conn.execute(INSERT_EVENT, {"job_id": job.id, "seq": seq, "type": kind, "data": data, "at": at})


def _transition(
    conn: Connection,
    job_id: str,
    where: Any,
    values: dict[str, Any],
    *,
    now: datetime,
    extra_events: Sequence[tuple[str, dict[str, Any]]] = (),
) -> Job | None:
    """One guarded UPDATE; bumps last_seq by the events it appends (status last)."""
    count = len(extra_events) + 1
    row = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, where)
        .values(**values, last_seq=jobs.c.last_seq + count, updated_at=now)
        .returning(*jobs.c)
    ).first()
    return _transitioned(conn, row, count, now, extra_events)


def _transitioned(
    conn: Connection,
    row: Any,
    count: int,
    now: datetime,
    extra_events: Sequence[tuple[str, dict[str, Any]]] = (),
) -> Job | None:
    """After a transition's UPDATE (None: its guard held no row): its events, ``count``
    in all, the status last, and its webhook."""
    if row is None:
        return None
    job = job_from_row(row)
    first = job.last_seq - count + 1
    events = [*extra_events, ("status", status_data(job))]
    # One batch: a job's outputs and its status cost one round trip, not one each.
    conn.execute(
        INSERT_EVENT,
        [
            {"job_id": job.id, "seq": first + i, "type": kind, "data": data, "at": now}
            for i, (kind, data) in enumerate(events)
        ],
    )
    _tell_webhook(conn, job, now)
    return job


def _tell_webhook(conn: Connection, job: Job, now: datetime, *, started: bool = False) -> None:
    """The outbox row of the event this transition sends, in its transaction: a crash
    after the commit cannot lose it, and a rolled-back transition sends nothing."""
    if job.webhook and (event := event_for(job, started=started)) is not None:
        enqueue_delivery(conn, job, event, now)


@functools.cache
def _complete_update(with_progress: bool) -> Any:
    """``complete``'s fenced UPDATE, built once: the hottest transition after the claim.
    Binds ``job_id``, ``token``, ``listed``, ``count``, ``at`` (and ``final``)."""
    values: dict[str, Any] = {
        "status": JobStatus.SUCCEEDED.value,
        "outputs": bindparam("listed", type_=jobs.c.outputs.type),
        "finished_at": bindparam("at", type_=jobs.c.finished_at.type),
        "error": None,
        **RELEASED,
        "last_seq": jobs.c.last_seq + bindparam("count"),
        "updated_at": bindparam("at", type_=jobs.c.updated_at.type),
    }
    if with_progress:
        values["progress"] = bindparam("final", type_=jobs.c.progress.type)
    return (
        update(jobs)
        .where(jobs.c.id == bindparam("job_id"), _fence(bindparam("token")))
        .values(**values)
        .returning(*jobs.c)
    )


FINISH_ATTEMPT = (
    update(job_attempts)
    .where(
        job_attempts.c.job_id == bindparam("of_job"),
        job_attempts.c.attempt == bindparam("of_attempt"),
    )
    .values(finished_at=bindparam("at"), outcome=bindparam("result"))
)


def _finish_attempt(conn: Connection, job: Job, outcome: str, now: datetime) -> None:
    conn.execute(
        FINISH_ATTEMPT,
        {"of_job": job.id, "of_attempt": job.attempts, "at": now, "result": outcome},
    )


#: a retried job waits this long for another backend than the one it failed on
PREFER_OTHER_S = 10.0


class models_within(FunctionElement[bool]):
    """``need ⊆ have`` for two JSON arrays of strings."""

    type = Boolean()
    name = "models_within"
    inherit_cache = True


@compiles(models_within)
def _models_within_sqlite(element: models_within, compiler: SQLCompiler, **kw: Any) -> str:
    need, have = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"NOT EXISTS (SELECT 1 FROM json_each({need}) AS need"
        f" WHERE need.value NOT IN (SELECT value FROM json_each({have})))"
    )


@compiles(models_within, "postgresql")
def _models_within_pg(element: models_within, compiler: SQLCompiler, **kw: Any) -> str:
    need, have = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST({need} AS jsonb) <@ CAST({have} AS jsonb)"


def _fits(models: frozenset[str] | None) -> Any:
    """The job names no model file, or only files of ``models`` (None: no filter)."""
    if models is None:
        return None
    have = literal(json.dumps(sorted(models)))
    return or_(jobs.c.models.is_(None), models_within(jobs.c.models, have))


def _claimable(
    pool: Any,
    now: Any,
    avoid: str | None = None,
    models: frozenset[str] | None = None,
    *,
    prefer_other_until: Any = None,
) -> Any:
    """``pool`` and ``now``: values, or bind parameters of a statement built once (which
    then binds ``prefer_other_until`` too: ``now`` less PREFER_OTHER_S)."""
    if prefer_other_until is None:
        prefer_other_until = now - timedelta(seconds=PREFER_OTHER_S)
    conditions = [
        jobs.c.status == Q,
        jobs.c.pool == pool,
        or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now),
        or_(jobs.c.expires_at.is_(None), jobs.c.expires_at > now),
    ]
    if (fits := _fits(models)) is not None:
        conditions.append(fits)
    if avoid is not None:
        conditions.append(
            or_(
                jobs.c.avoid_backend.is_(None),
                jobs.c.avoid_backend != avoid,
                jobs.c.not_before <= prefer_other_until,
            )
        )
    return and_(*conditions)


#: the order jobs are claimed in, which the ``jobs_claim`` index holds
CLAIM_ORDER = (jobs.c.priority.desc(), jobs.c.fair_key, jobs.c.id)


@functools.cache
def _queue_head(depth: int) -> Select[Any]:
    return (
        select(jobs.c.models, jobs.c.avoid_backend)
        .where(_claimable(bindparam("pool"), bindparam("now")))
        .order_by(*CLAIM_ORDER)
        .limit(depth)
    )


def next_claimable(
    pool: str,
    now: Any,
    avoid: str | None = None,
    models: frozenset[str] | None = None,
    *,
    prefer_other_until: Any = None,
) -> Select[Any]:
    """The claim's pick: it reads the ``jobs_claim`` index in order (a test EXPLAINs it)."""
    return (
        select(jobs.c.id)
        .where(_claimable(pool, now, avoid, models, prefer_other_until=prefer_other_until))
        .order_by(*CLAIM_ORDER)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


@functools.lru_cache(maxsize=256)
def _claim_update(
    pool: str,
    avoid: str | None,
    models: frozenset[str] | None,
    lease_ttl_s: float,
    database_clock: bool,
) -> Any:
    """The claim as one UPDATE, built once per pool, backend and model list: building it
    cost more than running it. Binds ``now``, ``prefer_other_until``, ``agent_id`` and
    ``lease_token``, and ``lease_now`` and ``lease_expires_at`` unless the database's
    clock is used."""
    now = bindparam("now", type_=jobs.c.updated_at.type)
    pick = next_claimable(
        pool,
        now,
        avoid,
        models,
        prefer_other_until=bindparam("prefer_other_until", type_=jobs.c.not_before.type),
    ).scalar_subquery()
    if database_clock:
        lease_now: Any = func.now()
        expires: Any = lease_now + timedelta(seconds=lease_ttl_s)
    else:
        lease_now = bindparam("lease_now", type_=jobs.c.heartbeat_at.type)
        expires = bindparam("lease_expires_at", type_=jobs.c.lease_expires_at.type)
    return (
        update(jobs)
        .where(jobs.c.id == pick, jobs.c.status == Q)
        .values(
            status=R,
            attempts=jobs.c.attempts + 1,
            lease_owner=bindparam("agent_id"),
            lease_token=bindparam("lease_token"),
            lease_expires_at=expires,
            heartbeat_at=lease_now,
            not_before=None,
            avoid_backend=None,
            cancel_requested_at=None,
            started_at=func.coalesce(jobs.c.started_at, now),
            progress=None,
            last_seq=jobs.c.last_seq + 1,
            updated_at=now,
        )
        .returning(*jobs.c)
    )


def expired_leases(now: Any, limit: int) -> Select[Any]:
    """The rescuer's pick, through the ``jobs_leases`` index. ``now``: a time, or the
    database's ``now()`` (stable within a statement, so the index can still be used;
    ``clock_timestamp()`` is volatile and would turn the index scan into a filter)."""
    return (
        select(jobs.c.id, jobs.c.status, jobs.c.attempts, jobs.c.max_attempts)
        .where(or_(jobs.c.status == R, jobs.c.status == C), jobs.c.lease_expires_at < now)
        .order_by(jobs.c.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def _current_backend() -> Any:
    """The backend of the job's current attempt (for the row being updated)."""
    return (
        select(job_attempts.c.backend)
        .where(job_attempts.c.job_id == jobs.c.id, job_attempts.c.attempt == jobs.c.attempts)
        .scalar_subquery()
    )


def _fence(lease_token: Any) -> Any:
    return and_(jobs.c.lease_token == lease_token, LEASED_STATES)


def _reserved(reservation: KeyReservation) -> Any:
    """The key's row while this reservation still holds it, before any job was made."""
    return and_(
        idempotency_keys.c.owner_id == reservation.owner_id,
        idempotency_keys.c.key == reservation.key,
        idempotency_keys.c.created_at == reservation.reserved_at,
        idempotency_keys.c.job_id.is_(None),
        idempotency_keys.c.status_code.is_(None),
    )


def _fair_key(conn: Connection, pool: str, owner_id: str, *, depth: bool) -> tuple[int, int]:
    """Start-time fair queuing: one past the later of the owner's last queued job and
    the pool's virtual time (the fair_key of its latest claim). An owner who queues a
    thousand jobs gets keys far ahead; a newcomer's first job slots in right after the
    jobs being claimed now. With ``depth``, also the jobs queued in the pool (else 0)."""
    statement = FAIR_KEY_AND_DEPTH if depth else FAIR_KEY
    row = conn.execute(statement, {"pool": pool, "owner_id": owner_id}).one()
    owner_last, now = row[0], row[1]
    return max(owner_last or 0, now or 0) + 1, int(row[2] or 0) if depth else 0


def _creator(
    job: NewJob,
    now: datetime,
    max_queued: int | None,
    admission: Admission | None,
    reservation: KeyReservation | None,
) -> Callable[[Connection], Job]:
    """The statements of ``create_job``, to run in a transaction of the caller's."""

    def run(conn: Connection) -> Job:
        fair_key, depth = _fair_key(conn, job.pool, job.owner_id, depth=max_queued is not None)
        if max_queued is not None and depth >= max_queued:
            raise QueueFull(details={"pool": job.pool, "queued": depth})
        if admission is not None:
            quotas.admit(conn, owner_id=job.owner_id, job_id=job.id, admission=admission, now=now)
        values = {
            "id": job.id,
            "owner_id": job.owner_id,
            "workflow": job.workflow,
            "workflow_version": job.workflow_version,
            "pool": job.pool,
            "status": Q,
            "priority": job.priority,
            "fair_key": fair_key,
            "attempts": 0,
            "max_attempts": job.max_attempts,
            "timeout_s": job.timeout_s,
            "retry_on_timeout": job.retry_on_timeout,
            "params": job.params,
            "metadata": job.metadata,
            "inputs": [i.to_dict() for i in job.inputs],
            "progress": None,
            "error": None,
            "outputs": [],
            "last_seq": 1,
            "retry_of": job.retry_of,
            "expires_at": job.expires_at,
            "webhook": job.webhook,
            "created_at": now,
            "updated_at": now,
        }
        # Left out, not None: SQL NULL rather than JSON null, which the claim tests
        # for "needs no model".
        if job.models:
            values["models"] = list(job.models)
        row = conn.execute(INSERT_JOB, values).one()
        created = job_from_row(row)
        _append(conn, created, "status", status_data(created), 1, now)
        if reservation is not None:
            # In the job's transaction: a retry of a request whose gateway died after
            # this finds the job, and a key taken over meanwhile makes no job here.
            linked = conn.execute(
                update(idempotency_keys).where(_reserved(reservation)).values(job_id=created.id)
            ).rowcount
            if not linked:
                raise IdempotencyKeyInFlight
        return created

    return run


ADVANCE_POOL_CLOCK = (
    update(pool_clocks)
    .where(pool_clocks.c.pool == bindparam("of_pool"), pool_clocks.c.fair_key < bindparam("key"))
    .values(fair_key=bindparam("key"))
)


def _advance_pool_clock(conn: Connection, pool: str, fair_key: int) -> None:
    moved = conn.execute(ADVANCE_POOL_CLOCK, {"of_pool": pool, "key": fair_key}).rowcount
    if not moved:  # the pool's first claim, or a requeued job from the past
        upsert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
        conn.execute(
            upsert(pool_clocks)
            .values(pool=pool, fair_key=fair_key)
            .on_conflict_do_nothing(index_elements=["pool"])
        )


RETENTION_BATCH = 100

RELEASED: dict[str, Any] = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


def _requested_lease(
    conn: Connection, agent_id: str, request_id: str
) -> tuple[Job, Attempt] | None:
    """The lease an earlier lease call with this request id took, None if none did;
    LeaseLost when that lease is no longer held under the token it was handed out with."""
    record = conn.execute(
        select(lease_requests).where(
            lease_requests.c.agent_id == agent_id, lease_requests.c.request_id == request_id
        )
    ).first()
    if record is None:
        return None
    row = conn.execute(
        select(jobs).where(
            jobs.c.id == record.job_id,
            jobs.c.attempts == record.attempt,
            _fence(record.lease_token),
        )
    ).first()
    attempt = conn.execute(
        select(job_attempts).where(
            job_attempts.c.job_id == record.job_id, job_attempts.c.attempt == record.attempt
        )
    ).first()
    if row is None or attempt is None:
        raise LeaseLost
    return job_from_row(row), attempt_from_row(attempt)


class SqlJobStore:
    def __init__(self, db: Database, clock: Clock, *, database_clock: bool = True) -> None:
        self._db = db
        self._clock = clock
        #: lease times from the database's clock: on PostgreSQL, gateways on several
        #: machines must agree on when a lease runs out whatever their own clocks say.
        #: SQLite lives on one machine and keeps the injected clock.
        self._database_clock = database_clock and db.dialect == "postgresql"

    def lease_now(self, now: datetime) -> Any:
        """ "Now" for lease times: ``now()`` in the database, or ``now`` as given."""
        return func.now() if self._database_clock else now

    def _lease_at(self, now: datetime, offset_s: float) -> Any:
        return self.lease_now(now) + timedelta(seconds=offset_s)

    @property
    def db(self) -> Database:
        return self._db

    async def close(self) -> None:
        await self._db.dispose()

    async def check(self) -> None:
        """Raise unless the database answers (readiness)."""
        await self._db.read(lambda conn: conn.execute(select(1)).scalar())

    # -- workflow versions -------------------------------------------------------------
    async def save_workflow_version(self, version: WorkflowVersion) -> None:
        def run(conn: Connection) -> None:
            exists = conn.execute(
                select(workflow_versions.c.version).where(
                    workflow_versions.c.version == version.version
                )
            ).first()
            if not exists:
                conn.execute(
                    insert(workflow_versions).values(
                        version=version.version,
                        name=version.name,
                        graph=version.graph,
                        contract=version.contract,
                        created_at=version.created_at,
                    )
                )

        await self._db.write(run)

    async def get_workflow_version(self, version: str) -> WorkflowVersion | None:
        def run(conn: Connection) -> WorkflowVersion | None:
            row = conn.execute(
                select(workflow_versions).where(workflow_versions.c.version == version)
            ).first()
            return version_from_row(row) if row else None

        return await self._db.read(run)

    # -- idempotency ---------------------------------------------------------------------
    async def reserve_idempotency_key(
        self, *, owner_id: str, key: str, fingerprint: str, now: datetime
    ) -> IdempotencyRecord | None:
        def insert_key(conn: Connection) -> None:
            conn.execute(
                insert(idempotency_keys).values(
                    owner_id=owner_id, key=key, fingerprint=fingerprint, created_at=now
                )
            )

        def existing(conn: Connection) -> IdempotencyRecord | None:
            row = conn.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.owner_id == owner_id, idempotency_keys.c.key == key
                )
            ).first()
            return idempotency_from_row(row) if row else None

        try:
            await self._db.write(insert_key)
            return None
        except IntegrityError:
            record = await self._db.read(existing)
        if record is None:  # released in between: try once more
            return await self.reserve_idempotency_key(
                owner_id=owner_id, key=key, fingerprint=fingerprint, now=now
            )
        return record

    async def finish_idempotency_key(
        self, *, owner_id: str, key: str, status_code: int, body: dict[str, Any], job_id: str | None
    ) -> None:
        def run(conn: Connection) -> None:
            conn.execute(
                update(idempotency_keys)
                .where(idempotency_keys.c.owner_id == owner_id, idempotency_keys.c.key == key)
                .values(status_code=status_code, body=body, job_id=job_id)
            )

        await self._db.write(run)

    async def release_idempotency_key(self, reservation: KeyReservation) -> None:
        def run(conn: Connection) -> None:
            conn.execute(delete(idempotency_keys).where(_reserved(reservation)))

        await self._db.write(run)

    async def take_over_idempotency_key(self, record: IdempotencyRecord, *, now: datetime) -> bool:
        """Reserve anew an in-flight key whose request made no job (its gateway died):
        UPDATE idempotency_keys SET created_at = :now WHERE … AND created_at = :was
        AND job_id IS NULL AND status_code IS NULL. False when another request won."""
        was = KeyReservation(
            owner_id=record.owner_id, key=record.key, reserved_at=record.created_at
        )

        def run(conn: Connection) -> bool:
            taken = conn.execute(
                update(idempotency_keys).where(_reserved(was)).values(created_at=now)
            )
            return bool(taken.rowcount)

        return await self._db.write(run)

    async def purge_idempotency_keys(self, *, older_than: datetime) -> int:
        def run(conn: Connection) -> int:
            result = conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.created_at < older_than)
            )
            return int(result.rowcount or 0)

        return await self._db.write(run)

    # -- jobs: create and read ------------------------------------------------------------
    async def create_job(
        self,
        job: NewJob,
        *,
        now: datetime,
        max_queued: int | None = None,
        admission: Admission | None = None,
        reservation: KeyReservation | None = None,
    ) -> Job:
        return await self._db.write(_creator(job, now, max_queued, admission, reservation))

    async def create_and_claim(
        self,
        job: NewJob,
        claim: Claim,
        *,
        now: datetime,
        max_queued: int | None = None,
        admission: Admission | None = None,
        reservation: KeyReservation | None = None,
    ) -> tuple[Job, tuple[Job, Attempt] | None]:
        create = _creator(job, now, max_queued, admission, reservation)
        take = self._claimer(claim, now)

        def run(conn: Connection) -> tuple[Job, tuple[Job, Attempt] | None]:
            created = create(conn)
            return created, take(conn)

        try:
            return await self._db.write(run)
        except IntegrityError:
            if claim.request_id is None:
                raise
            # Another gateway answered a retry of the waiter's lease call meanwhile
            # (PostgreSQL), and the whole transaction rolled back: the job alone, then.
            return await self.create_job(
                job, now=now, max_queued=max_queued, admission=admission, reservation=reservation
            ), None

    async def get_job(self, job_id: str) -> Job | None:
        def run(conn: Connection) -> Job | None:
            row = conn.execute(JOB_BY_ID, {"job_id": job_id}).first()
            return job_from_row(row) if row else None

        return await self._db.read(run)

    async def list_jobs(
        self,
        *,
        owner_id: str | None,
        status: JobStatus | None = None,
        workflow: str | None = None,
        pool: str | None = None,
        before_id: str | None = None,
        limit: int = 50,
    ) -> list[Job]:
        query = (
            select(jobs).where(jobs.c.deleted_at.is_(None)).order_by(jobs.c.id.desc()).limit(limit)
        )
        if owner_id is not None:
            query = query.where(jobs.c.owner_id == owner_id)
        if status is not None:
            query = query.where(jobs.c.status == status.value)
        if workflow is not None:
            query = query.where(jobs.c.workflow == workflow)
        if pool is not None:
            query = query.where(jobs.c.pool == pool)
        if before_id is not None:
            query = query.where(jobs.c.id < before_id)

        def run(conn: Connection) -> list[Job]:
            return [job_from_row(r) for r in conn.execute(query)]

        return await self._db.read(run)

    async def jobs_changed_since(self, *, owner_id: str, since: datetime) -> list[Job]:
        def run(conn: Connection) -> list[Job]:
            rows = conn.execute(
                select(jobs)
                .where(jobs.c.owner_id == owner_id, jobs.c.updated_at >= since)
                .order_by(jobs.c.updated_at, jobs.c.id)
            )
            return [job_from_row(r) for r in rows]

        return await self._db.read(run)

    async def events_after(
        self, job_id: str, seq: int, *, since: datetime | None = None
    ) -> list[JobEvent]:
        def run(conn: Connection) -> list[JobEvent]:
            query = select(job_events).where(job_events.c.job_id == job_id, job_events.c.seq > seq)
            if since is not None:
                # A job has few events: the (job_id, seq) index finds them, no index on at.
                query = query.where(job_events.c.at >= since)
            rows = conn.execute(query.order_by(job_events.c.seq))
            return [event_from_row(r) for r in rows]

        return await self._db.read(run)

    async def events_after_many(self, after: Mapping[str, int]) -> dict[str, list[JobEvent]]:
        def run(conn: Connection) -> dict[str, list[JobEvent]]:
            query = (
                select(job_events)
                .where(
                    or_(
                        *(
                            and_(job_events.c.job_id == job_id, job_events.c.seq > seq)
                            for job_id, seq in after.items()
                        )
                    )
                )
                .order_by(job_events.c.job_id, job_events.c.seq)
            )
            found: dict[str, list[JobEvent]] = {}
            for r in conn.execute(query):
                found.setdefault(r.job_id, []).append(event_from_row(r))
            return found

        if not after:
            return {}
        return await self._db.read(run)

    async def events_and_job(self, job_id: str, seq: int) -> tuple[list[JobEvent], Job | None]:
        def run(conn: Connection) -> tuple[list[JobEvent], Job | None]:
            events = [
                event_from_row(r)
                for r in conn.execute(EVENTS_AFTER, {"job_id": job_id, "seq": seq})
            ]
            row = conn.execute(JOB_BY_ID, {"job_id": job_id}).first()
            return events, job_from_row(row) if row else None

        return await self._db.read(run)

    async def attempts(self, job_id: str) -> list[Attempt]:
        def run(conn: Connection) -> list[Attempt]:
            rows = conn.execute(ATTEMPTS_OF, {"job_id": job_id})
            return [attempt_from_row(r) for r in rows]

        return await self._db.read(run)

    async def finished_since(self, *, pool: str, since: datetime) -> int:
        """How many of the pool's jobs ended since then: its recent throughput."""

        def run(conn: Connection) -> int:
            query = (
                select(func.count())
                .select_from(jobs)
                .where(jobs.c.pool == pool, jobs.c.finished_at >= since)
            )
            return int(conn.execute(query).scalar() or 0)

        return await self._db.read(run)

    async def queue_position(self, job: Job) -> int | None:
        if job.status is not JobStatus.QUEUED:
            return None
        ahead = and_(
            jobs.c.status == Q,
            jobs.c.pool == job.pool,
            or_(
                jobs.c.priority > job.priority,
                and_(jobs.c.priority == job.priority, jobs.c.fair_key < job.fair_key),
                and_(
                    jobs.c.priority == job.priority,
                    jobs.c.fair_key == job.fair_key,
                    jobs.c.id < job.id,
                ),
            ),
        )

        def run(conn: Connection) -> int:
            count = conn.execute(select(func.count()).select_from(jobs).where(ahead)).scalar()
            return int(count or 0)

        return await self._db.read(run)

    # -- client-side transitions ------------------------------------------------------------
    async def request_cancel(self, job_id: str, *, now: datetime) -> Job:
        def run(conn: Connection) -> Job:
            job = _transition(
                conn,
                job_id,
                jobs.c.status == Q,
                {"status": JobStatus.CANCELED.value, "finished_at": now},
                now=now,
            ) or _transition(
                conn,
                job_id,
                jobs.c.status == R,
                {"status": C, "cancel_requested_at": now},
                now=now,
            )
            if job is not None:
                return job
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            current = job_from_row(row)
            if current.status is JobStatus.CANCELING:
                return current
            raise InvalidTransition(f"the job is already {current.status.value}")

        return await self._db.write(run)

    async def expire_queued(self, *, now: datetime) -> list[Job]:
        def run(conn: Connection) -> list[Job]:
            due = (
                conn.execute(
                    select(jobs.c.id)
                    .where(
                        jobs.c.status == Q,
                        jobs.c.expires_at.is_not(None),
                        jobs.c.expires_at <= now,
                    )
                    .limit(100)
                )
                .scalars()
                .all()
            )
            expired = []
            for job_id in due:
                job = _transition(
                    conn,
                    job_id,
                    jobs.c.status == Q,
                    {
                        "status": JobStatus.EXPIRED.value,
                        "finished_at": now,
                        "error": {"code": "expired", "message": "no backend took the job in time"},
                    },
                    now=now,
                )
                if job is not None:
                    expired.append(job)
            return expired

        return await self._db.write(run)

    # -- the worker protocol ----------------------------------------------------------------
    async def queue_head(self, *, pool: str, now: datetime, depth: int) -> QueueHead:
        def run(conn: Connection) -> QueueHead:
            rows = conn.execute(_queue_head(depth), {"pool": pool, "now": now}).all()
            needs = tuple(frozenset(row.models or ()) for row in rows if row.avoid_backend is None)
            return QueueHead(claimable=len(rows), needs=needs)

        return await self._db.read(run)

    async def has_claimable(
        self,
        *,
        pool: str,
        now: datetime,
        avoid: str | None = None,
        models: frozenset[str] | None = None,
    ) -> bool:
        def run(conn: Connection) -> bool:
            query = select(jobs.c.id).where(_claimable(pool, now, avoid, models)).limit(1)
            return conn.execute(query).first() is not None

        return await self._db.read(run)

    async def claim(
        self,
        *,
        pool: str,
        agent_id: str,
        backend: str,
        prompt_id: str,
        lease_token: str,
        lease_ttl_s: float,
        now: datetime,
        avoid: str | None = None,
        request_id: str | None = None,
        models: frozenset[str] | None = None,
    ) -> tuple[Job, Attempt] | None:
        """PostgreSQL: UPDATE jobs … WHERE id = (SELECT id … ORDER BY priority DESC,
        fair_key, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *. SQLite: same, FOR
        UPDATE dropped; the writer holds BEGIN IMMEDIATE."""
        claim = Claim(
            pool=pool,
            agent_id=agent_id,
            backend=backend,
            prompt_id=prompt_id,
            lease_token=lease_token,
            lease_ttl_s=lease_ttl_s,
            avoid=avoid,
            request_id=request_id,
            models=models,
        )
        try:
            return await self._db.write(self._claimer(claim, now))
        except IntegrityError:
            if request_id is None:
                raise
            # Another gateway answered a retry of this call meanwhile (PostgreSQL): this
            # claim rolled back; that one's lease is the answer.
            return await self.requested_lease(agent_id=agent_id, request_id=request_id)

    def _claimer(
        self, claim: Claim, now: datetime
    ) -> Callable[[Connection], tuple[Job, Attempt] | None]:
        """The statements of ``claim``, to run in a transaction of the caller's."""
        statement = _claim_update(
            claim.pool, claim.avoid, claim.models, claim.lease_ttl_s, self._database_clock
        )
        params = {
            "now": now,
            "prefer_other_until": now - timedelta(seconds=PREFER_OTHER_S),
            "agent_id": claim.agent_id,
            "lease_token": claim.lease_token,
        }
        if not self._database_clock:
            params["lease_now"] = now
            params["lease_expires_at"] = now + timedelta(seconds=claim.lease_ttl_s)
        lease_now = self.lease_now(now)
        agent_id, request_id = claim.agent_id, claim.request_id

        def run(conn: Connection) -> tuple[Job, Attempt] | None:
            if request_id is not None:
                earlier = _requested_lease(conn, agent_id, request_id)
                if earlier is not None:
                    return earlier
            row = conn.execute(statement, params).first()
            if row is None:
                return None
            _advance_pool_clock(conn, claim.pool, row.fair_key)
            job = job_from_row(row)
            attempt = Attempt(
                job_id=job.id,
                attempt=job.attempts,
                backend=claim.backend,
                prompt_id=claim.prompt_id,
                started_at=now,
            )
            conn.execute(
                INSERT_ATTEMPT,
                {
                    "job_id": job.id,
                    "attempt": attempt.attempt,
                    "backend": claim.backend,
                    "prompt_id": claim.prompt_id,
                    "started_at": now,
                },
            )
            _append(conn, job, "status", status_data(job), job.last_seq, now)
            if job.attempts == 1:
                _tell_webhook(conn, job, now, started=True)
            if request_id is not None:
                conn.execute(
                    insert(lease_requests).values(
                        agent_id=agent_id,
                        request_id=request_id,
                        job_id=job.id,
                        attempt=job.attempts,
                        lease_token=claim.lease_token,
                        created_at=lease_now,
                    )
                )
            return job, attempt

        return run

    async def requested_lease(
        self, *, agent_id: str, request_id: str
    ) -> tuple[Job, Attempt] | None:
        def run(conn: Connection) -> tuple[Job, Attempt] | None:
            return _requested_lease(conn, agent_id, request_id)

        return await self._db.read(run)

    async def purge_lease_requests(self, *, keep_s: float, now: datetime) -> int:
        def run(conn: Connection) -> int:
            result = conn.execute(
                delete(lease_requests).where(
                    lease_requests.c.created_at < self._lease_at(now, -keep_s)
                )
            )
            return int(result.rowcount or 0)

        return await self._db.write(run)

    async def adopt(
        self,
        *,
        agent_id: str,
        backend: str,
        lease_ttl_s: float,
        new_token: Callable[[], str],
        now: datetime,
    ) -> list[tuple[Job, Attempt]]:
        """The leased jobs an agent of this name held on this backend before a restart,
        under fresh lease tokens, with their current attempt: the agent follows those
        prompts again instead of running them twice. Fenced on the old token, so a job
        rescued in the meantime is not taken back."""

        def run(conn: Connection) -> list[tuple[Job, Attempt]]:
            held = conn.execute(
                select(jobs.c.id, jobs.c.lease_token, job_attempts)
                .join(
                    job_attempts,
                    and_(
                        job_attempts.c.job_id == jobs.c.id,
                        job_attempts.c.attempt == jobs.c.attempts,
                    ),
                )
                .where(
                    LEASED_STATES,
                    jobs.c.lease_owner == agent_id,
                    job_attempts.c.backend == backend,
                )
            ).all()
            adopted = []
            for row in held:
                renewed = conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id, _fence(row.lease_token))
                    .values(
                        lease_token=new_token(),
                        lease_expires_at=self._lease_at(now, lease_ttl_s),
                        heartbeat_at=self.lease_now(now),
                    )
                    .returning(*jobs.c)
                ).first()
                if renewed is not None:
                    adopted.append((job_from_row(renewed), attempt_from_row(row)))
            return adopted

        return await self._db.write(run)

    async def heartbeat(
        self, job_id: str, lease_token: str, *, lease_ttl_s: float, now: datetime
    ) -> Job:
        def run(conn: Connection) -> Job:
            row = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, _fence(lease_token))
                .values(
                    lease_expires_at=self._lease_at(now, lease_ttl_s),
                    heartbeat_at=self.lease_now(now),
                )
                .returning(*jobs.c)
            ).first()
            if row is None:
                raise LeaseLost
            return job_from_row(row)

        return await self._db.write(run)

    async def save_progress(self, job_id: str, lease_token: str, progress: Progress) -> Job:
        def run(conn: Connection) -> Job:
            row = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, _fence(lease_token))
                .values(progress=progress.to_dict())
                .returning(*jobs.c)
            ).first()
            if row is None:
                raise LeaseLost
            return job_from_row(row)

        return await self._db.write(run)

    async def complete(
        self,
        job_id: str,
        lease_token: str,
        outputs: Sequence[OutputFile],
        *,
        now: datetime,
        progress: Progress | None = None,
    ) -> Job:
        listed = [o.to_dict() for o in outputs]
        statement = _complete_update(progress is not None)
        params: dict[str, Any] = {
            "job_id": job_id,
            "token": lease_token,
            "listed": listed,
            "count": len(listed) + 1,
            "at": now,
        }
        if progress is not None:
            params["final"] = progress.to_dict()

        def run(conn: Connection) -> Job:
            row = conn.execute(statement, params).first()
            job = _transitioned(conn, row, len(listed) + 1, now, [("output", o) for o in listed])
            if job is None:
                raise LeaseLost
            _finish_attempt(conn, job, "succeeded", now)
            return job

        return await self._db.write(run)

    async def fail(
        self,
        job_id: str,
        lease_token: str,
        failure: JobFailure,
        *,
        retry_at: datetime | None,
        now: datetime,
    ) -> Job:
        error = failure.to_dict()
        values: dict[str, Any] = (
            # Retried elsewhere if another backend is free: this one may be the problem.
            {
                "status": Q,
                "not_before": retry_at,
                "error": error,
                "avoid_backend": _current_backend(),
            }
            if retry_at is not None
            else {"status": JobStatus.FAILED.value, "error": error, "finished_at": now}
        )

        def run(conn: Connection) -> Job:
            # A job whose cancel was asked for ends canceled, whatever the failure.
            job = _transition(
                conn,
                job_id,
                and_(jobs.c.lease_token == lease_token, jobs.c.status == C),
                {"status": JobStatus.CANCELED.value, "finished_at": now, **RELEASED},
                now=now,
            ) or _transition(
                conn,
                job_id,
                and_(jobs.c.lease_token == lease_token, jobs.c.status == R),
                {**values, **RELEASED},
                now=now,
            )
            if job is None:
                raise LeaseLost
            _finish_attempt(conn, job, failure.code, now)
            return job

        return await self._db.write(run)

    async def rescue_expired(
        self, *, now: datetime, retry_at: Callable[[int], datetime], limit: int = 100
    ) -> list[Job]:
        """Jobs whose lease ran out: canceling → canceled; attempts spent → failed;
        else queued again at ``retry_at(attempts)``. Rows another rescuer holds are
        skipped (PostgreSQL); each transition is guarded, so a concurrent rescuer or a
        late heartbeat that renewed the lease makes it a no-op."""
        error = {"code": "lease_expired", "message": "the backend stopped reporting"}
        lease_now = self.lease_now(now)

        def run(conn: Connection) -> list[Job]:
            expired = conn.execute(expired_leases(lease_now, limit)).all()
            rescued = []
            for job_id, status, attempts, max_attempts in expired:
                values: dict[str, Any]
                if status == C:
                    values = {"status": JobStatus.CANCELED.value, "finished_at": now}
                elif attempts >= max_attempts:
                    values = {"status": JobStatus.FAILED.value, "finished_at": now, "error": error}
                else:
                    values = {
                        "status": Q,
                        "not_before": retry_at(attempts),
                        "error": error,
                        "avoid_backend": _current_backend(),
                    }
                job = _transition(
                    conn,
                    job_id,
                    and_(jobs.c.status == status, jobs.c.lease_expires_at < lease_now),
                    {**values, **RELEASED},
                    now=now,
                )
                if job is not None:
                    _finish_attempt(conn, job, "lease_expired", now)
                    rescued.append(job)
            return rescued

        return await self._db.write(run)

    # -- retention ----------------------------------------------------------------------
    async def delete_job(self, job_id: str, *, now: datetime) -> Job:
        """A finished job becomes a tombstone: its parameters, inputs, outputs and
        timeline go; its id, owner, workflow, status and times stay. Idempotent."""
        ended = [s.value for s in TERMINAL]

        def run(conn: Connection) -> Job:
            row = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status.in_(ended), jobs.c.deleted_at.is_(None))
                .values(
                    deleted_at=now,
                    params={},
                    metadata={},
                    inputs=[],
                    outputs=[],
                    progress=None,
                    updated_at=now,
                )
                .returning(*jobs.c)
            ).first()
            if row is not None:
                conn.execute(delete(job_events).where(job_events.c.job_id == job_id))
                return job_from_row(row)
            current = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
            if current is None:
                raise NotFound(f"no job {job_id!r}")
            job = job_from_row(current)
            if job.deleted_at is None:
                raise InvalidTransition(f"the job is {job.status.value}: cancel it first")
            return job

        return await self._db.write(run)

    async def expire_outputs(self, *, finished_before: datetime, now: datetime) -> list[Job]:
        """Succeeded jobs past their outputs' retention, marked so; the caller deletes
        the files they list. A batch at a time."""

        def run(conn: Connection) -> list[Job]:
            due = (
                conn.execute(
                    select(jobs.c.id)
                    .where(
                        jobs.c.finished_at < finished_before,
                        jobs.c.status == JobStatus.SUCCEEDED.value,
                        jobs.c.outputs_expired_at.is_(None),
                        jobs.c.deleted_at.is_(None),
                    )
                    .limit(RETENTION_BATCH)
                )
                .scalars()
                .all()
            )
            if not due:
                return []
            rows = conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(due), jobs.c.outputs_expired_at.is_(None))
                .values(outputs_expired_at=now)
                .returning(*jobs.c)
            )
            return [job_from_row(r) for r in rows]

        return await self._db.write(run)

    async def purge_jobs(self, *, finished_before: datetime) -> list[Job]:
        """Jobs past their own retention, removed with their timeline and attempts."""

        def run(conn: Connection) -> list[Job]:
            rows = conn.execute(
                select(jobs).where(jobs.c.finished_at < finished_before).limit(RETENTION_BATCH)
            ).all()
            ids = [r.id for r in rows]
            if ids:
                conn.execute(delete(job_events).where(job_events.c.job_id.in_(ids)))
                conn.execute(delete(job_attempts).where(job_attempts.c.job_id.in_(ids)))
                forget_jobs(conn, ids)
                conn.execute(delete(jobs).where(jobs.c.id.in_(ids)))
            return [job_from_row(r) for r in rows]

        return await self._db.write(run)

    async def finished_between(self, *, since: datetime, until: datetime) -> list[Job]:
        """Jobs that ended in [since, until): their losing attempts' files get swept."""

        def run(conn: Connection) -> list[Job]:
            rows = conn.execute(
                select(jobs)
                .where(jobs.c.finished_at >= since, jobs.c.finished_at < until)
                .order_by(jobs.c.finished_at)
            )
            return [job_from_row(r) for r in rows]

        return await self._db.read(run)

    async def inputs_in_use(self, prefixes: Sequence[str]) -> set[str]:
        """Which of these input folders a job still names. Rare (the sweep), so a
        text search of the inputs column is fine."""

        def run(conn: Connection) -> set[str]:
            used = set()
            for prefix in prefixes:
                pattern = f'%"{prefix}/%'
                hit = conn.execute(
                    select(jobs.c.id).where(cast(jobs.c.inputs, Text).like(pattern)).limit(1)
                ).first()
                if hit is not None:
                    used.add(prefix)
            return used

        return await self._db.read(run)

    async def finish_cancel(self, job_id: str, lease_token: str, *, now: datetime) -> Job:
        def run(conn: Connection) -> Job:
            job = _transition(
                conn,
                job_id,
                _fence(lease_token),
                {"status": JobStatus.CANCELED.value, "finished_at": now, **RELEASED},
                now=now,
            )
            if job is None:
                raise LeaseLost
            _finish_attempt(conn, job, "canceled", now)
            return job

        return await self._db.write(run)


async def open_store(
    database_url: str, *, clock: Clock, migrate_first: bool = True, database_clock: bool = True
) -> SqlJobStore:
    """Migrate to head (or only check the schema is there), then hand out the store.
    ``database_clock=False`` keeps lease times on ``clock`` on PostgreSQL too (tests that
    move a FakeClock)."""
    db = open_database(database_url)
    try:
        if migrate_first:
            await migrate.upgrade(db)
        else:
            await migrate.check(db)
    except BaseException:
        await db.dispose()
        raise
    return SqlJobStore(db, clock, database_clock=database_clock)
