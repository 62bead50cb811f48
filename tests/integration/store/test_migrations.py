"""The migrations produce exactly the tables the code declares."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Select, inspect, text
from sqlalchemy.dialects import postgresql

from comfygate.clock import FakeClock
from comfygate.store import SqlJobStore, migrate, open_store
from comfygate.store.database import schema_revision, upgrade_schema
from comfygate.store.migrate import SchemaMismatch
from comfygate.store.sql import expired_leases, next_claimable
from comfygate.store.tables import metadata


def _name(change: Any) -> str | None:
    item = change[1] if isinstance(change, tuple) and len(change) > 1 else None
    return getattr(item, "name", None)


async def test_upgrade_head_matches_the_metadata(store: SqlJobStore) -> None:
    def diff(conn: Connection) -> tuple[list[Any], set[str]]:
        changes = list(compare_metadata(MigrationContext.configure(conn), metadata))
        indexes = {str(i["name"]) for i in inspect(conn).get_indexes("jobs")}
        return changes, indexes

    changes, indexes = await store.db.read(diff)
    # Alembic cannot compare expression indexes ("priority DESC"); check that one by name.
    assert [c for c in changes if _name(c) != "jobs_claim"] == []
    assert {
        "jobs_claim",
        "jobs_leases",
        "jobs_owner",
        "jobs_owner_changes",
        "jobs_finished",
    } <= indexes


async def test_gateways_starting_together_migrate_once(empty_database_url: str) -> None:
    stores = await asyncio.gather(
        *(open_store(empty_database_url, clock=FakeClock()) for _ in range(3))
    )
    try:
        current, head = await migrate.current_revision(stores[0].db)
        assert current == head
    finally:
        for s in stores:
            await s.close()


async def test_a_schema_behind_or_unknown_is_refused_with_a_clear_message(
    empty_database_url: str,
) -> None:
    with pytest.raises(SchemaMismatch, match="comfygate db upgrade"):
        await open_store(empty_database_url, clock=FakeClock(), migrate_first=False)
    before, head = await upgrade_schema(empty_database_url)
    assert before is None
    store = await open_store(empty_database_url, clock=FakeClock(), migrate_first=False)
    await store.db.write(
        lambda conn: conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    )
    await store.close()
    with pytest.raises(SchemaMismatch, match="does not know"):
        await open_store(empty_database_url, clock=FakeClock())
    assert await schema_revision(empty_database_url) == ("f00d", head)


@pytest.mark.postgres
async def test_claim_and_rescue_read_their_indexes(pg_database: str) -> None:
    """On a seeded table, PostgreSQL plans the claim through jobs_claim and the rescue
    through jobs_leases (pgqueuer's query-plan regression test)."""
    store = await open_store(pg_database, clock=FakeClock())
    now = datetime(2026, 1, 1, tzinfo=UTC)

    def seed(conn: Connection) -> None:
        conn.execute(text("TRUNCATE job_events, job_attempts, jobs, workflow_versions CASCADE"))
        conn.execute(text("INSERT INTO workflow_versions VALUES ('v1', 'wf', '{}', '{}', now())"))
        conn.execute(
            text(
                "INSERT INTO jobs (id, owner_id, workflow, workflow_version, pool, status,"
                " priority, fair_key, attempts, max_attempts, timeout_s, params, metadata,"
                " inputs, outputs, last_seq, lease_expires_at, created_at, updated_at)"
                " SELECT lpad(i::text, 36, '0'), 'o' || (i % 7), 'wf', 'v1',"
                " 'p' || (i % 5), CASE WHEN i % 10 = 0 THEN 'queued'"
                " WHEN i % 10 = 1 THEN 'running' ELSE 'succeeded' END, 5, i, 1, 3, 60,"
                " '{}', '{}', '[]', '[]', 1,"
                " CASE WHEN i % 10 = 1 THEN now() END, now(), now()"
                " FROM generate_series(1, 20000) AS i"
            )
        )
        conn.execute(text("ANALYZE jobs"))

    def explain(query: Select[Any]) -> Callable[[Connection], str]:
        pg = postgresql.dialect()  # type: ignore[no-untyped-call]
        sql = query.compile(dialect=pg, compile_kwargs={"literal_binds": True})
        return lambda conn: json.dumps(conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).scalar())

    try:
        await store.db.write(seed)
        claim_plan = await store.db.read(
            explain(next_claimable("p1", now, avoid="http://a", models=frozenset({"m.ckpt"})))
        )
        # As the store runs it: against the database's now() (lease times come from the
        # database's clock); a volatile clock_timestamp() would lose the index.
        rescue_plan = await store.db.read(explain(expired_leases(store.lease_now(now), 100)))
    finally:
        await store.db.write(lambda conn: conn.execute(text("TRUNCATE jobs CASCADE")))
        await store.close()
    assert '"Index Name": "jobs_claim"' in claim_plan, claim_plan
    assert '"Index Name": "jobs_leases"' in rescue_plan, rescue_plan
    assert "now()" in rescue_plan, rescue_plan
