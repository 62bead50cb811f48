"""How a store function reaches the database: one call per transaction.

Store code is written once, as plain functions over a SQLAlchemy ``Connection``; a
``Database`` runs each whole function as one transaction.

SQLite runs them on the stdlib driver in threads of our own (``comfygate.threads``),
each holding its connection: one writer thread (so writes queue in order instead of
failing with SQLITE_BUSY, and ``BEGIN IMMEDIATE`` takes the lock before the first read)
and a few reader threads. An async driver for SQLite (aiosqlite) hops to its thread
and back for every statement and fetch; one hop per transaction made a write
transaction 4x and a read 3x cheaper here.

PostgreSQL keeps its async driver (asyncpg) and runs the same functions through
``AsyncConnection.run_sync``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from comfygate import extras
from comfygate.errors import DatabaseBusy, DatabaseDamaged
from comfygate.threads import Lane

T = TypeVar("T")

MIN_SQLITE = (3, 35, 0)  # UPDATE … RETURNING
#: result codes of a file SQLite cannot read as a database (https://sqlite.org/rescode.html)
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
SQLITE_READERS = 4
#: ``Connection.info`` key: a statement of the current call has completed
_COMPLETED = "comfygate.completed"


class Database(Protocol):
    @property
    def dialect(self) -> str: ...

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one write transaction; it commits when ``fn`` returns."""
        ...

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on a connection for reads (each statement sees committed data)."""
        ...

    async def dispose(self) -> None: ...

    @property
    def statements(self) -> int:
        """Statements sent since the database was opened (BEGIN and COMMIT not counted):
        what the store costs the database, for benchmarks."""
        ...


class StatementCounter:
    """Counts the statements of the engines it watches, from any thread."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def watch(self, engine: Engine) -> None:
        @event.listens_for(engine, "before_cursor_execute")
        def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if not statement.startswith("BEGIN"):
                with self._lock:
                    self.value += 1


class SqliteDatabase:
    dialect = "sqlite"

    def __init__(self, url: str) -> None:
        writer = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
        # Reads are single statements or tolerate statement-level snapshots: SQLite's
        # autocommit gives each statement a consistent view without a BEGIN.
        reader = _sqlite_engine(url, begin=None, pool_size=SQLITE_READERS)
        self._engines = (writer, reader)
        self._counter = StatementCounter()
        self._counter.watch(writer)
        self._counter.watch(reader)
        # Each thread keeps its connection: a pool checkout per transaction cost more
        # than the query.
        self._write_lane = Lane(1, "sqlite-writer", writer.connect, _close)
        self._read_lane = Lane(SQLITE_READERS, "sqlite-reader", reader.connect, _close)

    @property
    def statements(self) -> int:
        return self._counter.value

    async def write(self, fn: Callable[[Connection], T]) -> T:
        lane = self._write_lane

        def run() -> T:
            conn: Connection = lane.resource()
            with conn.begin():
                return fn(conn)

        return await lane.run(run)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        lane = self._read_lane

        def run() -> T:
            conn: Connection = lane.resource()
            try:
                return fn(conn)
            finally:
                conn.rollback()  # ends SQLAlchemy's transaction; SQLite had none open

        return await lane.run(run)

    async def dispose(self) -> None:
        await self._write_lane.close()
        await self._read_lane.close()
        for engine in self._engines:
            engine.dispose()


def _close(conn: Connection) -> None:
    conn.close()


class _RanNothing(Exception):
    """A call's connection was found dead before any of its statements completed."""


