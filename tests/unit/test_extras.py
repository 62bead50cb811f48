"""The default install runs without the optional extras, and a setting that needs one
stops the command with one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comfygate.cli import app
from comfygate.extras import MODULES

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def test_the_gateway_and_its_commands_import_no_extra() -> None:
    # A fresh interpreter: this one has the extras loaded by other tests.
    code = (
        "import sys\n"
        "import comfygate.cli, comfygate.gateway, comfygate.serve, comfygate.api.app\n"
        f"extra = {sorted({m for ms in MODULES.values() for m in ms})!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in extra))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("variable", "value", "missing", "extra", "command"),
    [
        ("DATABASE_URL", "postgresql+asyncpg://u@127.0.0.1:1/db", "asyncpg", "postgres", "serve"),
        # the admin commands open the database without building a gateway
        ("DATABASE_URL", "postgresql+asyncpg://u@127.0.0.1:1/db", "asyncpg", "postgres", "db"),
        ("BROKER_URL", "redis://127.0.0.1:1/0", "redis", "redis", "serve"),
        ("STORAGE_URL", "s3://bucket/prefix", "obstore", "s3", "serve"),
        ("STORAGE_URL", "s3://bucket/prefix", "botocore", "s3", "serve"),
    ],
)
def test_a_setting_without_its_extra_ends_the_command_with_one_line_naming_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    missing: str,
    extra: str,
    command: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # no comfygate.toml of the caller's
    monkeypatch.setenv(f"COMFYGATE_{variable}", value)
    # None in sys.modules makes an import of that name fail, as if it were not installed.
    monkeypatch.setitem(sys.modules, missing, None)
    args = {
        "serve": ["serve", "--workflows", str(WORKFLOWS), "--port", "0"],
        "db": ["db", "upgrade"],
    }[command]
    result = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 2, result.output
    said = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    setting = variable.lower()
    assert said == [
        f"comfygate: {setting} needs the {extra} extra, which is not installed: "
        f"pip install 'comfygate[{extra}]'"
    ]
    assert result.stdout == "" and "Traceback" not in result.output
