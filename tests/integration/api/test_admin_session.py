"""Signing in to the admin API: the token, the cookie, and who is refused."""

from __future__ import annotations

from tests.integration.conftest import RunningGateway


async def test_sign_in_sets_a_strict_http_only_cookie_that_opens_the_admin_api(
    gateway: RunningGateway,
) -> None:
    token = gateway.settings.admin_key()
    async with gateway.client() as c:
        assert (await c.get("/v1/admin/session")).status_code == 401
        r = await c.post("/v1/admin/session", json={"token": token})
        assert r.status_code == 204, r.text
        cookie = r.headers["set-cookie"]
        attrs = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert cookie.startswith("comfygate_admin=")
        assert {"httponly", "max-age", "expires", "path"} <= attrs
        assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
        assert "secure" not in attrs  # plain http on loopback
        me = await c.get("/v1/admin/session")
        assert me.status_code == 200, me.text
        assert me.json()["admin"] is True and me.json()["expires_at"]
        assert (await c.get("/v1/admin/backends")).status_code == 200

        out = await c.delete("/v1/admin/session")
        assert out.status_code == 204
        assert "max-age=0" in out.headers["set-cookie"].lower()
        assert (await c.get("/v1/admin/session")).status_code == 401


async def test_wrong_or_missing_token_is_a_401_json_error(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        r = await c.post("/v1/admin/session", json={"token": "nope"})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert "set-cookie" not in r.headers
        r = await c.post("/v1/admin/session", json={})
        assert r.status_code == 422
        assert [d["path"] for d in r.json()["error"]["details"]] == ["/token"]
        r = await c.post("/v1/admin/session", content=b"{not json")
        assert r.status_code == 422


async def test_the_local_principal_no_longer_reaches_admin_routes(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as c:
        job_id = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()["id"]
        for method, path in [
            ("GET", "/v1/admin/backends"),
            ("GET", "/v1/admin/stats"),
            ("GET", "/v1/admin/session"),
            ("GET", "/v1/admin/jobs"),
            ("GET", f"/v1/admin/jobs/{job_id}"),
            ("POST", f"/v1/admin/jobs/{job_id}/cancel"),
            ("POST", f"/v1/admin/jobs/{job_id}/retry"),
        ]:
            r = await c.request(method, path)
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith("Bearer")
        # ... while its own job API still works without credentials
        assert (await c.get(f"/v1/jobs/{job_id}")).status_code == 200


async def test_bearer_token_works_and_a_forged_cookie_does_not(gateway: RunningGateway) -> None:
    token = gateway.settings.admin_key()
    async with gateway.client(headers={"Authorization": f"Bearer {token}"}) as c:
        assert (await c.get("/v1/admin/session")).json() == {"admin": True, "expires_at": None}
    async with gateway.client(headers={"Authorization": f"Bearer {token}x"}) as c:
        assert (await c.get("/v1/admin/session")).status_code == 401
    async with gateway.client(cookies={"comfygate_admin": "1.9999999999.abc.def"}) as c:
        assert (await c.get("/v1/admin/session")).status_code == 401


async def test_the_session_cookie_counts_only_on_admin_paths(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        await c.post("/v1/admin/session", json={"token": gateway.settings.admin_key()})
        job = (await c.post("/v1/workflows/image-ops/jobs", json={"params": {}})).json()
        # the job belongs to whoever the visitor pages see, not to the admin
        assert job["id"] in [j["id"] for j in (await c.get("/v1/jobs")).json()["jobs"]]
