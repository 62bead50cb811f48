"""The aiohttp session ComfyClients share (why aiohttp: see ComfyClient), and the
proxy each client takes from the environment."""

from __future__ import annotations

import base64
import ssl
from urllib.request import getproxies, proxy_bypass

import aiohttp
import httpx
from yarl import URL

#: as many connections as the httpx client before it allowed (100)
_LIMIT = 100


def open_session(*, tls: ssl.SSLContext | bool | None = None) -> aiohttp.ClientSession:
    """A session for any number of ComfyClients; open it inside the running loop and
    close it after them. ``tls``: the trusted CAs for https backends; by default
    httpx's bundle (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), as before the
    move, since aiohttp's own default trusts only the system's CAs."""
    if tls is None:
        tls = httpx.create_ssl_context()
    # trust_env stays off: with it aiohttp reads ~/.netrc and the proxy variables on
    # every request, in a thread each time. ComfyClient reads the proxy once instead.
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=_LIMIT, ssl=tls), trust_env=False
    )


def env_proxy(url: str) -> tuple[URL | None, dict[str, str]]:
    """The proxy httpx took from the environment for ``url``, and the headers for it:
    ``HTTP_PROXY`` or ``HTTPS_PROXY`` by scheme, else ``ALL_PROXY``; none when
    ``NO_PROXY`` names the host. Credentials in the proxy URL become Basic auth."""
    target = URL(url)
    if not target.host:
        return None, {}
    port = target.explicit_port
    # With its port, so that NO_PROXY may name "host:port" as well as "host"
    if proxy_bypass(f"{target.host}:{port}" if port else target.host):
        return None, {}
    proxies = getproxies()
    raw = proxies.get(target.scheme) or proxies.get("all")
    if not raw:
        return None, {}
    proxy = URL(raw if "://" in raw else f"http://{raw}")
    if not proxy.user:
        return proxy, {}
    secret = base64.b64encode(f"{proxy.user}:{proxy.password or ''}".encode()).decode()
    return proxy.with_user(None), {"Proxy-Authorization": f"Basic {secret}"}
