"""0009: worker tokens become API keys with the worker scope, secrets unchanged."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, text

from comfygate.store.engine import open_database
from comfygate.store.migrate import alembic_config


async def test_worker_tokens_become_worker_keys(empty_database_url: str) -> None:
    db = open_database(empty_database_url)
    try:

        def upgrade_to_0007(conn: Connection) -> None:
            command.upgrade(alembic_config(conn), "0007")

        def seed(conn: Connection) -> None:
            conn.execute(
                text(
                    "INSERT INTO worker_tokens VALUES "
                    "('t1', 'gpu-1', 'fast', :h1, CURRENT_TIMESTAMP, NULL), "
                    "('t2', 'gpu-2', NULL, :h2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"h1": "a" * 64, "h2": "b" * 64},
            )

        def upgrade_to_head(conn: Connection) -> None:
            command.upgrade(alembic_config(conn), "head")

        def keys(conn: Connection) -> list[tuple[object, ...]]:
            rows = conn.execute(
                text(
                    "SELECT id, name, scopes, pool, secret_hash, revoked_at IS NULL "
                    "FROM api_keys ORDER BY id"
                )
            )
            return [tuple(r) for r in rows]

        await db.write(upgrade_to_0007)
        await db.write(seed)
        await db.write(upgrade_to_head)
        assert await db.read(keys) == [
            ("t1", "gpu-1", "worker", "fast", "a" * 64, True),
            ("t2", "gpu-2", "worker", None, "b" * 64, False),
        ]
    finally:
        await db.dispose()
