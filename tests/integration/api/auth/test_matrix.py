"""Who may call what: every route of the app, for every kind of principal.

The table below must name every route the application serves; a new route fails this
test until its expected access is written down. Each route is then called as each
principal, and the outcome must match: allowed (anything but 401, 403 and 404),
denied (401 or 403), or hidden (404: another principal's job is not even admitted to).
Allowed reads of one's own data also check that the data is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import httpx
from fastapi.routing import iter_route_contexts

from comfygate.api.app import create_app
from tests.integration.api.auth.conftest import Caller, ClientFactory, as_visitor
from tests.integration.conftest import RunningGateway


class Access(Enum):
    PUBLIC = "anyone, no credentials needed"
    SIGNED = "anyone holding a URL the gateway signed (checked in test_signed_links)"
    IDENTIFIED = "any principal, whatever its scopes"
    READ = "jobs:read, each caller sees its own"
    READ_OWN = "jobs:read, and the job is the caller's (admin: any)"
    WRITE = "jobs:write"
    WRITE_OWN = "jobs:write, and the job is the caller's (admin: any)"
    WRITE_MINE = "jobs:write, and the upload is the caller's (an admin's too)"
    ADMIN = "the admin scope"
    WORKER = "a key with the worker scope (admin does not imply it)"


A = Access

#: (method, path) → who may call it. HEAD follows GET.
TABLE: dict[tuple[str, str], Access] = {
    ("GET", "/openapi.json"): A.PUBLIC,
    ("GET", "/docs"): A.PUBLIC,
    ("GET", "/docs/oauth2-redirect"): A.PUBLIC,
    ("GET", "/redoc"): A.PUBLIC,
    ("GET", "/healthz"): A.PUBLIC,
    ("GET", "/readyz"): A.PUBLIC,
    # the pages: the visitor's identity is handed out by them; the API checks each call
    ("GET", "/static"): A.PUBLIC,
    ("GET", "/"): A.PUBLIC,
    ("GET", "/w/{name}"): A.PUBLIC,
    ("GET", "/w/{name}/example.png"): A.PUBLIC,
    ("GET", "/s/{token}"): A.PUBLIC,
    ("GET", "/admin"): A.PUBLIC,
    ("GET", "/files/{key:path}"): A.SIGNED,
    ("PUT", "/files/{key:path}"): A.SIGNED,
    ("GET", "/v1/workflows"): A.IDENTIFIED,
    ("GET", "/v1/workflows/{name}"): A.IDENTIFIED,
    # plus one submit operation per workflow: see table()
    ("POST", "/v1/workflows/{name}/jobs"): A.WRITE,
    ("GET", "/v1/jobs"): A.READ,
    ("GET", "/v1/events"): A.READ,
    ("GET", "/v1/jobs/{job_id}"): A.READ_OWN,
    ("GET", "/v1/jobs/{job_id}/attempts"): A.READ_OWN,
    ("GET", "/v1/jobs/{job_id}/events"): A.READ_OWN,
    ("GET", "/v1/jobs/{job_id}/shares"): A.READ_OWN,
    ("POST", "/v1/jobs/{job_id}/cancel"): A.WRITE_OWN,
    ("POST", "/v1/jobs/{job_id}/retry"): A.WRITE_OWN,
    ("DELETE", "/v1/jobs/{job_id}"): A.WRITE_OWN,
    ("POST", "/v1/jobs/{job_id}/share"): A.WRITE_OWN,
    ("DELETE", "/v1/jobs/{job_id}/shares/{share_id}"): A.WRITE_OWN,
    ("GET", "/v1/jobs/{job_id}/webhooks"): A.READ_OWN,
    ("POST", "/v1/jobs/{job_id}/webhooks/redeliver"): A.WRITE_OWN,
    ("GET", "/v1/webhooks/secret"): A.READ,
    ("GET", "/v1/usage"): A.READ,
    ("POST", "/v1/uploads"): A.WRITE,
    ("POST", "/v1/uploads/{upload_id}/complete"): A.WRITE_MINE,
    # sign-in checks its own credential (the admin token or an admin key) in the body
    ("POST", "/v1/admin/session"): A.PUBLIC,
    ("DELETE", "/v1/admin/session"): A.PUBLIC,
    ("GET", "/v1/admin/session"): A.ADMIN,
    ("GET", "/v1/admin/backends"): A.ADMIN,
    ("POST", "/v1/admin/backends/{backend_id}/drain"): A.ADMIN,
    ("POST", "/v1/admin/backends/{backend_id}/resume"): A.ADMIN,
    ("GET", "/v1/admin/stats"): A.ADMIN,
    ("GET", "/v1/admin/jobs"): A.ADMIN,
    ("GET", "/v1/admin/jobs/{job_id}"): A.ADMIN,
    ("POST", "/v1/admin/jobs/{job_id}/cancel"): A.ADMIN,
    ("POST", "/v1/admin/jobs/{job_id}/retry"): A.ADMIN,
    ("GET", "/v1/admin/events"): A.ADMIN,
    **{
        (m, "/worker/v1" + p): A.WORKER
        for m, p in (
            ("POST", "/lease"),
            ("POST", "/adopt"),
            ("POST", "/jobs/{job_id}/heartbeat"),
            ("POST", "/jobs/{job_id}/progress"),
            ("POST", "/jobs/{job_id}/preview"),
            ("GET", "/jobs/{job_id}/prompt"),
            ("GET", "/jobs/{job_id}/inputs/{index}"),
            ("PUT", "/jobs/{job_id}/outputs/{name}"),
            ("POST", "/jobs/{job_id}/outputs/{name}/url"),
            ("POST", "/jobs/{job_id}/outputs/{name}/parts/complete"),
            ("POST", "/jobs/{job_id}/outputs/{name}/parts/abort"),
            ("POST", "/jobs/{job_id}/complete"),
            ("POST", "/jobs/{job_id}/fail"),
            ("POST", "/jobs/{job_id}/canceled"),
        )
    },
}

OWNERS = ("owner", "admin", "key:admin")


def table(rg: RunningGateway) -> dict[tuple[str, str], Access]:
    submits = {("POST", f"/v1/workflows/{w}/jobs"): A.WRITE for w in rg.gw.workflows}
    return TABLE | submits


class Outcome(Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    HIDDEN = "hidden"


def expected(access: Access, caller: Caller) -> Outcome:
    if access in (A.PUBLIC, A.SIGNED):
        return Outcome.ALLOWED
    if caller.anonymous:
        return Outcome.DENIED
    if access is A.IDENTIFIED:
        return Outcome.ALLOWED
    if access is A.ADMIN:
        return Outcome.ALLOWED if "admin" in caller.scopes else Outcome.DENIED
    if access is A.WORKER:
        return Outcome.ALLOWED if "worker" in caller.scopes else Outcome.DENIED
    scope = "jobs:read" if access in (A.READ, A.READ_OWN) else "jobs:write"
    if not ({scope, "admin"} & caller.scopes):
        return Outcome.DENIED
    if access in (A.READ_OWN, A.WRITE_OWN) and caller.name not in OWNERS:
        return Outcome.HIDDEN
    if access is A.WRITE_MINE and caller.name != "owner":
        return Outcome.HIDDEN
    return Outcome.ALLOWED


def outcome(access: Access, status: int) -> Outcome:
    if status in (401, 403):
        return Outcome.DENIED
    # Past the admin check, a 404 is the thing asked for (a backend) being absent.
    hides = access not in (A.ADMIN, A.PUBLIC)
    return Outcome.HIDDEN if status == 404 and hides else Outcome.ALLOWED


def app_routes(rg: RunningGateway) -> set[tuple[str, str]]:
    app = create_app(rg.gw, manage_lifetime=False)
    found = set()
    for route in iter_route_contexts(app.routes):
        assert route.path is not None
        for method in route.methods or {"GET"}:
            if method != "HEAD":
                found.add((method, route.path))
    return found


async def test_the_table_names_every_route_of_the_app(locked: RunningGateway) -> None:
    routes = app_routes(locked)
    expected = table(locked)
    assert sorted(routes - expected.keys()) == [], "routes missing from the access table"
    assert sorted(expected.keys() - routes) == [], "the table names routes the app lacks"


@dataclass
class Fixture:
    """What the path parameters name: made fresh by the owner for each call."""

    job_id: str
    share_id: str
    share_token: str
    upload_id: str
    file_url: str
    upload_url: str


async def make_fixture(rg: RunningGateway, owner: httpx.AsyncClient) -> Fixture:
    r = await owner.post("/v1/workflows/image-ops/jobs", json={"params": {}})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    share = (await owner.post(f"/v1/jobs/{job_id}/share")).json()
    up = await owner.post(
        "/v1/uploads", json={"filename": "a.png", "content_type": "image/png", "bytes": 8}
    )
    assert up.status_code == 201, up.text
    await rg.gw.storage.put_bytes(f"outputs/{job_id}/main/1/9-0.png", b"png", "image/png")
    file_url, _ = await rg.gw.storage.signed_url(f"outputs/{job_id}/main/1/9-0.png", 600)
    return Fixture(
        job_id=job_id,
        share_id=share["id"],
        share_token=share["token"],
        upload_id=up.json()["id"],
        file_url=file_url,
        upload_url=up.json()["upload"]["url"],
    )


def request_for(method: str, path: str, fx: Fixture, admin_token: str) -> tuple[str, Any]:
    """The URL and JSON body of a well-formed call, so that only access decides."""
    if path == "/files/{key:path}":
        return (fx.file_url if method == "GET" else fx.upload_url), None
    url = (
        path.replace("{job_id}", fx.job_id)
        .replace("{share_id}", fx.share_id)
        .replace("{upload_id}", fx.upload_id)
        .replace("{token}", fx.share_token)
        .replace("{name}", "image-ops" if path.startswith(("/w/", "/v1/")) else "9-0.png")
        .replace("{backend_id}", "nowhere")
        .replace("{index}", "0")
    )
    url = "/static/css/site.css" if url == "/static" else url
    bodies: dict[str, Any] = {
        "/v1/admin/session": {"token": admin_token},
        "/worker/v1/lease": {
            "request_id": "r1",
            "agent_id": "a1",
            "backend": "http://gpu",
            "wait_s": 0,
        },
        "/worker/v1/adopt": {"agent_id": "a1", "backend": "http://gpu"},
    }
    default: dict[str, Any] = {"params": {}} if url.endswith("/jobs") else {"lease_token": "x"}
    body = bodies.get(url, default)
    if url == "/v1/uploads":
        body = {"filename": "b.png", "content_type": "image/png", "bytes": 8}
    return url, body if method in ("POST", "PUT", "DELETE") else None


STREAMS = ("/v1/events", "/events")


async def call(client: httpx.AsyncClient, method: str, url: str, body: Any) -> httpx.Response:
    """One call; a stream is closed as soon as its status is known."""
    if url.endswith(STREAMS) and method == "GET":
        async with client.stream(method, url) as r:
            return r
    if method == "PUT" and url.startswith(("/files/", "/worker/")):
        return await client.request(method, url, content=b"\x89PNG\r\n\x1a\n")
    if method == "DELETE" or body is None:
        return await client.request(method, url)
    return await client.request(method, url, json=body)


def check_own_data(
    method: str, path: str, r: httpx.Response, fx: Fixture, mine: set[str]
) -> str | None:
    """For an allowed read: the data is the caller's (or, for an admin, the asked job)."""
    if method != "GET" or r.status_code != 200 or path.endswith(("/events", "{job_id}/attempts")):
        return None
    if path == "/v1/jobs/{job_id}" and r.json()["id"] != fx.job_id:
        return "read a job other than the one asked for"
    if path == "/v1/jobs":
        seen = {j["id"] for j in r.json()["jobs"]}
        if not seen <= mine:
            return f"listed jobs that are not its own: {sorted(seen - mine)}"
    return None


