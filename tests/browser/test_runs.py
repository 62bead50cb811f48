"""A visitor runs workflows: progress, results, share links, reloads, many tabs, cancel."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tests.browser.conftest import ContextFactory, Servers, Shots, check_axe, csrf
from tests.browser.dock import (
    assert_moved,
    card,
    job_ids,
    submit,
    wait_images_loaded,
    wait_progress_above,
    wait_progress_above_or_done,
    wait_status,
)
from tests.browser.proxy import CuttableProxy

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import BrowserContext, Page, Request


def gallery(job_id: str) -> str:
    return f'li.job[data-job-id="{job_id}"] .gallery'


def test_run_watch_share_and_run_again(
    page: Page, new_context: ContextFactory, servers: Servers, shot: Shots
) -> None:
    page.goto("/w/txt2img")
    check_axe(page)
    page.fill("#f-prompt", "a red fox in the snow")
    page.fill("#f-steps", "16")
    shot(page, "1-form")

    job_id = submit(page)
    assert card(page, job_id).locator(".job-title").inner_text() == "Text to image"
    wait_progress_above(page, job_id, 0)
    assert card(page, job_id).locator(".job-node").inner_text().strip() != ""
    shot(page, "2-running")

    assert wait_status(page, job_id, "succeeded", "failed") == "succeeded"
    assert wait_images_loaded(page, gallery(job_id)) == 1
    assert_moved(page, job_id)
    download = card(page, job_id).get_by_role("link", name="Download result 1 of Text to image")
    assert (download.get_attribute("href") or "").startswith("/files/outputs/")
    assert download.get_attribute("download")
    check_axe(page)
    shot(page, "3-done")

    card(page, job_id).get_by_role("button", name="Share").click()
    link = card(page, job_id).get_by_label("Anyone with this link can see this job")
    link.evaluate(
        "i => new Promise(ok => { const t = () => (i.value ? ok() : setTimeout(t, 50)); t(); })"
    )
    url = link.input_value()
    assert url.startswith(f"{servers.url}/s/")
    shot(page, "4-share-link")

    other = new_context().new_page()
    other.goto(url)
    assert other.locator("h1").inner_text() == "Text to image"
    assert wait_images_loaded(other, ".gallery") == 1
    check_axe(other)
    shot(other, "5-shared-with-a-stranger")

    page.fill("#f-prompt", "something else")
    page.fill("#f-steps", "3")
    card(page, job_id).get_by_role("button", name="Run again with these settings").click()
    page.wait_for_function("() => document.querySelector('#f-prompt').value.includes('red fox')")
    assert page.input_value("#f-steps") == "16"
    assert page.input_value("#f-seed") != ""


def test_a_reload_mid_run_continues_and_a_closed_tab_finds_its_job_finished(
    context: BrowserContext, page: Page, shot: Shots
) -> None:
    page.goto("/w/txt2img")
    page.fill("#f-steps", "50")
    job_id = submit(page)
    before = wait_progress_above(page, job_id, 0)

    page.reload()
    assert wait_status(page, job_id, "running", "succeeded") in ("running", "succeeded")
    wait_progress_above_or_done(page, job_id, before)
    shot(page, "1-after-reload")
    assert wait_status(page, job_id, "succeeded", "failed") == "succeeded"
    wait_images_loaded(page, gallery(job_id))

    page.fill("#f-steps", "10")
    second = submit(page)
    page.close()
    # No page is open while it runs: the visitor comes back after it finished.
    deadline = time.monotonic() + 60
    while context.request.get(f"/v1/jobs/{second}").json()["status"] != "succeeded":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.1)

    back = context.new_page()
    back.goto("/")
    assert wait_status(back, second, "succeeded") == "succeeded"
    assert job_ids(back)[:2] == [second, job_id]
    wait_images_loaded(back, gallery(second))
    check_axe(back)
    shot(back, "2-home-on-return")


def test_eight_jobs_in_two_tabs_all_move(context: BrowserContext, shot: Shots) -> None:
    tabs = [context.new_page(), context.new_page()]
    streams: list[list[str]] = [[], []]

    def count_streams(seen: list[str]) -> Callable[[Request], None]:
        def on_request(r: Request) -> None:
            if "/v1/events" in r.url:
                seen.append(r.url)

        return on_request

    for tab, seen in zip(tabs, streams, strict=True):
        tab.on("request", count_streams(seen))
    for tab in tabs:
        tab.goto("/w/txt2img")
        tab.fill("#f-steps", "10")
        tab.fill("#f-width", "256")
        tab.fill("#f-height", "256")
        tab.wait_for_selector(".conn[data-state=live]")
    submitted = [submit(tabs[i % 2]) for i in range(8)]
    for tab in tabs:
        tab.wait_for_function("n => document.querySelectorAll('li.job').length >= n", arg=8)
    shot(tabs[0], "1-queued-and-running")
    for tab in tabs:
        for job_id in submitted:
            assert wait_status(tab, job_id, "succeeded", "failed") == "succeeded"
    for tab in tabs:
        assert sorted(job_ids(tab)) == sorted(submitted)
        for job_id in submitted:
            assert_moved(tab, job_id)
    # One event connection per page for all eight jobs, not one per job.
    assert [len(s) for s in streams] == [1, 1]
    shot(tabs[1], "2-all-done")


def test_cancel_a_running_job(page: Page, shot: Shots) -> None:
    page.goto("/w/txt2img")
    page.fill("#f-steps", "50")
    job_id = submit(page)
    wait_progress_above(page, job_id, 0)
    card(page, job_id).get_by_role("button", name="Cancel").click()
    assert wait_status(page, job_id, "canceled", "succeeded", "failed") == "canceled"
    assert card(page, job_id).locator(".badge").inner_text() == "Canceled"
    assert card(page, job_id).get_by_role("button", name="Cancel").count() == 0
    check_axe(page)
    shot(page, "canceled")


def test_the_dock_pages_through_older_jobs(
    context: BrowserContext, page: Page, shot: Shots
) -> None:
    page.goto("/")  # the visitor cookie, shared by the context's API requests below
    made = []
    for i in range(12):
        r = context.request.post(
            "/v1/workflows/image-ops/jobs",
            data={"params": {"width": 8 + i, "height": 8}},
            headers=csrf(context),
        )
        assert r.status == 202, r.text()
        made.append(r.json()["id"])
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('li.job').length === 10")
    more = page.get_by_role("button", name="Show older jobs")
    more.click()
    page.wait_for_function("() => document.querySelectorAll('li.job').length === 12")
    assert job_ids(page) == made[::-1]
    assert not more.is_visible()
    shot(page, "all-pages")


def test_a_dropped_connection_resumes_with_last_event_id(
    new_context: ContextFactory, servers: Servers, shot: Shots
) -> None:
    proxy = CuttableProxy(int(servers.url.rsplit(":", 1)[1]))
    try:
        page = new_context().new_page()
        page.goto(f"{proxy.url}/w/txt2img")
        page.fill("#f-steps", "50")
        # Stored events carry the ids to resume from; they flow once the stream is open.
        page.wait_for_selector(".conn[data-state=live]")
        job_id = submit(page)
        before = wait_progress_above(page, job_id, 0)
        assert len(proxy.stream_requests()) == 1

        proxy.cut()
        deadline = time.monotonic() + 20
        while len(proxy.stream_requests()) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        # The browser's own reconnect, carrying the cursor of the last stored event
        # (read on the wire: Playwright's request events do not show this header).
        streams = proxy.stream_requests()
        assert len(streams) == 2 and streams[1].get("last-event-id"), streams
        wait_progress_above_or_done(page, job_id, before)
        assert wait_status(page, job_id, "succeeded", "failed") == "succeeded"
        wait_images_loaded(page, gallery(job_id))
        shot(page, "after-the-drop")
    finally:
        proxy.close()
