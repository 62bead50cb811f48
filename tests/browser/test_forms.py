"""The generated form: field errors, the drop zone, the keyboard, and every page's axe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from tests.browser.conftest import Shots, check_axe
from tests.browser.dock import submit, wait_images_loaded, wait_status

if TYPE_CHECKING:
    from playwright.sync_api import Page


def test_invalid_values_show_their_errors_next_to_their_fields(page: Page, shot: Shots) -> None:
    page.goto("/w/txt2img")
    page.fill("#f-steps", "500")
    page.click("details.advanced summary")
    page.fill("#f-cfg", "99")
    page.click("details.advanced summary")
    assert not page.eval_on_selector("details.advanced", "d => d.open")
    page.click("#run-button")

    steps_error = page.locator("#err-steps")
    steps_error.wait_for(state="visible")
    assert "50" in steps_error.inner_text()
    assert page.get_attribute("#f-steps", "aria-invalid") == "true"
    # The error sits in the same field as its input, and opens the collapsed section.
    assert page.locator('[data-field="steps"] #err-steps').count() == 1
    assert page.locator("#err-cfg").is_visible()
    assert page.eval_on_selector("details.advanced", "d => d.open")
    assert page.locator("li.job").count() == 0
    check_axe(page)
    shot(page, "errors")

    page.fill("#f-steps", "12")
    assert not page.locator("#err-steps").is_visible()


def test_an_image_parameter_through_the_drop_zone(page: Page, shot: Shots, tmp_path: Path) -> None:
    picture = tmp_path / "harbour.png"
    Image.new("RGB", (96, 64), (40, 120, 200)).save(picture)
    page.goto("/w/img2img")
    check_axe(page)
    page.set_input_files("#file-image", str(picture))
    page.wait_for_selector(".dropzone[data-state=ready]")
    assert "96 \u00d7 64" in page.inner_text("[data-status]")
    assert page.input_value("#f-image") != ""
    wait_images_loaded(page, ".dropzone")
    shot(page, "1-uploaded")

    page.fill("#f-steps", "6")
    job_id = submit(page)
    assert wait_status(page, job_id, "succeeded", "failed") == "succeeded"
    wait_images_loaded(page, f'li.job[data-job-id="{job_id}"] .gallery')
    shot(page, "2-done")


def tab_to(page: Page, selector: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def test_a_whole_run_with_the_keyboard_only(page: Page, shot: Shots) -> None:
    page.goto("/w/txt2img")
    tab_to(page, "#f-prompt")
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type("a quiet harbour at dawn")
    tab_to(page, "#f-steps")
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.type("8")
    tab_to(page, "[data-randomize=seed]")
    page.keyboard.press("Space")
    assert page.input_value("#f-seed") != ""
    tab_to(page, "details.advanced summary")
    page.keyboard.press("Enter")
    assert page.eval_on_selector("details.advanced", "d => d.open")
    tab_to(page, "#run-button")
    shot(page, "1-filled")
    page.keyboard.press("Enter")

    page.wait_for_selector("li.job")
    job_id = page.get_attribute("li.job", "data-job-id") or ""
    assert wait_status(page, job_id, "succeeded", "failed") == "succeeded"
    wait_images_loaded(page, f'li.job[data-job-id="{job_id}"] .gallery')
    assert page.inner_text(f'li.job[data-job-id="{job_id}"] .job-prompt') == (
        "a quiet harbour at dawn"
    )
    tab_to(page, f'li.job[data-job-id="{job_id}"] [data-action=share]')
    page.keyboard.press("Space")
    page.wait_for_function("() => document.activeElement.classList.contains('share-input')")
    assert "/s/" in page.evaluate("document.activeElement.value")
    shot(page, "2-done")


def test_every_page_passes_axe(page: Page, shot: Shots) -> None:
    for path, name in [
        ("/", "home"),
        ("/w/image-ops", "image-ops"),
        ("/w/animated-webp", "animated-webp"),
        ("/w/nope", "not-found"),
    ]:
        page.goto(path)
        page.wait_for_selector("main")
        check_axe(page)
        shot(page, name)