async def test_every_route_answers_each_principal_as_the_table_says(
    locked: RunningGateway, callers: dict[str, Caller], client_as: ClientFactory
) -> None:
    owner = client_as(callers["owner"])
    await as_visitor(client_as(callers["visitor"]))
    admin_token = locked.settings.admin_key()
    #: the jobs each caller submitted (for the own-data checks of lists)
    mine: dict[str, set[str]] = {name: set() for name in callers}
    failures: list[str] = []
    for (method, path), access in sorted(table(locked).items(), key=lambda kv: kv[0][1]):
        for caller in callers.values():
            fx = await make_fixture(locked, owner)
            mine["owner"].add(fx.job_id)
            url, body = request_for(method, path, fx, admin_token)
            client = client_as(caller)
            if caller.anonymous:
                client.cookies.clear()  # the pages it opened made it a visitor
            r = await call(client, method, url, body)
            if r.status_code == 202 and url.endswith("/jobs"):
                mine[caller.name].add(r.json()["id"])
            want, got = expected(access, caller), outcome(access, r.status_code)
            where = f"{method} {path} as {caller.name}"
            if got is not want:
                failures.append(f"{where}: wanted {want.value}, got {r.status_code}")
            elif r.status_code >= 500 and path != "/readyz":  # no backend: not ready
                failures.append(f"{where}: {r.status_code}")
            elif want is Outcome.ALLOWED and caller.name in ("owner", "other", "visitor"):
                problem = check_own_data(method, path, r, fx, mine[caller.name])
                failures += [f"{where}: {problem}"] if problem else []
    assert not failures, "\n".join(failures)
