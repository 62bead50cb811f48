"""The store contract suite runs on SQLite and on PostgreSQL (a throwaway database)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from comfygate.clock import FakeClock
from comfygate.jobs.model import WorkflowVersion
from comfygate.store import SqlJobStore, open_store
from tests.services import unavailable

PG_HOST = os.environ.get("COMFYGATE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("COMFYGATE_TEST_PG_PORT", "5432")


async def _admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(
        host=PG_HOST, port=int(PG_PORT), user="postgres", database="postgres"
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def throwaway_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for the duration; dropped after."""
    name = f"comfygate_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin_sql(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        unavailable("PostgreSQL", f"{PG_HOST}:{PG_PORT} does not answer: {exc}")
    yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    yield from throwaway_pg_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no comfygate has touched yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        yield from throwaway_pg_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fake_or_database(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """A contract test runs on a fake and on the real store: the real store's database
    URL, or None for the fake."""
    if request.param == "fake":
        return None
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@asynccontextmanager
async def opened_store(database_url: str, clock: FakeClock) -> AsyncIterator[SqlJobStore]:
    """A store on a clean database, holding workflow version ``v1``."""
    # Lease times follow the FakeClock here; the database's clock is tested on its own.
    s = await open_store(database_url, clock=clock, database_clock=False)
    if not database_url.startswith("sqlite"):
        await s.db.write(  # a clean slate per test
            lambda conn: conn.execute(
                text(
                    "TRUNCATE job_events, job_attempts, jobs, idempotency_keys, pool_clocks, "
                    "lease_requests, workflow_versions, webhook_deliveries, webhook_attempts, "
                    "webhook_disabled, budgets, job_charges CASCADE"
                )
            )
        )
    await s.save_workflow_version(
        WorkflowVersion(version="v1", name="wf", graph={}, contract={}, created_at=clock.now())
    )
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def store(database_url: str, clock: FakeClock) -> AsyncIterator[SqlJobStore]:
    async with opened_store(database_url, clock) as s:
        yield s
