"""The migrations produce exactly the tables the code declares."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from comfygate.store import SqlJobStore
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
