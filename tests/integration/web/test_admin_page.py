"""The ops dashboard's page over HTTP: which half it shows first, and its headers."""

from __future__ import annotations

from comfygate.api.deps import VISITOR_COOKIE
from tests.integration.conftest import RunningGateway


async def test_without_a_session_the_page_shows_the_sign_in_form(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as c:
        r = await c.get("/admin")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    html = r.text
    assert '<section class="signin panel" id="signin" aria-labelledby="signin-title">' in html
    assert '<div class="ops" id="dashboard" hidden>' in html
    assert '<label class="field-label" for="admin-token">Admin token</label>' in html
    assert "/static/js/admin.js?v=" in html
    # An operator's page hands out no visitor identity, and links to no admin page.
    assert VISITOR_COOKIE not in r.headers.get("set-cookie", "")
    assert 'href="/admin"' not in html


async def test_with_a_session_the_page_opens_on_the_dashboard_with_its_filters(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as c:
        signed = await c.post("/v1/admin/session", json={"token": gateway.settings.admin_key()})
        assert signed.status_code == 204
        html = (await c.get("/admin")).text
    async with gateway.client(cookies={"comfygate_admin": "1.9999999999.x.y"}) as c:
        forged = (await c.get("/admin")).text
    assert '<div class="ops" id="dashboard">' in html
    assert 'id="signin" aria-labelledby="signin-title" hidden>' in html
    for status in ("queued", "running", "succeeded", "failed", "canceled", "expired"):
        assert f'<option value="{status}">' in html
    assert '<option value="txt2img">Text to image</option>' in html
    assert '<option value="default">default</option>' in html
    assert '<div class="ops" id="dashboard" hidden>' in forged


async def test_visitor_pages_link_to_the_dashboard_from_the_footer_only(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as c:
        for path in ("/", "/w/txt2img"):
            html = (await c.get(path)).text
            footer = html.split('<footer class="site-footer">', 1)[1]
            assert '<a class="footer-link" href="/admin">Admin</a>' in footer
            assert html.count('href="/admin"') == 1
