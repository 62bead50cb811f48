"""Webhooks end to end: a real gateway, the simulator, a receiver on loopback; the
signatures are checked with the Standard Webhooks reference library."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner, Result

from comfygate.cli import app
from comfygate.clock import SYSTEM_CLOCK
from comfygate.config import load_settings
from comfygate.jobs.model import NewJob
from comfygate.principal import Principal
from comfygate.store import open_store
from tests.integration.conftest import GatewayFactory, RunningGateway, wait_status
from tests.integration.receiver import Receiver
from tests.wait import eventually

ALLOW = {"outbound": {"allow": ["127.0.0.1"]}}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def hooked(sim_url: str, start_gateway: GatewayFactory) -> RunningGateway:
    return await start_gateway(sim_url, **ALLOW)


@pytest.fixture
def sim_url(sim: object) -> str:
    return str(sim.url)  # type: ignore[attr-defined]


async def submit(gw: RunningGateway, url: str, events: list[str] | None = None) -> str:
    hook: dict[str, object] = {"url": url}
    if events is not None:
        hook["events"] = events
    async with gw.client() as c:
        r = await c.post(
            "/v1/workflows/image-ops/jobs",
            json={"params": {"width": 16, "color": 9}, "webhook": hook},
        )
    assert r.status_code == 202, r.text
    job_id: str = r.json()["id"]
    return job_id


async def test_events_are_signed_per_standard_webhooks_and_carry_the_rendered_job(
    hooked: RunningGateway, receiver: Receiver
) -> None:
    job_id = await submit(hooked, f"{receiver.url}/hook", ["job.started", "job.succeeded"])
    started, done = await receiver.wait_for("/hook", 2)
    async with hooked.client() as c:
        secret = (await c.get("/v1/webhooks/secret")).json()["secret"]
        deliveries = (await c.get(f"/v1/jobs/{job_id}/webhooks")).json()["deliveries"]
        job = await wait_status(c, job_id, "succeeded")
    assert secret.startswith("whsec_")
    verifier = Webhook(secret)
    for received in (started, done):
        assert verifier.verify(received.body, received.headers) == json.loads(received.body)
    tampered = done.body.replace(b"succeeded", b"failed")
    with pytest.raises(Exception, match="signature"):
        verifier.verify(tampered, done.headers)
    first, last = json.loads(started.body), json.loads(done.body)
    assert first["type"] == "job.started" and first["data"]["status"] == "running"
    assert last["type"] == "job.succeeded" and set(last) == {"type", "timestamp", "data"}
    assert last["data"]["id"] == job_id and last["data"]["status"] == "succeeded"
    assert [o["sha256"] for o in last["data"]["outputs"]] == [o["sha256"] for o in job["outputs"]]
    assert [d["type"] for d in deliveries] == ["job.started", "job.succeeded"]
    assert {d["id"] for d in deliveries} == {
        started.headers["webhook-id"],
        done.headers["webhook-id"],
    }
    assert all(d["status"] == "delivered" for d in deliveries)
    assert all(d["attempts"][0]["status_code"] == 200 for d in deliveries)


async def test_redirects_are_not_followed_410_disables_and_redelivery_sends_again(
    hooked: RunningGateway, receiver: Receiver
) -> None:
    receiver.answers["/moved"] = (307, {"location": f"{receiver.url}/target"}, b"")
    receiver.answers["/gone"] = (410, {}, b"")
    moved = await submit(hooked, f"{receiver.url}/moved")
    gone = await submit(hooked, f"{receiver.url}/gone")
    async with hooked.client() as c:

        async def deliveries(job_id: str) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (await c.get(f"/v1/jobs/{job_id}/webhooks")).json()[
                "deliveries"
            ]
            return found

        def attempted(found: list[dict[str, Any]]) -> bool:
            return bool(found and found[0]["attempts"])

        # Received is not yet recorded: the outcome of each attempt is what is checked.
        [redirected] = await eventually(lambda: deliveries(moved), attempted, "the 307's attempt")
        # Recorded after its one request ended: a redirect followed would be in it.
        assert receiver.at("/target") == []
        assert redirected["attempts"][0]["status_code"] == 307
        assert "not followed" in redirected["attempts"][0]["error"]
        [closed] = await eventually(lambda: deliveries(gone), attempted, "the 410's attempt")
        assert closed["status"] == "disabled"
        [listed] = (await c.get("/v1/webhooks/secret")).json()["disabled_endpoints"]
        assert listed["url"] == f"{receiver.url}/gone" and "410" in listed["reason"]

        later = await submit(hooked, f"{receiver.url}/gone")
        [skipped] = await eventually(
            lambda: deliveries(later),
            lambda found: found and found[0]["status"] != "pending",
            "the delivery to a disabled endpoint to be settled",
        )
        assert skipped["status"] == "disabled" and skipped["attempts"] == []
        assert "410" in skipped["last_error"] and len(receiver.at("/gone")) == 1

        receiver.answers["/gone"] = (204, {}, b"")
        r = await c.post(f"/v1/jobs/{later}/webhooks/redeliver", json={})
        assert r.status_code == 202 and r.json()["redelivered"] == [skipped["id"]]
        _, again = await receiver.wait_for("/gone", 2)
        assert again.headers["webhook-id"] == skipped["id"]
        assert (await c.get("/v1/webhooks/secret")).json()["disabled_endpoints"] == []
        other = await c.post(f"/v1/jobs/{later}/webhooks/redeliver", json={"delivery_id": "x"})
        assert other.status_code == 404


async def test_webhook_urls_are_checked_at_submit(
    sim_url: str, start_gateway: GatewayFactory, receiver: Receiver
) -> None:
    gw = await start_gateway(sim_url)  # no allow-list
    async with gw.client() as c:
        for url, path in [
            (f"{receiver.url}/hook", "/webhook/url"),  # loopback, and plain http
            ("https://10.1.2.3/hook", "/webhook/url"),
            ("https://[::1]/hook", "/webhook/url"),
            ("https://[::ffff:127.0.0.1]/hook", "/webhook/url"),
            ("ftp://example.com/x", "/webhook/url"),
        ]:
            r = await c.post(
                "/v1/workflows/image-ops/jobs", json={"params": {}, "webhook": {"url": url}}
            )
            assert r.status_code == 422, (url, r.text)
            assert r.json()["error"]["details"][0]["path"] == path
        r = await c.post(
            "/v1/workflows/image-ops/jobs",
            json={"params": {}, "webhook": {"url": "https://x.example", "events": ["job.nope"]}},
        )
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["path"] == "/webhook/events/0"
    assert receiver.seen == []


async def test_an_outbox_row_written_before_a_restart_is_delivered_after_it(
    tmp_path: Path,
    workflows_dir: Path,
    sim_url: str,
    receiver: Receiver,
    start_gateway: GatewayFactory,
) -> None:
    """The row is committed with the transition by a store alone (no gateway running),
    as a gateway killed right after the commit leaves it; the next gateway sends it."""
    data = tmp_path / "data"
    settings = load_settings(None, data_dir=data, workflows_dir=workflows_dir)
    gw = await start_gateway(sim_url, data_dir=data, **ALLOW)
    version = gw.gw.workflows["image-ops"].version
    await gw.stop()
    store = await open_store(settings.db_url, clock=SYSTEM_CLOCK)
    now = SYSTEM_CLOCK.now()
    job = await store.create_job(
        NewJob(
            id="00000000-0000-4000-8000-000000000001",
            owner_id="local",
            workflow="image-ops",
            workflow_version=version,
            pool="default",
            params={},
            metadata={},
            inputs=(),
            priority=5,
            max_attempts=1,
            timeout_s=60,
            expires_at=None,
            webhook={"url": f"{receiver.url}/late", "events": ["job.canceled"]},
        ),
        now=now,
    )
    await store.request_cancel(job.id, now=now)
    await store.close()
    assert receiver.seen == []
    restarted = await start_gateway(sim_url, data_dir=data, **ALLOW)
    [received] = await receiver.wait_for("/late")
    async with restarted.client() as c:
        secret = (await c.get("/v1/webhooks/secret")).json()["secret"]
    payload = Webhook(secret).verify(received.body, received.headers)
    assert payload["type"] == "job.canceled" and payload["data"]["id"] == job.id


async def test_the_openapi_document_describes_the_webhook_and_its_routes(
    hooked: RunningGateway,
) -> None:
    async with hooked.client() as c:
        doc = (await c.get("/openapi.json")).json()
    submit = doc["paths"]["/v1/workflows/image-ops/jobs"]["post"]
    body = submit["requestBody"]["content"]["application/json"]["schema"]
    hook = body["properties"]["webhook"]
    assert (
        hook["required"] == ["url"]
        and "job.started" in hook["properties"]["events"]["items"]["enum"]
    )
    image = doc["paths"]["/v1/workflows/img2img/jobs"]["post"]["requestBody"]["content"]
    assert (
        "https URL"
        in image["application/json"]["schema"]["properties"]["params"]["properties"]["image"][
            "description"
        ]
    )
    for path in (
        "/v1/webhooks/secret",
        "/v1/jobs/{job_id}/webhooks",
        "/v1/jobs/{job_id}/webhooks/redeliver",
    ):
        assert path in doc["paths"]


async def test_deliveries_are_the_owners_and_admins_only(
    hooked: RunningGateway, receiver: Receiver
) -> None:
    visitor = Principal(id="visitor-9", kind="visitor", scopes=frozenset({"jobs:write"}))
    done = await hooked.gw.service.submit(
        visitor,
        "image-ops",
        {},
        {},
        render=lambda j: {},
        webhook={"url": f"{receiver.url}/theirs"},
    )
    await receiver.wait_for("/theirs")
    job_id = done.job_id
    admin = {"Authorization": f"Bearer {hooked.settings.admin_key()}"}
    async with hooked.client() as c:  # the local principal: not the owner
        assert (await c.get(f"/v1/jobs/{job_id}/webhooks")).status_code == 404
        assert (await c.post(f"/v1/jobs/{job_id}/webhooks/redeliver")).status_code == 404
        mine = (await c.get("/v1/webhooks/secret")).json()["secret"]
    assert mine != hooked.gw.webhook_secret("visitor-9")
    async with hooked.client(headers=admin) as c:
        [delivery] = (await c.get(f"/v1/jobs/{job_id}/webhooks")).json()["deliveries"]
        assert delivery["url"] == f"{receiver.url}/theirs"
        assert (await c.post(f"/v1/jobs/{job_id}/webhooks/redeliver")).status_code == 202
    _, again = await receiver.wait_for("/theirs", 2)
    Webhook(hooked.gw.webhook_secret("visitor-9")).verify(again.body, again.headers)


async def test_a_keys_default_webhook_hears_the_submits_that_name_none(
    hooked: RunningGateway, receiver: Receiver
) -> None:
    data = ["--data-dir", str(hooked.settings.data_dir)]
    allow = {"COMFYGATE_OUTBOUND__ALLOW": '["127.0.0.1"]'}
    create = ["keys", "create", "--name", "site", "--scopes", "jobs:write,jobs:read", *data]

    def cli(args: list[str], env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(app, args, env=env)

    # The CLI runs its own event loop, so it gets a thread of its own.
    refused = await asyncio.to_thread(cli, [*create, "--webhook", receiver.url])
    assert refused.exit_code == 2 and "--webhook" in refused.output  # loopback, not listed
    made = await asyncio.to_thread(cli, [*create, "--webhook", f"{receiver.url}/key"], allow)
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    listed = (await asyncio.to_thread(cli, ["keys", "list", *data])).output
    assert f"webhook={receiver.url}/key" in listed

    async with hooked.client(headers={"Authorization": f"Bearer {secret}"}) as c:
        r = await c.post("/v1/workflows/image-ops/jobs", json={"params": {"width": 16}})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        own = await c.post(
            "/v1/workflows/image-ops/jobs",
            json={"params": {"width": 16}, "webhook": {"url": f"{receiver.url}/own"}},
        )
        assert own.status_code == 202, own.text
        [received] = await receiver.wait_for("/key")
        await receiver.wait_for("/own")
        secret_of_key = (await c.get("/v1/webhooks/secret")).json()["secret"]
    payload = Webhook(secret_of_key).verify(received.body, received.headers)
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == job_id
    # A submit naming its own webhook is not also sent to the key's.
    assert [r.path for r in receiver.seen].count("/key") == 1
