from __future__ import annotations

import pytest

from comfygate.events.pg_broker import asyncpg_dsn


@pytest.mark.parametrize(
    ("url", "dsn"),
    [
        ("postgresql+asyncpg://u:p@db:5433/jobs", "postgresql://u:p@db:5433/jobs"),
        (
            "postgresql+asyncpg://u@db/jobs?ssl=require&prepared_statement_cache_size=0",
            "postgresql://u@db/jobs?sslmode=require",
        ),
        # asyncpg reads the query percent-decoded
        (
            "postgresql://u@/jobs?host=/run/postgresql",
            "postgresql://u@/jobs?host=%2Frun%2Fpostgresql",
        ),
    ],
)
def test_the_listening_connection_uses_the_store_database(url: str, dsn: str) -> None:
    assert asyncpg_dsn(url) == dsn
