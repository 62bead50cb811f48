from __future__ import annotations

import pytest

from tests.s3server import s3_server

__all__ = ["no_proxy_env", "s3_server"]


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variables, whatever the machine running the tests sets."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
