"""The suite's own settings end a hung test: pytest run as CI runs it, on a test that
never returns, fails and names the test instead of waiting for CI's limit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

HUNG = """
import asyncio

import pytest


@pytest.mark.timeout(2)
async def test_waits_forever() -> None:
    await asyncio.Event().wait()
"""


@pytest.mark.timeout(120)
def test_a_hung_test_fails_the_run_within_its_timeout(tmp_path: Path) -> None:
    (tmp_path / "test_hung.py").write_text(HUNG)
    run = subprocess.run(
        # The repository's own settings and hooks, the hung file alone.
        [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "-q",
         "-p", "tests.conftest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         str(tmp_path / "test_hung.py")],
        capture_output=True, text=True, timeout=100, cwd=ROOT,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "Timeout" in out, out
    assert "test_hung.py::test_waits_forever: still running" in out, out
