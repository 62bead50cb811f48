"""API keys: hashed at rest, shown once, scoped, revocable, from the CLI."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from sqlalchemy import Connection, select
from typer.testing import CliRunner

from comfygate.cli import app
from comfygate.clock import SYSTEM_CLOCK
from comfygate.config import load_settings
from comfygate.keys import ApiKeys
from comfygate.store import open_store
from comfygate.store.api_keys import SqlApiKeys
from comfygate.store.tables import api_keys


def test_the_cli_creates_lists_and_revokes_keys(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    made = runner.invoke(
        app, ["keys", "create", "--name", "site", "--scopes", "jobs:write,jobs:read", *data]
    )
    assert made.exit_code == 0, made.output
    key_id = made.output.split()[0]
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("cgk_") and " " not in secret

    listed = runner.invoke(app, ["keys", "list", *data])
    assert key_id in listed.output and "scopes=jobs:read,jobs:write" in listed.output
    assert secret not in listed.output

    async def check() -> None:
        store = await open_store(load_settings(None, data_dir=tmp_path).db_url, clock=SYSTEM_CLOCK)
        try:

            def hashes(conn: Connection) -> list[str]:
                return list(conn.execute(select(api_keys.c.secret_hash)).scalars())

            # Only the hash is kept: the database alone hands out no working key.
            assert await store.db.read(hashes) == [hashlib.sha256(secret.encode()).hexdigest()]
            keys = ApiKeys(SqlApiKeys(store.db), SYSTEM_CLOCK)
            found = await keys.resolve(secret)
            assert found is not None and found.id == key_id
            assert found.principal().kind == "key" and found.principal().id == key_id
            assert found.principal().scopes == {"jobs:read", "jobs:write"}
            assert await keys.resolve(secret + "x") is None
            [listed] = await keys.list()
            assert listed.last_used_at is not None  # resolving it counted as a use
        finally:
            await store.close()

    asyncio.run(check())
    assert runner.invoke(app, ["keys", "revoke", key_id, *data]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", key_id, *data])
    assert again.exit_code == 1
    assert "revoked" in runner.invoke(app, ["keys", "list", *data]).output


def test_a_worker_key_may_be_bound_to_a_pool(tmp_path: Path) -> None:
    made = CliRunner().invoke(
        app,
        ["keys", "create", "--name", "gpu-1", "--scopes", "worker", "--pool", "fast"],
        env={"COMFYGATE_DATA_DIR": str(tmp_path)},
    )
    assert made.exit_code == 0, made.output
    assert "scopes=worker  pool=fast" in made.output


def test_unknown_scopes_are_refused_naming_the_option(tmp_path: Path) -> None:
    made = CliRunner().invoke(
        app,
        ["keys", "create", "--name", "x", "--scopes", "jobs:write,root"],
        env={"COMFYGATE_DATA_DIR": str(tmp_path)},
    )
    assert made.exit_code == 2
    assert "root" in made.output and "--scopes" in made.output
