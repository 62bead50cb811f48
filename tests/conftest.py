from __future__ import annotations

import pytest

from tests import services
from tests.s3server import s3_server

__all__ = ["no_proxy_env", "s3_server"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    services.report(terminalreporter)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variables, whatever the machine running the tests sets."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