class AsyncDatabase:
    """A database with an async driver: PostgreSQL through asyncpg.

    Round trips are what a transaction costs here, in the gateway and in the server
    alike. SQLAlchemy's ``pool_pre_ping`` spends three on every checkout (asyncpg's
    ping runs BEGIN, a query and ROLLBACK), so a stale pooled connection is found by
    use instead: a call whose connection turns out dead before any statement of it
    completed ran nothing, and runs once more on a fresh one. Reads run in autocommit:
    at READ COMMITTED a transaction gives a read no steadier view (each statement
    takes its own snapshot), only a BEGIN and a ROLLBACK more.
    """

    def __init__(
        self, url: str, *, pool_size: int = 10, max_overflow: int = 10, pool_timeout_s: float = 30
    ) -> None:
        self._engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout_s,
            hide_parameters=True,
        )
        self._reader = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._counter = StatementCounter()
        self._counter.watch(self._engine.sync_engine)

        @event.listens_for(self._engine.sync_engine, "after_cursor_execute")
        def _done(conn: Connection, *_args: Any) -> None:
            conn.info[_COMPLETED] = True

    @property
    def statements(self) -> int:
        return self._counter.value

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def write(self, fn: Callable[[Connection], T]) -> T:
        async def once(conn: AsyncConnection) -> T:
            async with conn.begin():
                return await conn.run_sync(fn)

        return await self._run(self._engine, once)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        async def once(conn: AsyncConnection) -> T:
            return await conn.run_sync(fn)

        return await self._run(self._reader, once)

    async def _run(self, engine: AsyncEngine, once: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        try:
            return await self._once(engine, once, may_retry=True)
        except _RanNothing:
            # The pool dropped every connection older than the dead one.
            return await self._once(engine, once, may_retry=False)

    async def _once(
        self,
        engine: AsyncEngine,
        once: Callable[[AsyncConnection], Awaitable[T]],
        *,
        may_retry: bool,
    ) -> T:
        async with self._connection(engine) as conn:
            info = conn.info
            info[_COMPLETED] = False
            try:
                return await once(conn)
            except sa_exc.DBAPIError as exc:
                # A COMMIT lost with its connection may have landed: only a call that
                # completed no statement is surely safe to run again.
                if may_retry and exc.connection_invalidated and not info.get(_COMPLETED, True):
                    raise _RanNothing from exc
                raise

    @contextlib.asynccontextmanager
    async def _connection(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        try:
            conn = await engine.connect()
        except sa_exc.TimeoutError as exc:  # every pooled connection stayed busy
            raise DatabaseBusy from exc
        try:
            yield conn
        finally:
            await conn.close()

    async def dispose(self) -> None:
        await self._engine.dispose()


def _sqlite_engine(url: str, *, begin: str | None, pool_size: int) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=0, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not BEGIN on its own; we emit our own BEGIN below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=5000")
        _use_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    path = make_url(url).database or ":memory:"

    @event.listens_for(engine, "handle_error")
    def _damaged(context: ExceptionContext) -> None:
        # Raised in place of SQLAlchemy's error, on the first connection as on any later
        # statement: what a person reads is the file and what to do, not driver detail.
        original = context.original_exception
        if isinstance(original, sqlite3.DatabaseError) and _is_damage(original):
            raise DatabaseDamaged(path, str(original)) from original

    if begin is not None:

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    return engine


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """SQLITE_CORRUPT or SQLITE_NOTADB, whatever extended code comes with it."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _use_wal(cursor: Any) -> None:
    """WAL is kept in the file, so only a fresh database switches; that switch needs
    the file to itself and fails at once (no busy wait) while another gateway opens
    it, so it is retried briefly."""
    for _ in range(100):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            time.sleep(0.05)
    cursor.execute("PRAGMA journal_mode=WAL")


def open_database(url: str) -> Database:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise RuntimeError(
                f"SQLite {sqlite3.sqlite_version} is too old: comfygate needs 3.35 or newer"
            )
        # Any SQLite URL (also sqlite+aiosqlite://) runs on the stdlib driver.
        return SqliteDatabase(parsed.set(drivername="sqlite").render_as_string(False))
    if parsed.get_backend_name() == "postgresql":
        # SQLAlchemy would import asyncpg only when connecting, as a traceback.
        extras.require("postgres", "database_url")
    return AsyncDatabase(url)
