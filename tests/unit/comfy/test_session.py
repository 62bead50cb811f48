from __future__ import annotations

import pytest
from yarl import URL

from comfygate.comfy.session import env_proxy

pytestmark = pytest.mark.usefixtures("no_proxy_env")


def test_no_proxy_variables_means_direct() -> None:
    assert env_proxy("http://comfy:8188") == (None, {})


def test_the_proxy_follows_the_scheme_then_all_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "tls-proxy:3128")  # no scheme: http:// as httpx
    monkeypatch.setenv("ALL_PROXY", "http://any:8080")
    assert env_proxy("https://comfy") == (URL("http://tls-proxy:3128"), {})
    assert env_proxy("http://comfy") == (URL("http://any:8080"), {})


def test_credentials_become_a_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://user:secret@proxy:3128")
    proxy, headers = env_proxy("http://comfy")
    assert proxy == URL("http://proxy:3128")
    assert headers == {"Proxy-Authorization": "Basic dXNlcjpzZWNyZXQ="}


@pytest.mark.parametrize("no_proxy", ["*", "comfy.lan", ".lan", "other, comfy.lan:8188"])
def test_no_proxy_names_hosts_that_go_direct(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert env_proxy("http://comfy.lan:8188") == (None, {})
    assert env_proxy("http://elsewhere:8188")[0] == (
        None if no_proxy == "*" else URL("http://proxy:3128")
    )
