"""The broker of a PostgreSQL deployment: the database's own LISTEN/NOTIFY.

One dedicated asyncpg connection per gateway listens on the channel and also sends
(one ``pg_notify`` round trip per batch); the pool of the store is left alone. A
NOTIFY payload must stay under 8,000 bytes, which is why notices carry ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from comfygate.events.broker import BrokerDown, Deliver, backoff_delays

log = logging.getLogger(__name__)

CHANNEL = "comfygate"
#: a probe this often finds a listening connection that died without a word
PROBE_EVERY_S = 30.0
CONNECT_TIMEOUT_S = 10.0
#: how the listening connection shows in pg_stat_activity
APPLICATION_NAME = "comfygate-broker"
#: query parameters of a database URL that are connection options in a DSN too;
#: SQLAlchemy's asyncpg dialect spells sslmode ``ssl``
DSN_OPTIONS = {"ssl": "sslmode", "sslmode": "sslmode", "host": "host", "port": "port"}


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL (``postgresql+asyncpg://…``) as a plain libpq DSN; other
    query parameters are options of SQLAlchemy's, which a DSN would send to the
    server as settings."""
    url = make_url(database_url)
    query = {DSN_OPTIONS[k]: v for k, v in url.query.items() if k in DSN_OPTIONS}
    return url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)


class PgBroker:
    max_bytes = 8000 - 1

    def __init__(self, database_url: str) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._conn: Any = None
        #: an asyncpg connection runs one statement at a time: sends and probes take turns
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self, deliver: Deliver, on_reconnect: Callable[[], None]) -> None:
        self._task = asyncio.create_task(self._listen(deliver, on_reconnect), name="pg-listen")

    async def _listen(self, deliver: Deliver, on_reconnect: Callable[[], None]) -> None:
        delays = backoff_delays()
        connected_before = False
        while True:
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=CONNECT_TIMEOUT_S,
                    server_settings={"application_name": APPLICATION_NAME},
                )
            except Exception as exc:  # down, refused, timed out: all mean try again
                log.warning("broker: cannot reach PostgreSQL (%s); retrying", exc)
                await asyncio.sleep(next(delays))
                continue
            try:
                await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: deliver(payload))
                self._conn = conn
                delays = backoff_delays()
                if connected_before:
                    log.warning("broker: listening on PostgreSQL again")
                    on_reconnect()
                connected_before = True
                await self._watch(conn)
                log.warning("broker: the PostgreSQL listening connection closed")
            except Exception as exc:
                log.warning("broker: lost the PostgreSQL listening connection (%s)", exc)
            finally:
                self._conn = None
                conn.terminate()
            await asyncio.sleep(next(delays))

    async def _watch(self, conn: Any) -> None:
        """Returns when the connection ends; raises when a probe fails."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PROBE_EVERY_S)
            if not lost.is_set():
                async with self._lock:
                    await conn.execute("SELECT 1", timeout=CONNECT_TIMEOUT_S)

    async def send(self, payloads: Sequence[str]) -> None:
        conn = self._conn
        if conn is None:
            raise BrokerDown("not connected to PostgreSQL")
        async with self._lock:
            await conn.execute(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                CHANNEL,
                list(payloads),
                timeout=CONNECT_TIMEOUT_S,
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
