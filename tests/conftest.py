from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from tests import services
from tests.s3server import s3_server

__all__ = ["no_proxy_env", "s3_server"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    services.report(terminalreporter)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Name a test about to reach its timeout: pytest-timeout's thread method ends the
    run with every thread's stack, and a stuck event loop's stack names no test."""
    marker = item.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker else float(item.config.getini("timeout"))
    warn = threading.Timer(
        limit * 0.9,
        lambda: print(f"\n{item.nodeid}: still running at 90% of its {limit:.0f} s timeout",
                      file=sys.__stderr__, flush=True),
    )  # fmt: skip
    warn.daemon = True
    warn.start()
    try:
        yield
    finally:
        warn.cancel()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variables, whatever the machine running the tests sets."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
