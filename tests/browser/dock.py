"""Reading the job dock the way a person does: cards, badges, bars and pictures."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

TERMINAL = ("succeeded", "failed", "canceled", "expired")


def card(page: Page, job_id: str) -> Locator:
    return page.locator(f'li.job[data-job-id="{job_id}"]')


def submit(page: Page) -> str:
    """Click Run and return the id of the job card that appears for it."""
    # The id comes from this click's own submit: another tab of the same visitor may
    # add a card of its job to this dock at any moment.
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.split("?")[0].endswith("/jobs")
    ) as answer:
        page.click("#run-button")
    job_id: str = answer.value.json()["id"]
    card(page, job_id).wait_for()
    return job_id


def job_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all("li.job", "cards => cards.map(c => c.dataset.jobId)")
    return ids


def wait_status(page: Page, job_id: str, *statuses: str, timeout_ms: float = 60_000) -> str:
    page.wait_for_function(
        """([id, wanted]) => {
            const c = document.querySelector(`li.job[data-job-id="${id}"]`);
            return c && wanted.includes(c.dataset.status);
        }""",
        arg=[job_id, list(statuses)],
        timeout=timeout_ms,
    )
    status: str = card(page, job_id).get_attribute("data-status") or ""
    return status


def progress(page: Page, job_id: str) -> float:
    value: float = card(page, job_id).locator("progress").evaluate("p => p.value")
    return value


def wait_progress_above_or_done(page: Page, job_id: str, floor: float) -> None:
    """On a busy machine a job may finish before its bar is seen to move again."""
    page.wait_for_function(
        """([id, floor]) => {
            const c = document.querySelector(`li.job[data-job-id="${id}"]`);
            const p = c && c.querySelector("progress");
            return c && (c.dataset.status === "succeeded" || p.value > floor);
        }""",
        arg=[job_id, floor],
        timeout=60_000,
    )


def wait_progress_above(page: Page, job_id: str, floor: float) -> float:
    page.wait_for_function(
        """([id, floor]) => {
            const p = document.querySelector(`li.job[data-job-id="${id}"] progress`);
            return p && p.value > floor;
        }""",
        arg=[job_id, floor],
        timeout=60_000,
    )
    return progress(page, job_id)


def progress_history(page: Page, job_id: str) -> list[float]:
    values: list[float] = page.evaluate("id => window.__progress[id] || []", job_id)
    return values


def assert_moved(page: Page, job_id: str) -> None:
    history = [v for v in progress_history(page, job_id) if v > 0]
    assert len(set(history)) >= 2 and history[-1] > history[0], (
        f"the progress bar of {job_id} did not move: {history}"
    )


def wait_images_loaded(page: Page, scope: str) -> int:
    """Waits until every image in scope has decoded; returns how many there are."""
    page.wait_for_function(
        """scope => {
            const imgs = [...document.querySelectorAll(`${scope} img`)];
            return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=scope,
        timeout=30_000,
    )
    count: int = page.locator(f"{scope} img").count()
    return count
