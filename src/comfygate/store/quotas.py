"""Budgets, charges and the per-owner admission check, in SQL.

``admit`` runs inside the transaction that inserts the job: on PostgreSQL it first takes
a transaction-scoped advisory lock on the owner, on SQLite the writer already holds
``BEGIN IMMEDIATE``; either way two submits of one owner are checked one after the
other, so neither can slip under a limit the other just reached."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from comfygate.errors import QuotaExceeded, TooManyActiveJobs
from comfygate.jobs.model import JobStatus
from comfygate.jobs.quota import (
    CHARGED_FAILURES,
    Admission,
    Budget,
    Usage,
    exceeds,
    period_bounds,
    quota_details,
)
from comfygate.store.engine import Database
from comfygate.store.tables import budgets, job_charges, jobs

ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.CANCELING.value)

#: a charge counts unless its job says it is refunded (jobs/quota.py); a charge whose
#: job row retention removed counts
_CHARGE_STANDS = or_(
    jobs.c.id.is_(None),
    jobs.c.status.in_(
        [*ACTIVE, JobStatus.SUCCEEDED.value],
    ),
    and_(jobs.c.status == JobStatus.CANCELED.value, jobs.c.attempts > 0),
    and_(
        jobs.c.status == JobStatus.FAILED.value,
        jobs.c.error["code"].as_string().in_(CHARGED_FAILURES),
    ),
)


def _lock_key(owner_id: str) -> int:
    """A signed 64-bit advisory lock key for an owner."""
    digest = hashlib.sha256(b"comfygate:owner:" + owner_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_owner(conn: Connection, owner_id: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(owner_id)})


def _active_jobs(conn: Connection, owner_id: str) -> int:
    query = (
        select(func.count())
        .select_from(jobs)
        .where(jobs.c.owner_id == owner_id, jobs.c.status.in_(ACTIVE))
    )
    return int(conn.execute(query).scalar() or 0)


def _budget(conn: Connection, owner_id: str) -> Budget | None:
    row = conn.execute(select(budgets).where(budgets.c.principal_id == owner_id)).first()
    return None if row is None else Budget(amount=row.amount, period=row.period)


def _spent(conn: Connection, owner_id: str, since: datetime) -> float:
    query = (
        select(func.coalesce(func.sum(job_charges.c.cost), 0.0))
        .select_from(job_charges.outerjoin(jobs, jobs.c.id == job_charges.c.job_id))
        .where(
            job_charges.c.owner_id == owner_id,
            job_charges.c.charged_at >= since,
            _CHARGE_STANDS,
        )
    )
    return float(conn.execute(query).scalar() or 0.0)


def usage(conn: Connection, owner_id: str, default: Budget | None, now: datetime) -> Usage:
    """Spending in the budget's period; without a budget, in the current UTC day."""
    budget = _budget(conn, owner_id) or default
    start, resets_at = period_bounds(budget.period if budget else "day", now)
    return Usage(
        principal_id=owner_id,
        budget=budget,
        used=_spent(conn, owner_id, start),
        active_jobs=_active_jobs(conn, owner_id),
        period_start=start,
        resets_at=resets_at,
    )


def admit(
    conn: Connection, *, owner_id: str, job_id: str, admission: Admission, now: datetime
) -> None:
    """Refuse the job (429 or 402) or record its charge, under the owner's lock."""
    if not admission.checks:
        return
    _lock_owner(conn, owner_id)
    if admission.max_active is not None:
        active = _active_jobs(conn, owner_id)
        if active >= admission.max_active:
            raise TooManyActiveJobs(
                f"{active} of your jobs are queued or running; the limit is {admission.max_active}",
                details={"active_jobs": active, "max_active": admission.max_active},
            )
    budget = _budget(conn, owner_id) or admission.default_budget
    if budget is not None:
        start, resets_at = period_bounds(budget.period, now)
        current = Usage(owner_id, budget, _spent(conn, owner_id, start), 0, start, resets_at)
        if exceeds(current, admission.cost):
            # Worth waiting for the reset only when the job fits in a whole budget.
            wait = math.ceil((resets_at - now).total_seconds())
            raise QuotaExceeded(
                retry_after_s=max(1, wait) if admission.cost <= budget.amount else None,
                details=quota_details(current, admission.cost),
            )
    if admission.cost > 0:
        conn.execute(
            insert(job_charges).values(
                job_id=job_id, owner_id=owner_id, cost=admission.cost, charged_at=now
            )
        )


class SqlBudgets:
    """Budgets for the CLI and usage for ``GET /v1/usage``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set(self, principal_id: str, budget: Budget, *, now: datetime) -> None:
        def run(conn: Connection) -> None:
            values: dict[str, Any] = {
                "principal_id": principal_id,
                "amount": budget.amount,
                "period": budget.period,
                "updated_at": now,
            }
            upsert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
            conn.execute(
                upsert(budgets)
                .values(**values)
                .on_conflict_do_update(index_elements=["principal_id"], set_=values)
            )

        await self._db.write(run)

    async def remove(self, principal_id: str) -> bool:
        def run(conn: Connection) -> bool:
            gone = conn.execute(delete(budgets).where(budgets.c.principal_id == principal_id))
            return bool(gone.rowcount)

        return await self._db.write(run)

    async def all(self) -> list[tuple[str, Budget]]:
        def run(conn: Connection) -> list[tuple[str, Budget]]:
            rows = conn.execute(select(budgets).order_by(budgets.c.principal_id))
            return [(r.principal_id, Budget(amount=r.amount, period=r.period)) for r in rows]

        return await self._db.read(run)

    async def purge_charges(self, *, older_than: datetime) -> int:
        def run(conn: Connection) -> int:
            gone = conn.execute(delete(job_charges).where(job_charges.c.charged_at < older_than))
            return int(gone.rowcount or 0)

        return await self._db.write(run)

    async def usage(self, principal_id: str, *, default: Budget | None, now: datetime) -> Usage:
        return await self._db.read(lambda conn: usage(conn, principal_id, default, now))
