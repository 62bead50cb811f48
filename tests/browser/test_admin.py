"""An operator at the ops dashboard: signs in, watches backends and jobs live, opens a
job's timeline and attempts, cancels one, retries another; once by keyboard alone."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx

from tests.browser.conftest import ContextFactory, Servers, Shots, check_axe, csrf

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page

TERMINAL = ("succeeded", "failed", "canceled", "expired")
#: every status each job row took, per job id, as the page set it
RECORD_STATUSES = """
window.__rowStatuses = {};
new MutationObserver((records) => {
  for (const r of records) {
    const id = r.target.dataset && r.target.dataset.jobId;
    if (r.target.tagName !== "TR" || !id) continue;
    const seen = (window.__rowStatuses[id] ||= []);
    const status = r.target.dataset.status;
    if (status && seen[seen.length - 1] !== status) seen.push(status);
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-status"] });
"""


def admin_token(servers: Servers) -> str:
    return (servers.data_dir / "admin.token").read_text().strip()


def signed_in_page(context: BrowserContext, servers: Servers) -> Page:
    r = context.request.post("/v1/admin/session", data={"token": admin_token(servers)})
    assert r.status == 204, r.text()
    page = context.new_page()
    page.goto("/admin")
    page.wait_for_selector("#dashboard:not([hidden]) .conn[data-state=live]")
    return page


def visitor_job(new_context: ContextFactory, workflow: str, params: dict[str, Any]) -> str:
    """A job made by a visitor of the public pages, in a browser profile of its own."""
    ctx = new_context()
    assert ctx.request.get("/").ok  # the visitor cookie
    r = ctx.request.post(
        f"/v1/workflows/{workflow}/jobs", data={"params": params}, headers=csrf(ctx)
    )
    assert r.status == 202, r.text()
    job_id: str = r.json()["id"]
    return job_id


def finished_visitor_job(new_context: ContextFactory) -> str:
    ctx = new_context()
    assert ctx.request.get("/").ok
    r = ctx.request.post(
        "/v1/workflows/image-ops/jobs", data={"params": {"width": 48}}, headers=csrf(ctx)
    )
    assert r.status == 202, r.text()
    job_id: str = r.json()["id"]
    deadline = time.monotonic() + 60
    while (status := ctx.request.get(f"/v1/jobs/{job_id}").json()["status"]) not in TERMINAL:
        assert time.monotonic() < deadline, "the visitor's job did not finish"
        time.sleep(0.1)
    assert status == "succeeded"
    return job_id


def row(page: Page, job_id: str) -> Locator:
    return page.locator(f'#jobs tr[data-job-id="{job_id}"]')


def wait_row(page: Page, job_id: str, *statuses: str) -> str:
    page.wait_for_function(
        """([id, wanted]) => {
            const tr = document.querySelector(`#jobs tr[data-job-id="${id}"]`);
            return tr && (wanted.length === 0 || wanted.includes(tr.dataset.status));
        }""",
        arg=[job_id, list(statuses)],
        timeout=60_000,
    )
    return row(page, job_id).get_attribute("data-status") or ""


def wait_dialog(page: Page, job_id: str, *statuses: str) -> str:
    page.wait_for_function(
        """([id, wanted]) => {
            const d = document.getElementById("job-dialog");
            return d.open && d.dataset.jobId === id
                && (!wanted.length || wanted.includes(d.dataset.status));
        }""",
        arg=[job_id, list(statuses)],
        timeout=60_000,
    )
    return page.locator("#job-dialog").get_attribute("data-status") or ""


def dialog_moves_on(page: Page, old: str) -> str:
    """Waits for the job dialog to show another job than old; returns its id."""
    page.wait_for_function(
        "old => document.getElementById('job-dialog').dataset.jobId !== old", arg=old
    )
    return page.locator("#job-dialog").get_attribute("data-job-id") or ""


def test_sign_in_then_backends_and_a_visitors_job_live(
    new_context: ContextFactory, servers: Servers, shot: Shots
) -> None:
    ctx = new_context()
    ctx.add_init_script(RECORD_STATUSES)
    page = ctx.new_page()
    page.goto("/")
    footer_link = page.locator("footer").get_by_role("link", name="Admin")
    assert footer_link.get_attribute("href") == "/admin"
    footer_link.click()
    page.wait_for_url("**/admin")
    assert page.locator("#dashboard").is_hidden()
    check_axe(page)
    shot(page, "1-sign-in")

    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    error = page.locator("#token-error")
    error.wait_for(state="visible")
    assert "not the admin token" in error.inner_text()
    assert page.get_by_label("Admin token").get_attribute("aria-invalid") == "true"
    check_axe(page)
    shot(page, "2-wrong-token")

    page.get_by_label("Admin token").fill(admin_token(servers))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#dashboard:not([hidden]) .conn[data-state=live]")
    assert page.locator("#signin").is_hidden()
    backend = page.locator("#backends li.backend").first
    backend.wait_for()
    page.wait_for_function(
        "() => document.querySelector('#backends .meter-figure').textContent.includes(' of ')"
    )
    assert backend.get_attribute("data-state") in ("idle", "busy")
    assert backend.locator(".badge").inner_text() in ("Idle", "Busy")
    assert "VRAM" in backend.inner_text() and "RAM" in backend.inner_text()
    assert page.locator("#pools tbody tr").count() >= 1

    name = backend.locator("h3").inner_text()
    backend.get_by_role("button", name=f"Drain {name}").click()
    page.wait_for_selector("#backends li.backend[data-state=draining]")
    assert backend.locator(".badge").inner_text() == "Draining"
    assert "takes no new job" in backend.locator(".backend-note").inner_text()
    check_axe(page)
    shot(page, "3-drained")
    backend.get_by_role("button", name=f"Resume {name}").click()
    page.wait_for_selector("#backends li.backend:is([data-state=idle], [data-state=busy])")
    assert backend.get_by_role("button", name=f"Drain {name}").is_visible()

    # Made after the page loaded: it must arrive and move on without a reload.
    page.evaluate("() => (window.__sameDocument = true)")
    job_id = visitor_job(new_context, "txt2img", {"steps": 30, "width": 256, "height": 256})
    wait_row(page, job_id)
    assert row(page, job_id).locator("td[data-label=Workflow]").inner_text() == "Text to image"
    assert row(page, job_id).locator(".owner").inner_text().startswith("visitor:")
    assert wait_row(page, job_id, *TERMINAL) == "succeeded"
    seen: list[str] = page.evaluate("id => window.__rowStatuses[id]", job_id)
    assert len(seen) >= 2 and seen[0] in ("queued", "running") and seen[-1] == "succeeded", seen
    assert page.evaluate("() => window.__sameDocument") is True
    page.wait_for_function(
        "() => document.querySelector('#throughput svg[role=img] rect.bar-succeeded')"
    )
    assert "finished in the last hour;" in page.locator("#throughput-summary").inner_text()
    check_axe(page)
    shot(page, "4-dashboard")

    page.get_by_role("button", name="Sign out").click()
    page.locator("#signin").wait_for(state="visible")
    assert ctx.request.get("/v1/admin/session").status == 401


def test_open_a_job_cancel_it_then_retry_a_finished_one(
    new_context: ContextFactory, servers: Servers, shot: Shots
) -> None:
    page = signed_in_page(new_context(), servers)
    long_job = visitor_job(new_context, "txt2img", {"steps": 50, "width": 256, "height": 256})
    wait_row(page, long_job, "running")
    row(page, long_job).get_by_role("link").click()
    wait_dialog(page, long_job, "running")
    dialog = page.locator("#job-dialog")
    page.wait_for_function(
        "() => document.querySelectorAll('#job-dialog [aria-label=Attempts] tbody tr').length"
    )
    timeline = dialog.get_by_role("region", name="Timeline")
    assert timeline.locator("tbody tr").count() >= 2
    assert "Queued" in timeline.inner_text() and "Running" in timeline.inner_text()
    attempts = dialog.get_by_role("region", name="Attempts").locator("tbody tr")
    assert attempts.count() == 1 and attempts.first.locator("td").nth(2).inner_text() != ""
    check_axe(page)
    shot(page, "1-running-job")

    dialog.get_by_role("button", name="Cancel job").click()
    assert wait_dialog(page, long_job, *TERMINAL) == "canceled"
    assert wait_row(page, long_job, *TERMINAL) == "canceled"
    assert dialog.get_by_role("button", name="Cancel job").count() == 0
    shot(page, "2-canceled")
    page.keyboard.press("Escape")
    page.locator("#job-dialog").wait_for(state="hidden")

    done = finished_visitor_job(new_context)
    wait_row(page, done, "succeeded")
    row(page, done).locator("td[data-label=Owner]").click()  # a click anywhere on the row
    wait_dialog(page, done, "succeeded")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#job-dialog .gallery img')]"
        ".some(i => i.complete && i.naturalWidth > 0)"
    )
    dialog.get_by_role("button", name="Retry as a new job").click()
    retry = dialog_moves_on(page, done)
    assert page.url.endswith(f"#job={retry}")
    assert dialog.locator(".jd-message").inner_text().startswith("Started as a retry of")
    back = dialog.locator(f'.facts a[href="#job={done}"]')
    assert back.count() == 1
    assert wait_dialog(page, retry, *TERMINAL) == "succeeded"
    assert wait_row(page, retry, *TERMINAL) == "succeeded"
    assert row(page, retry).locator(".tag").inner_text() == "retry"
    assert row(page, done).get_attribute("data-status") == "succeeded"  # stays terminal
    check_axe(page)
    shot(page, "3-retried")

    back.click()
    wait_dialog(page, done, "succeeded")


def tab_to(page: Page, selector: str, *, back: bool = False, limit: int = 80) -> None:
    """Presses Tab (or Shift+Tab) until the focused element matches selector."""
    key = "Shift+Tab" if back else "Tab"
    for _ in range(limit):
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press(key)
    raise AssertionError(f"{selector} is not reachable with {key}")


def test_the_dashboard_by_keyboard_alone(
    new_context: ContextFactory, servers: Servers, shot: Shots
) -> None:
    done = finished_visitor_job(new_context)
    page = new_context().new_page()
    page.goto("/admin")
    # The token field has focus on arrival.
    assert page.evaluate("() => document.activeElement.id") == "admin-token"
    page.keyboard.type(admin_token(servers))
    page.keyboard.press("Enter")
    page.wait_for_selector("#dashboard:not([hidden]) .conn[data-state=live]")
    assert page.evaluate("() => document.activeElement.id") == "ops-title"
    wait_row(page, done)
    owner = row(page, done).locator(".owner").inner_text()

    tab_to(page, "#filter-owner")
    page.keyboard.type(owner)
    page.keyboard.press("Enter")
    page.wait_for_function(
        """owner => {
            const rows = [...document.querySelectorAll('#jobs tbody tr')];
            return rows.length > 0 && rows.every(r => r.querySelector('.owner').title === owner);
        }""",
        arg=owner,
    )
    tab_to(page, f'#jobs tr[data-job-id="{done}"] a')
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused job link shows no focus ring"
    shot(page, "1-filtered-and-focused")

    page.keyboard.press("Enter")
    wait_dialog(page, done, "succeeded")
    assert page.evaluate("() => document.activeElement.id") == "jd-title"
    tab_to(page, "#job-dialog [data-key=retry]")
    page.keyboard.press("Enter")
    retry = dialog_moves_on(page, done)
    assert wait_dialog(page, retry, *TERMINAL) == "succeeded"
    shot(page, "2-retried-by-keyboard")

    page.keyboard.press("Escape")
    page.locator("#job-dialog").wait_for(state="hidden")
    assert page.evaluate("() => document.activeElement.closest('tr')?.dataset.jobId") == done
    assert wait_row(page, retry, "succeeded") == "succeeded"

    tab_to(page, "#signout", back=True)
    page.keyboard.press("Enter")
    page.locator("#signin").wait_for(state="visible")
    assert page.evaluate("() => document.activeElement.id") == "admin-token"
    shot(page, "3-signed-out")


def test_filters_and_older_pages(
    new_context: ContextFactory, servers: Servers, shot: Shots
) -> None:
    visitor = new_context()
    assert visitor.request.get("/").ok
    made = []
    for i in range(26):  # one more than a page
        r = visitor.request.post(
            "/v1/workflows/image-ops/jobs",
            data={"params": {"width": 8 + i}},
            headers=csrf(visitor),
        )
        assert r.status == 202, r.text()
        made.append(r.json()["id"])
    ctx = new_context()
    page = signed_in_page(ctx, servers)
    owner = ctx.request.get(f"/v1/admin/jobs/{made[0]}").json()["job"]["owner_id"]

    page.get_by_label("Owner").fill(owner)
    page.get_by_role("button", name="Apply").click()
    page.wait_for_function(
        """owner => {
            const rows = [...document.querySelectorAll('#jobs tbody tr')];
            return rows.length === 25 && rows.every(r => r.querySelector('.owner').title === owner);
        }""",
        arg=owner,
    )
    more = page.get_by_role("button", name="Show older jobs")
    more.click()
    page.wait_for_function("() => document.querySelectorAll('#jobs tbody tr').length === 26")
    ids = page.eval_on_selector_all("#jobs tbody tr", "rows => rows.map(r => r.dataset.jobId)")
    assert ids == made[::-1]
    assert more.is_hidden()
    shot(page, "1-one-owner-all-pages")

    page.get_by_label("Workflow").select_option("txt2img")
    page.get_by_text("No jobs match these filters.").wait_for()
    page.get_by_role("button", name="Clear").click()
    page.wait_for_function("() => document.querySelectorAll('#jobs tbody tr').length === 25")
    assert page.get_by_label("Owner").input_value() == ""


def test_what_each_agent_reports_and_the_remote_agents(
    new_context: ContextFactory, servers: Servers, shot: Shots
) -> None:
    create = ["keys", "create", "--name", "gpu-host", "--scopes", "worker"]
    made = subprocess.run(
        [sys.executable, "-m", "comfygate", *create, "--data-dir", str(servers.data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    worker_key = made.stdout.strip().splitlines()[-1]
    # A GPU host's agent asks for work: its own pool, so it takes no job of the others.
    asked = httpx.post(
        f"{servers.url}/worker/v1/lease",
        headers={"Authorization": f"Bearer {worker_key}"},
        json={
            "request_id": "r1",
            "agent_id": "gpu-host-1",
            "backend": "http://10.0.0.7:8188",
            "pools": ["remote-demo"],
            "capacity": 3,
            "models": ["sd15.safetensors", "sdxl.safetensors"],
            "wait_s": 0,
        },
        timeout=30,
    )
    assert asked.status_code == 204, asked.text  # no job in that pool
    page = signed_in_page(new_context(), servers)
    remote = page.locator('#remote li[data-url="http://10.0.0.7:8188"]')
    remote.wait_for()
    # Its identity is the worker key's, whatever the agent calls itself.
    assert "pool remote-demo · agent worker:" in remote.inner_text()
    assert remote.locator("dd").nth(0).inner_text() == "3"
    files = remote.locator("details")
    assert files.locator("summary").inner_text() == "2 files"
    files.locator("summary").click()
    assert files.locator("li").all_inner_texts() == ["sd15.safetensors", "sdxl.safetensors"]
    # The in-process agent of the configured backend reports what its ComfyUI lists.
    local = page.locator("#backends li.backend").first
    page.wait_for_function("() => document.querySelector('#backends li.backend details summary')")
    assert local.locator("details summary").inner_text().endswith(("file", "files"))
    check_axe(page)
    shot(page, "5-remote-agents")
