"""The command line when what it needs is missing or damaged: one line, no traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comfygate.cli import app
from tests.integration.conftest import WORKFLOWS


def truncated(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def not_a_database(db: Path) -> None:
    db.write_bytes(b"these are not the pages of a database\n" * 200)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no comfygate.toml of the caller's
    data = tmp_path / "data"
    made = CliRunner().invoke(app, ["db", "upgrade", "--data-dir", str(data)])
    assert made.exit_code == 0, made.output
    return data


@pytest.mark.parametrize("damage", [truncated, not_a_database])
@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--workflows", str(WORKFLOWS), "--port", "0"],
        ["db", "current"],
        ["db", "upgrade"],
        ["keys", "list"],
        ["budgets", "list"],
    ],
    ids=lambda c: " ".join(c[:2]) if c[0] != "serve" else "serve",
)
def test_a_damaged_database_gets_one_line_naming_the_file_and_what_to_do(
    data_dir: Path, damage: Callable[[Path], None], command: list[str]
) -> None:
    db = data_dir / "comfygate.db"
    damage(db)
    result = CliRunner().invoke(app, [*command, "--data-dir", str(data_dir)])
    assert result.exit_code == 2, result.output
    said = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert len(said) == 1, result.stderr
    assert said[0].startswith(f"comfygate: the database {db} is damaged (")
    assert "restore it from a backup" in said[0] and "move it aside" in said[0]
    assert result.stdout == "" and "Traceback" not in result.output


def test_serve_without_a_workflows_folder_says_how_to_name_one(data_dir: Path) -> None:
    # As when `comfygate demo` or `serve` is started from another directory.
    missing = data_dir.parent / "no-workflows-here"
    result = CliRunner().invoke(
        app, ["serve", "--workflows", str(missing), "--port", "0", "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 2, result.output
    said = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert len(said) == 1, result.stderr
    assert "workflows folder not found" in said[0] and "--workflows DIR" in said[0]
    assert "Traceback" not in result.output
