"""Alembic, run programmatically: on start (the default) or with ``comfygate db upgrade``.

Several gateways may start at once against one PostgreSQL: they migrate one at a time
under an advisory lock, and the later ones find the schema at head. A gateway refuses to
start against a schema it does not know (newer code migrated it) or, when told not to
migrate, against one that is behind.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, text

from comfygate.store.engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"
#: one key for every comfygate process: "comfy" in ASCII
MIGRATION_LOCK = 0x636F6D6679


class SchemaMismatch(RuntimeError):
    """The database's schema is not the one this comfygate runs on."""


def alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _state(connection: Connection) -> tuple[str | None, str, bool]:
    """(the database's revision, this code's head, whether this code knows the former)."""
    script = ScriptDirectory.from_config(alembic_config(connection))
    head = script.get_current_head()
    assert head is not None
    current = MigrationContext.configure(connection).get_current_revision()
    try:
        known = current is None or script.get_revision(current) is not None
    except CommandError:
        known = False
    return current, head, known


def _refuse_unknown(current: str | None, head: str, known: bool) -> None:
    if not known:
        raise SchemaMismatch(
            f"the database schema is at revision {current}, which this comfygate does not "
            f"know (its newest is {head}): a newer comfygate migrated it; upgrade comfygate"
        )


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Held until this transaction ends: concurrent starts migrate one after another.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    _refuse_unknown(*_state(connection))
    command.upgrade(alembic_config(connection), "head")


def _check(connection: Connection) -> None:
    current, head, known = _state(connection)
    _refuse_unknown(current, head, known)
    if current != head:
        raise SchemaMismatch(
            f"the database schema is at revision {current or 'none'}, behind this "
            f"comfygate's {head}: run `comfygate db upgrade` (or start with "
            "migrate_on_start = true)"
        )


async def upgrade(db: Database) -> None:
    await db.write(_upgrade)


async def check(db: Database) -> None:
    await db.read(_check)


async def current_revision(db: Database) -> tuple[str | None, str]:
    """(the database's revision, this code's head)."""
    current, head, _ = await db.read(_state)
    return current, head
