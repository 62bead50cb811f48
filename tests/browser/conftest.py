"""Browser tests: Debian's chromium driven by Playwright against a real gateway and
simulator, each in its own process on loopback, shared by the whole session."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from comfygate.serve import free_port, start_simulator, stop_process
from tests.browser.axe import axe_source
from tests.services import unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("COMFYGATE_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: long enough per sampler step that a progress bar visibly moves several times
STEP_MS = 80
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
AXE_PATH = "/__test__/axe.min.js"
#: every value each job's progress bar took, per job id, as the page set it
RECORD_PROGRESS = """
window.__progress = {};
new MutationObserver((records) => {
  for (const record of records) {
    const bar = record.target;
    const card = bar.tagName === "PROGRESS" && bar.closest("li[data-job-id]");
    if (card) (window.__progress[card.dataset.jobId] ||= []).push(Number(bar.value));
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["value"] });
"""


@dataclass
class Servers:
    url: str
    data_dir: Path


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("browser")
    sim, sim_url = start_simulator(base / "sim", step_ms=STEP_MS)
    port = free_port()
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "comfygate",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(base / "data"),
            "--workflows",
            str(ROOT / "workflows"),
            "--comfy",
            sim_url,
            "--public-site",
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(gateway, url)
        yield Servers(url=url, data_dir=base / "data")
    finally:
        stop_process(gateway)
        stop_process(sim)


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the gateway exited at start")
        try:
            health = httpx.get(f"{url}/healthz", timeout=1).json()
            if health["backends"] and all(health["backends"].values()):
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise RuntimeError("the gateway did not become ready within 60 s")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        unavailable("chromium", f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("chromium", "the playwright package is not installed")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Playwright gives every launch a fresh temporary --user-data-dir of its own.
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="session")
def axe_js() -> str:
    try:
        return axe_source(ROOT / ".venv" / "cache")
    except OSError as exc:
        unavailable("chromium", f"axe-core could not be fetched: {exc}")
        raise


ContextFactory = Callable[[], "BrowserContext"]


@pytest.fixture
def new_context(browser: Browser, servers: Servers, axe_js: str) -> Iterator[ContextFactory]:
    """Fresh browser profiles: each one a new visitor with no jobs."""
    made: list[tuple[BrowserContext, list[str]]] = []

    def make() -> BrowserContext:
        ctx = browser.new_context(base_url=servers.url, viewport=DESKTOP)
        ctx.set_default_timeout(30_000)
        # Served from the gateway's own origin, so the pages' CSP ('self') lets it run.
        ctx.route(
            f"**{AXE_PATH}",
            lambda route: route.fulfill(body=axe_js, content_type="application/javascript"),
        )
        ctx.add_init_script(RECORD_PROGRESS)
        errors: list[str] = []
        ctx.on("weberror", lambda e: errors.append(str(e.error)))
        made.append((ctx, errors))
        return ctx

    yield make
    for ctx, _ in made:
        ctx.close()
    uncaught = [e for _, errors in made for e in errors]
    assert not uncaught, f"uncaught errors in the page: {uncaught}"


@pytest.fixture
def context(new_context: ContextFactory) -> BrowserContext:
    return new_context()


def csrf(ctx: BrowserContext) -> dict[str, str]:
    """What the pages' scripts send with a change: the CSRF cookie, echoed."""
    [token] = [c["value"] for c in ctx.cookies() if c["name"] == "comfygate_csrf"]
    return {"x-csrf-token": token}


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@dataclass
class Shots:
    """Saves each step at desktop and phone size; on the phone, checks that nothing
    scrolls sideways."""

    test: str

    def __call__(self, page: Page, step: str) -> None:
        name = f"{self.test}-{step}"
        # A full-page capture of a scrolled page shows sticky parts mid-page: start at the top.
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        size = page.viewport_size or DESKTOP
        page.set_viewport_size(PHONE)
        try:
            page.wait_for_timeout(150)
            widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert widths[0] <= widths[1], f"{name}: scrolls sideways on a phone: {widths}"
            page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
        finally:
            page.set_viewport_size(size)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """This run's screenshots only: files of an earlier run would pass for this one's."""
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


@pytest.fixture
def shot(request: pytest.FixtureRequest, screenshots: Path) -> Shots:
    return Shots(re.sub(r"^test_", "", request.node.name))


def check_axe(page: Page) -> None:
    """Fails on serious or critical accessibility violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(url=AXE_PATH)
    # Colours caught halfway through a CSS transition are not the page's colours.
    page.evaluate(
        "Promise.all(document.getAnimations()"
        ".filter((a) => a.effect?.getTiming().iterations !== Infinity)"
        # a transition replaced or cut short rejects its promise: that is fine too
        ".map((a) => a.finished.catch(() => 0))).then(() => 0)"
    )
    results: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]
    report = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in bad
    ]
    assert not bad, f"accessibility violations on {page.url}:\n" + "\n".join(report)
