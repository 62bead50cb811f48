"""Counting queries for the ops dashboard. Reads only; never on the job path.

Each statement names its states as SQL literals, so PostgreSQL can match the partial
indexes (``jobs_claim``: queued; ``jobs_leases``: running, canceling) even under a
generic prepared plan, where a bound parameter would not prove the index predicate.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Integer, cast, func, literal_column, select

from comfygate.jobs.model import LEASED, TERMINAL, JobStatus
from comfygate.jobs.stats import FinishedCount, PoolDepth
from comfygate.store.engine import Database
from comfygate.store.tables import jobs


def _status_in(states: Iterable[JobStatus]) -> Any:
    return jobs.c.status.in_([literal_column(f"'{s.value}'") for s in sorted(states)])


def _minute_after(since: datetime, dialect: str) -> Any:
    """Whole minutes from ``since`` to ``finished_at``, as an integer, in SQL.

    PostgreSQL: floor((extract(epoch FROM finished_at) - :since) / 60)
    SQLite:     (CAST(strftime('%s', finished_at) AS INTEGER) - :since) / 60  (integer
                division; strftime reads the stored UTC text)
    """
    since_s = int(since.timestamp())
    if dialect == "sqlite":
        return (cast(func.strftime("%s", jobs.c.finished_at), Integer) - since_s) / 60
    return cast(func.floor((func.extract("epoch", jobs.c.finished_at) - since_s) / 60), Integer)


class SqlStatsStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def pool_depths(self) -> list[PoolDepth]:
        """SELECT pool, count(*) FROM jobs WHERE status = 'queued' GROUP BY pool;
        SELECT pool, count(*) FROM jobs WHERE status IN ('canceling', 'running') GROUP BY pool
        """
        count = func.count().label("n")
        queued = select(jobs.c.pool, count).where(_status_in([JobStatus.QUEUED]))
        leased = select(jobs.c.pool, count).where(_status_in(LEASED))

        def run(conn: Connection) -> list[PoolDepth]:
            depth: dict[str, dict[str, int]] = {}
            for name, query in (("queued", queued), ("running", leased)):
                for pool, n in conn.execute(query.group_by(jobs.c.pool)):
                    depth.setdefault(pool, {})[name] = int(n)
            return [PoolDepth(pool=pool, **depth[pool]) for pool in sorted(depth)]

        return await self._db.read(run)

    async def finished_per_minute(self, *, since: datetime, until: datetime) -> list[FinishedCount]:
        """SELECT <minute after since>, status, count(*) FROM jobs
        WHERE status IN (<terminal>) AND finished_at >= :since AND finished_at < :until
        GROUP BY 1, 2   -- served by the ``jobs_finished`` index
        """

        def run(conn: Connection) -> list[FinishedCount]:
            minute = _minute_after(since, conn.dialect.name).label("minute")
            query = (
                select(minute, jobs.c.status, func.count())
                .where(
                    _status_in(TERMINAL),
                    jobs.c.finished_at >= since,
                    jobs.c.finished_at < until,
                )
                .group_by(minute, jobs.c.status)
            )
            return [
                FinishedCount(minute=int(m), status=JobStatus(s), count=int(n))
                for m, s, n in conn.execute(query)
            ]

        return await self._db.read(run)
