"""CSRF on requests a cookie authenticates; CORS for other sites' pages, bearer only."""

from __future__ import annotations

from tests.integration.api.auth.conftest import as_visitor, make_key
from tests.integration.conftest import GatewayFactory, RunningGateway

SUBMIT = "/v1/workflows/image-ops/jobs"
BODY: dict[str, object] = {"params": {}}


async def test_a_cookie_request_needs_the_token_or_our_origin(locked: RunningGateway) -> None:
    async with locked.client() as c:
        await as_visitor(c)
        token = c.headers.pop("x-csrf-token")
        bare = await c.post(SUBMIT, json=BODY)
        assert bare.status_code == 403 and bare.json()["error"]["code"] == "csrf_failed"
        wrong = await c.post(SUBMIT, json=BODY, headers={"x-csrf-token": token + "x"})
        assert wrong.status_code == 403
        foreign = await c.post(SUBMIT, json=BODY, headers={"origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert (await c.post(SUBMIT, json=BODY, headers={"x-csrf-token": token})).status_code == 202
        same = await c.post(SUBMIT, json=BODY, headers={"origin": locked.url})
        assert same.status_code == 202
        # Reads need neither: a cross-site page cannot read the answer anyway.
        assert (await c.get("/v1/jobs")).status_code == 200


async def test_the_admin_cookie_needs_it_too(locked: RunningGateway) -> None:
    async with locked.client() as c:
        await as_visitor(c)
        signed = await c.post("/v1/admin/session", json={"token": locked.settings.admin_key()})
        assert signed.status_code == 204
        token = c.headers.pop("x-csrf-token")
        job = (await c.post(SUBMIT, json=BODY, headers={"x-csrf-token": token})).json()
        r = await c.post(f"/v1/admin/jobs/{job['id']}/cancel")
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
        r = await c.post(f"/v1/admin/jobs/{job['id']}/cancel", headers={"x-csrf-token": token})
        assert r.status_code == 202, r.text


async def test_a_bearer_key_needs_no_csrf_proof(locked: RunningGateway) -> None:
    key = await make_key(locked, "site", "jobs:write")
    async with locked.client(headers={**key.headers, "origin": "https://other.example"}) as c:
        assert (await c.post(SUBMIT, json=BODY)).status_code == 202


async def test_anonymous_use_refuses_other_sites(start_gateway: GatewayFactory) -> None:
    rg = await start_gateway(allow_anonymous=True, public_site=False)
    async with rg.client() as c:
        assert (await c.post(SUBMIT, json=BODY)).status_code == 202  # curl sends no Origin
        r = await c.post(SUBMIT, json=BODY, headers={"origin": "https://evil.example"})
        assert r.status_code == 403


async def test_cors_lets_a_listed_site_call_with_keys_but_never_cookies(
    start_gateway: GatewayFactory,
) -> None:
    site = "https://app.example"
    rg = await start_gateway(allow_anonymous=False, cors_origins=[site])
    key = await make_key(rg, "site", "jobs:write", "jobs:read")
    async with rg.client() as c:
        pre = await c.options(
            SUBMIT,
            headers={
                "origin": site,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == site
        assert "access-control-allow-credentials" not in pre.headers
        r = await c.post(SUBMIT, json=BODY, headers={**key.headers, "origin": site})
        assert r.status_code == 202
        assert r.headers["access-control-allow-origin"] == site
        other = await c.options(
            SUBMIT,
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers
