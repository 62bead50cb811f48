"""One rule for a test whose service is not here (PostgreSQL, Redis, S3, Chromium):
under ``CI=true`` the test fails, since CI must run every suite; elsewhere it skips, and
the run ends with one line per missing service saying why."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

CI = os.environ.get("CI", "").lower() == "true"

#: service -> the first reason it was missing, for the run's closing lines
missing: dict[str, str] = {}


def unavailable(service: str, reason: str) -> NoReturn:
    """End the calling test: a failure in CI, a skip elsewhere."""
    missing.setdefault(service, reason)
    if CI:
        pytest.fail(f"{service} is needed under CI=true: {reason}", pytrace=False)
    pytest.skip(f"{service}: {reason}")


def report(terminal: pytest.TerminalReporter) -> None:
    for service, reason in missing.items():
        terminal.write_line(f"skipped every test that needs {service}: {reason}")
