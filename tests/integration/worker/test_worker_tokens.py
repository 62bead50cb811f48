"""Worker tokens: hashed at rest, shown once, revocable, from the CLI."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from sqlalchemy import Connection, select
from typer.testing import CliRunner

from comfygate.cli import app
from comfygate.clock import SYSTEM_CLOCK
from comfygate.config import load_settings
from comfygate.store import open_store
from comfygate.store.tables import worker_tokens
from comfygate.store.worker_tokens import SqlWorkerTokens
from comfygate.worker.tokens import WorkerTokens


def test_the_cli_creates_lists_and_revokes_tokens(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    made = runner.invoke(app, ["worker-token", "create", "gpu-1", "--pool", "fast", *data])
    assert made.exit_code == 0, made.output
    token_id = made.output.split()[0]
    secret = made.output.rsplit("secret (shown once): ", 1)[1].strip()
    assert secret.startswith("cgw_")

    listed = runner.invoke(app, ["worker-token", "list", *data])
    assert token_id in listed.output and "pool=fast" in listed.output
    assert secret not in listed.output

    async def check() -> None:
        store = await open_store(load_settings(None, data_dir=tmp_path).db_url, clock=SYSTEM_CLOCK)
        try:

            def hashes(conn: Connection) -> list[str]:
                return list(conn.execute(select(worker_tokens.c.secret_hash)).scalars())

            # Only the hash is kept: the database alone hands out no working token.
            assert await store.db.read(hashes) == [hashlib.sha256(secret.encode()).hexdigest()]
            tokens = WorkerTokens(SqlWorkerTokens(store.db), SYSTEM_CLOCK)
            found = await tokens.resolve(secret)
            assert found is not None and found.id == token_id and found.pool == "fast"
            assert found.principal().kind == "worker"
            assert await tokens.resolve(secret + "x") is None
        finally:
            await store.close()

    asyncio.run(check())
    assert runner.invoke(app, ["worker-token", "revoke", token_id, *data]).exit_code == 0
    again = runner.invoke(app, ["worker-token", "revoke", token_id, *data])
    assert again.exit_code == 1
    assert "revoked" in runner.invoke(app, ["worker-token", "list", *data]).output
