"""No identity, no access; keys carry scopes; the public site hands out visitors."""

from __future__ import annotations

from tests.integration.api.auth.conftest import as_visitor, make_key
from tests.integration.conftest import GatewayFactory, RunningGateway


async def test_no_credentials_is_a_401_json_error(locked: RunningGateway) -> None:
    async with locked.client() as c:
        for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/workflows/image-ops/jobs")):
            r = await c.request(method, path, json={"params": {}})
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "unauthorized"
            assert "keys create" in r.json()["error"]["message"]


async def test_allow_anonymous_shares_one_local_principal(
    start_gateway: GatewayFactory,
) -> None:
    rg = await start_gateway(allow_anonymous=True, public_site=False)
    async with rg.client() as a, rg.client() as b:
        r = await a.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        assert r.status_code == 202, r.text
        assert r.json()["id"] in {j["id"] for j in (await b.get("/v1/jobs")).json()["jobs"]}
        # The page issues no visitor identity without the public site.
        page = await a.get("/")
        assert "comfygate_visitor" not in page.headers.get("set-cookie", "")


async def test_a_closed_site_issues_no_visitors(start_gateway: GatewayFactory) -> None:
    rg = await start_gateway(allow_anonymous=False, public_site=False)
    async with rg.client() as c:
        page = await c.get("/")
        assert page.status_code == 404 and "not open to the public" in page.text
        assert "comfygate_visitor" not in page.headers.get("set-cookie", "")
        assert (await c.get("/admin")).status_code == 200  # the operators' page stays


async def test_the_visitor_cookie_is_httponly_lax_and_secure_over_https(
    locked: RunningGateway,
) -> None:
    async with locked.client() as c:
        plain = (await c.get("/")).headers.get_list("set-cookie")
    [visitor] = [h for h in plain if h.startswith("comfygate_visitor=")]
    assert "httponly" in visitor.lower() and "samesite=lax" in visitor.lower()
    assert "secure" not in visitor.lower()
    # X-Forwarded-Proto is believed only from a trusted proxy, loopback included.
    async with locked.client(headers={"x-forwarded-proto": "https"}) as c:
        forged = (await c.get("/")).headers.get_list("set-cookie")
    [visitor] = [h for h in forged if h.startswith("comfygate_visitor=")]
    assert "secure" not in visitor.lower()


async def test_behind_a_trusted_tls_proxy_the_visitor_cookie_is_secure(
    start_gateway: GatewayFactory,
) -> None:
    proxied = await start_gateway(
        allow_anonymous=False, public_site=True, trusted_proxies=["127.0.0.1/32"]
    )
    async with proxied.client(headers={"x-forwarded-proto": "https"}) as c:
        tls = (await c.get("/")).headers.get_list("set-cookie")
    [visitor] = [h for h in tls if h.startswith("comfygate_visitor=")]
    assert "secure" in visitor.lower()


async def test_each_scope_grants_only_its_calls(locked: RunningGateway) -> None:
    writer = await make_key(locked, "w", "jobs:write")
    reader = await make_key(locked, "r", "jobs:read")
    raw = await make_key(locked, "raw", "raw")
    async with (
        locked.client(headers=writer.headers) as w,
        locked.client(headers=reader.headers) as r,
        locked.client(headers=raw.headers) as x,
    ):
        made = await w.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        assert made.status_code == 202, made.text
        job = made.json()
        assert (await w.get(f"/v1/jobs/{job['id']}")).status_code == 403
        denied = await r.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        assert denied.status_code == 403 and "jobs:write" in denied.text
        # raw is reserved: accepted at creation, it grants nothing yet
        assert (await x.get("/v1/jobs")).status_code == 403
        assert (await x.post("/v1/workflows/image-ops/jobs", json={})).status_code == 403


async def test_a_key_owns_its_jobs_and_a_revoked_key_is_refused(locked: RunningGateway) -> None:
    _, secret = await locked.gw.api_keys.create("site", frozenset({"jobs:read", "jobs:write"}))
    [key] = await locked.gw.api_keys.list()
    async with locked.client(headers={"authorization": f"Bearer {secret}"}) as c:
        made = await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})
        assert made.status_code == 202
        job = await locked.gw.store.get_job(made.json()["id"])
        assert job is not None and job.owner_id == key.id
        assert await locked.gw.api_keys.revoke(key.id)
        r = await c.get("/v1/jobs")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    async with locked.client(headers={"authorization": "Bearer cgk_made_up"}) as c:
        assert (await c.get("/v1/jobs")).status_code == 401


async def test_an_admin_key_opens_the_admin_api_and_signs_in_to_the_dashboard(
    locked: RunningGateway,
) -> None:
    admin = await make_key(locked, "ops", "admin")
    async with locked.client(headers=admin.headers) as c:
        assert (await c.get("/v1/admin/stats")).status_code == 200
    secret = admin.headers["authorization"].split()[1]
    async with locked.client() as browser:
        r = await browser.post("/v1/admin/session", json={"token": secret})
        assert r.status_code == 204, r.text
        assert (await browser.get("/v1/admin/session")).status_code == 200
        assert (await browser.get("/v1/admin/stats")).status_code == 200
        assert 'id="dashboard" hidden' not in (await browser.get("/admin")).text
        # Revoking the key signs out the sessions it bought; the token's stay.
        [key] = [k for k in await locked.gw.api_keys.list() if k.name == "ops"]
        assert await locked.gw.api_keys.revoke(key.id)
        assert (await browser.get("/v1/admin/session")).status_code == 401
        assert (await browser.get("/v1/admin/stats")).status_code == 401
        assert 'id="dashboard" hidden' in (await browser.get("/admin")).text
    async with locked.client() as browser:
        signed = {"token": locked.settings.admin_key()}
        assert (await browser.post("/v1/admin/session", json=signed)).status_code == 204
        assert (await browser.get("/v1/admin/stats")).status_code == 200
    plain = await make_key(locked, "site", "jobs:read")
    async with locked.client() as browser:
        token = plain.headers["authorization"].split()[1]
        assert (await browser.post("/v1/admin/session", json={"token": token})).status_code == 401


async def test_a_visitor_cookie_counts_only_with_the_public_site(
    start_gateway: GatewayFactory,
) -> None:
    rg = await start_gateway(allow_anonymous=False, public_site=True)
    async with rg.client() as c:
        await as_visitor(c)
        assert (await c.get("/v1/jobs")).status_code == 200
    await rg.stop()
    closed = await start_gateway(allow_anonymous=False, public_site=False)
    async with closed.client(cookies=dict(c.cookies)) as c2:
        assert (await c2.get("/v1/jobs")).status_code == 401
