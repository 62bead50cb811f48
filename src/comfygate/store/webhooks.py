"""The webhook outbox: rows written with a job's transition, claimed by any gateway's
dispatcher, each attempt logged.

A claim pushes ``next_attempt_at`` past the attempt's time (a short lease), so a
dispatcher that dies mid-attempt only delays the delivery: it becomes due again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from comfygate.ids import new_id
from comfygate.jobs.model import Job
from comfygate.jobs.snapshot import status_data
from comfygate.jobs.webhooks import Delivery, DeliveryStatus, Outcome, WebhookTarget
from comfygate.store.engine import Database
from comfygate.store.rows import delivery_attempt_from_row, delivery_from_row
from comfygate.store.tables import webhook_attempts, webhook_deliveries, webhook_disabled

PENDING = DeliveryStatus.PENDING.value
#: errors are kept this long in the log (a receiver may answer with anything)
ERROR_CHARS = 500


def enqueue_delivery(conn: Connection, job: Job, event: str, now: datetime) -> None:
    """The outbox row of one event; called inside the transition's transaction."""
    target = WebhookTarget.from_dict(job.webhook)
    assert target is not None
    conn.execute(
        insert(webhook_deliveries).values(
            id=new_id(),
            job_id=job.id,
            owner_id=job.owner_id,
            url=target.url,
            type=event,
            data=status_data(job),
            event_at=now,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            give_up_at=None,
            created_at=now,
        )
    )


def forget_jobs(conn: Connection, job_ids: Sequence[str]) -> None:
    """The deliveries and attempts of jobs being purged."""
    ids = select(webhook_deliveries.c.id).where(webhook_deliveries.c.job_id.in_(job_ids))
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids)))
    conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.job_id.in_(job_ids)))


def _due(now: datetime, limit: int) -> Any:
    """PostgreSQL: SELECT … WHERE status = 'pending' AND next_attempt_at <= now ORDER BY
    next_attempt_at LIMIT n FOR UPDATE SKIP LOCKED (gateways claim disjoint rows).
    SQLite: FOR UPDATE dropped; the writer holds BEGIN IMMEDIATE."""
    d = webhook_deliveries
    return (
        select(d)
        .where(d.c.status == PENDING, d.c.next_attempt_at <= now)
        .order_by(d.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


class SqlWebhookStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_due(
        self, *, now: datetime, limit: int, lease_s: float, retry_for_s: float
    ) -> list[Delivery]:
        """Due deliveries, each with its attempt counted and leased for ``lease_s``.
        Those to an endpoint its owner's receiver disabled (410) end ``disabled`` here."""
        d = webhook_deliveries

        def run(conn: Connection) -> list[Delivery]:
            rows = conn.execute(_due(now, limit)).all()
            if not rows:
                return []
            w = webhook_disabled
            listed = conn.execute(
                select(w.c.owner_id, w.c.url, w.c.reason).where(
                    tuple_(w.c.owner_id, w.c.url).in_([(r.owner_id, r.url) for r in rows])
                )
            ).all()
            shut: dict[tuple[str, str], str] = {(x.owner_id, x.url): x.reason for x in listed}
            claimed = []
            for row in rows:
                reason = shut.get((row.owner_id, row.url))
                if reason is not None:
                    conn.execute(
                        update(d)
                        .where(d.c.id == row.id)
                        .values(
                            status=DeliveryStatus.DISABLED.value,
                            next_attempt_at=None,
                            last_error=f"not attempted: {reason}"[:ERROR_CHARS],
                        )
                    )
                    continue
                leased = conn.execute(
                    update(d)
                    .where(d.c.id == row.id, d.c.status == PENDING)
                    .values(
                        attempts=d.c.attempts + 1,
                        next_attempt_at=now + timedelta(seconds=lease_s),
                        give_up_at=func.coalesce(
                            d.c.give_up_at, now + timedelta(seconds=retry_for_s)
                        ),
                    )
                    .returning(*d.c)
                ).first()
                if leased is not None:
                    claimed.append(delivery_from_row(leased))
            return claimed

        return await self._db.write(run)

    async def record(
        self,
        delivery: Delivery,
        outcome: Outcome,
        *,
        now: datetime,
        retry_at: datetime,
    ) -> DeliveryStatus:
        """Log the attempt and move the delivery on: delivered, disabled (410), failed
        (``retry_at`` is past its give-up time) or pending until ``retry_at``. Fenced on
        the attempt number, so a dispatcher whose lease ran out changes nothing."""
        d = webhook_deliveries
        error = outcome.error[:ERROR_CHARS] if outcome.error else None
        values: dict[str, Any] = {
            "last_status_code": outcome.status_code,
            "last_error": error,
            "next_attempt_at": None,
        }
        if outcome.ok:
            status = DeliveryStatus.DELIVERED
            values["delivered_at"] = now
        elif outcome.gone:
            status = DeliveryStatus.DISABLED
        elif delivery.give_up_at is not None and retry_at > delivery.give_up_at:
            status = DeliveryStatus.FAILED
        else:
            status = DeliveryStatus.PENDING
            values["next_attempt_at"] = retry_at
        values["status"] = status.value

        def run(conn: Connection) -> DeliveryStatus:
            moved = conn.execute(
                update(d)
                .where(
                    d.c.id == delivery.id,
                    d.c.status == PENDING,
                    d.c.attempts == delivery.attempts,
                )
                .values(**values)
            ).rowcount
            if not moved:
                return status
            conn.execute(
                insert(webhook_attempts).values(
                    delivery_id=delivery.id,
                    attempt=delivery.attempts,
                    at=now,
                    status_code=outcome.status_code,
                    error=error,
                    duration_ms=outcome.duration_ms,
                )
            )
            if outcome.gone:
                reason = (
                    f"the receiver answered 410 Gone at {now.isoformat()} "
                    f"(job {delivery.job_id}, delivery {delivery.id})"
                )
                upsert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
                conn.execute(
                    upsert(webhook_disabled)
                    .values(
                        owner_id=delivery.owner_id,
                        url=delivery.url,
                        reason=reason,
                        disabled_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["owner_id", "url"])
                )
            return status

        return await self._db.write(run)

    async def for_job(self, job_id: str) -> list[Delivery]:
        """A job's deliveries, oldest first, each with its attempts."""
        d, a = webhook_deliveries, webhook_attempts

        def run(conn: Connection) -> list[Delivery]:
            rows = conn.execute(
                select(d).where(d.c.job_id == job_id).order_by(d.c.created_at, d.c.id)
            ).all()
            logs = conn.execute(
                select(a)
                .where(a.c.delivery_id.in_([r.id for r in rows]))
                .order_by(a.c.delivery_id, a.c.attempt, a.c.id)
            ).all()
            return [
                delivery_from_row(
                    r,
                    tuple(delivery_attempt_from_row(x) for x in logs if x.delivery_id == r.id),
                )
                for r in rows
            ]

        return await self._db.read(run)

    async def redeliver(
        self, job_id: str, *, now: datetime, delivery_id: str | None = None
    ) -> list[str]:
        """Due again at once, with a fresh retry window and the same ``webhook-id``. An
        explicit redelivery re-enables an endpoint a 410 had disabled."""
        d = webhook_deliveries
        where = [d.c.job_id == job_id]
        if delivery_id is not None:
            where.append(d.c.id == delivery_id)

        def run(conn: Connection) -> list[str]:
            rows = conn.execute(
                update(d)
                .where(*where)
                .values(status=PENDING, next_attempt_at=now, give_up_at=None)
                .returning(d.c.id, d.c.owner_id, d.c.url)
            ).all()
            for row in rows:
                conn.execute(
                    delete(webhook_disabled).where(
                        webhook_disabled.c.owner_id == row.owner_id,
                        webhook_disabled.c.url == row.url,
                    )
                )
            return [r.id for r in rows]

        return await self._db.write(run)

    async def disabled(self, owner_id: str) -> dict[str, str]:
        """The owner's endpoints shut by a 410, with why."""

        def run(conn: Connection) -> dict[str, str]:
            rows = conn.execute(
                select(webhook_disabled.c.url, webhook_disabled.c.reason).where(
                    webhook_disabled.c.owner_id == owner_id
                )
            ).all()
            return {r.url: r.reason for r in rows}

        return await self._db.read(run)
