"""The microsite over HTTP: visitor cookies, pages, visitor scoping and share links."""

from __future__ import annotations

import asyncio
import json
from http.cookies import SimpleCookie

import httpx

from comfygate.api.deps import VISITOR_COOKIE
from tests.integration.api.helpers import become_visitor
from tests.integration.conftest import WORKFLOWS, RunningGateway, wait_status


async def submit(client: httpx.AsyncClient, **params: object) -> dict[str, object]:
    r = await client.post("/v1/workflows/image-ops/jobs", json={"params": params})
    assert r.status_code == 202, r.text
    job: dict[str, object] = r.json()
    return job


async def test_a_page_issues_a_signed_httponly_lax_cookie_once(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        first = await c.get("/")
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/html")
        cookie = SimpleCookie(first.headers["set-cookie"])[VISITOR_COOKIE]
        assert cookie["httponly"] and cookie["samesite"].lower() == "lax"
        assert cookie["path"] == "/" and int(cookie["max-age"]) > 30 * 24 * 3600
        assert cookie.value.startswith("visitor:")
        again = await c.get("/w/txt2img")
        assert "set-cookie" not in again.headers
        assert "script-src 'self'" in again.headers["content-security-policy"]


async def test_a_forged_cookie_gets_a_new_one_from_pages_and_401_from_the_api(
    gateway: RunningGateway,
) -> None:
    forged = {VISITOR_COOKIE: "visitor:someone-else.AAAAAAAAAAAAAAAAAAAAAAAAAAA"}
    async with gateway.client(cookies=forged) as c:
        r = await c.get("/v1/jobs")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
        page = await c.get("/")
        assert page.status_code == 200
        fresh = SimpleCookie(page.headers["set-cookie"])[VISITOR_COOKIE].value
        assert fresh != forged[VISITOR_COOKIE]


async def test_home_lists_every_workflow_with_its_own_example_picture(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as c:
        html = (await c.get("/")).text
        for name in ("txt2img", "img2img", "image-ops"):
            assert f'href="/w/{name}"' in html
            assert f'src="/w/{name}/example.png"' in html
        assert "Text to image" in html
        picture = await c.get("/w/txt2img/example.png")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        assert picture.content == (WORKFLOWS / "txt2img" / "example.png").read_bytes()
        assert (await c.get("/w/nope/example.png")).status_code == 404


async def test_the_workflow_page_draws_the_contract(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        html = (await c.get("/w/txt2img")).text
    assert '<textarea id="f-prompt" name="prompt"' in html
    assert "a lighthouse at dusk, oil painting</textarea>" in html
    assert 'id="f-width" name="width" value="512"' in html
    assert 'min="64"' in html and 'max="1024"' in html and 'step="8"' in html
    assert 'type="range" id="range-width"' in html
    assert 'data-randomize="seed"' in html
    assert '<select id="f-sampler_name" name="sampler_name"' in html
    assert "<summary>Advanced settings</summary>" in html
    assert html.index("<details") < html.index('id="f-cfg"')
    assert html.index('id="f-steps"') < html.index("<details")
    assert 'id="err-steps"' in html


async def test_an_image_parameter_gets_a_drop_zone(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        html = (await c.get("/w/img2img")).text
    assert 'data-dropzone="image"' in html
    assert 'type="file" class="dropzone-input" id="file-image"' in html
    assert 'accept="image/png,image/jpeg,image/webp,image/gif"' in html
    assert '<input type="hidden" name="image" id="f-image"' in html


async def test_unknown_pages_are_html_404s(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        for path in ("/w/nope", "/s/nope", "/s/a.b"):
            r = await c.get(path)
            assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


async def test_static_files_are_served_with_revalidation(gateway: RunningGateway) -> None:
    async with gateway.client() as c:
        r = await c.get("/static/js/dock.js")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"]
        assert r.headers["cache-control"] == "no-cache"
        assert (await c.get("/static/../web/pages.py")).status_code == 404


async def test_a_visitor_sees_only_their_own_jobs(gateway: RunningGateway) -> None:
    async with gateway.client() as a, gateway.client() as b, gateway.client() as local:
        await become_visitor(a)
        await become_visitor(b)
        job = await submit(a, width=16, height=16)
        job_id = str(job["id"])
        assert (await a.get(f"/v1/jobs/{job_id}")).status_code == 200
        for client in (b, local):
            assert (await client.get(f"/v1/jobs/{job_id}")).status_code == 404
            assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 404
            assert (await client.post(f"/v1/jobs/{job_id}/share")).status_code == 404
            listed = (await client.get("/v1/jobs")).json()["jobs"]
            assert job_id not in [j["id"] for j in listed]
        assert [j["id"] for j in (await a.get("/v1/jobs")).json()["jobs"]] == [job_id]
        await wait_status(a, job_id, "succeeded")


async def test_the_events_stream_carries_only_the_visitors_jobs(gateway: RunningGateway) -> None:
    async with gateway.client() as a, gateway.client() as b:
        await become_visitor(a)
        await become_visitor(b)
        async with a.stream("GET", "/v1/events") as stream:
            # The headers arrive once the stream is subscribed: both jobs come after.
            assert stream.status_code == 200
            theirs = await submit(b, width=8, height=8)
            mine = await submit(a, width=8, height=8)
            seen: set[str] = set()

            async def until_mine_finishes() -> None:
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        data = json.loads(line[5:])
                        seen.add(data.get("job_id") or data["id"])
                        if data.get("id") == mine["id"] and data["status"] == "succeeded":
                            return

            await asyncio.wait_for(until_mine_finishes(), 30)
    assert seen == {mine["id"]}
    assert theirs["id"] not in seen


async def test_a_share_link_opens_the_job_for_a_stranger_and_nothing_else(
    gateway: RunningGateway,
) -> None:
    async with gateway.client() as owner, gateway.client() as stranger:
        await become_visitor(owner)
        job = await submit(owner, width=24, height=24)
        job_id = str(job["id"])
        done = await wait_status(owner, job_id, "succeeded")
        link = (await owner.post(f"/v1/jobs/{job_id}/share")).json()
        assert link["url"] == f"/s/{link['token']}"
        second = (await owner.post(f"/v1/jobs/{job_id}/share")).json()
        assert second["token"] != link["token"]  # each link is its own, revocable alone
        assert job_id not in link["token"]

        page = await stranger.get(link["url"])
        assert page.status_code == 200, page.text
        assert "Image operations" in page.text and ">Done<" in page.text
        assert "Canvas width" in page.text
        [asset] = done["outputs"]
        path = str(asset["url"]).split("?")[0]
        assert path in page.text
        # Only the shared job: the stranger still cannot read it through the API.
        assert (await stranger.get(f"/v1/jobs/{job_id}")).status_code == 404

        token = link["token"]
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert (await stranger.get(f"/s/{tampered}")).status_code == 404
        other = job_id[:-1] + ("0" if job_id[-1] != "0" else "1")
        assert (await stranger.get(f"/s/{other}.{token.split('.')[1]}")).status_code == 404

        # Revoked: that link stops at once, the other one still opens the job; only
        # the owner may revoke it.
        stranger.headers["x-csrf-token"] = stranger.cookies["comfygate_csrf"]
        assert (await stranger.delete(f"/v1/jobs/{job_id}/shares/{link['id']}")).status_code == 404
        r = await owner.delete(f"/v1/jobs/{job_id}/shares/{link['id']}")
        assert r.status_code == 204, r.text
        assert (await stranger.get(link["url"])).status_code == 404
        assert (await stranger.get(second["url"])).status_code == 200
        listed = (await owner.get(f"/v1/jobs/{job_id}/shares")).json()["shares"]
        assert [s["id"] for s in listed if s["revoked_at"] is None] == [second["id"]]
