"""Browser tests: ``streamlit run app.py`` on a free loopback port, driven by Playwright and Chromium.

Chromium is Debian's package at /usr/bin/chromium; Playwright never downloads a browser
here. Without it the tests skip with a message on how to install it, unless
HESSIAN_LAB_REQUIRE_BROWSER=1 is set, which turns the skip into a failure (CI sets it).
Every request to a host other than 127.0.0.1 or localhost is aborted, so the page works
offline. Screenshots go to test-artifacts/ at the repository root.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SMALL = {
    "hidden_layers": 2,
    "width": 8,
    "n_interior": 200,
    "n_boundary": 120,
    "adam_steps": 40,
    "lbfgs_steps": 10,
    "test_grid": 21,
    "top_k": 4,
    "landscape_points": 9,
}
# Pages after Train, with their heading and how many Plotly charts each draws by default.
PAGES = [("Hessian", "Hessian of the loss", 3), ("Spectrum", "Spectrum of the Hessian", 2), ("Landscape", "Loss landscape", 5)]
TRAIN_CHARTS = 4
PAGE_TIMEOUT_MS = 300_000
LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}


def missing_browser_reason() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is missing; install it with `pip install -r requirements-dev.txt`"
    if not CHROMIUM.exists():
        return f"Chromium was not found at {CHROMIUM}; install it with `sudo apt-get install chromium` (Debian or Ubuntu)"
    return ""


def skip_without_browser() -> None:
    """Skip the calling test when Chromium or Playwright is missing, or fail if CI requires them."""
    reason = missing_browser_reason()
    if reason and os.environ.get("HESSIAN_LAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"HESSIAN_LAB_REQUIRE_BROWSER=1 but {reason}")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def require_browser():
    skip_without_browser()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(defaults: dict | None, log_path: Path) -> tuple[subprocess.Popen, str]:
    """Start ``streamlit run app.py`` on 127.0.0.1 and wait for its health check; return it and its URL."""
    port = free_port()
    environment = dict(os.environ)
    if defaults is None:
        environment.pop("HESSIAN_LAB_DEFAULTS", None)
    else:
        environment["HESSIAN_LAB_DEFAULTS"] = json.dumps(defaults)
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    log = log_path.open("w")
    server = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {server.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return server, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    stop_server(server)
    raise TimeoutError(f"streamlit did not answer its health check on {url} within 90 s; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=15)


def open_browser(playwright):
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1500, "height": 1000})

    blocked: list[str] = []

    def loopback_only(route) -> None:
        if urllib.parse.urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", loopback_only)
    # check_page asserts that the app asked no outside host for anything.
    page.blocked_requests = blocked
    return browser, page


def wait_until_idle(page, charts: int, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """Wait until the page shows ``charts`` Plotly charts and the script has stopped running."""
    page.wait_for_function(
        "n => document.querySelectorAll('.js-plotly-plot').length >= n", arg=charts, timeout=timeout_ms, polling=500
    )
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout_ms)
    # Plotly draws after the element is attached; give it a moment for the last chart.
    page.wait_for_timeout(1500)


def chart_report(page) -> list[dict]:
    """Return, for every Plotly chart, whether it has an SVG or canvas inside and its size."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => ({
            drawn: plot.querySelector('svg.main-svg, canvas') !== null,
            width: plot.getBoundingClientRect().width,
            height: plot.getBoundingClientRect().height,
        }))"""
    )


def run_click_through(page, url: str, screenshot_prefix: str = "") -> dict[str, float]:
    """Open the app, press Train, then visit every page; return seconds from the click to each page's last chart."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(url)
    page.get_by_role("button", name="Train").click(timeout=120_000)
    start = time.monotonic()
    times = {}

    page.wait_for_selector('[data-testid="stMetric"]', timeout=PAGE_TIMEOUT_MS * 3)
    wait_until_idle(page, TRAIN_CHARTS, PAGE_TIMEOUT_MS * 3)
    times["Train"] = time.monotonic() - start
    check_page(page, "Train", TRAIN_CHARTS, screenshot_prefix)

    for name, heading, charts in PAGES:
        page.locator('[data-testid="stSidebarNavLink"]', has_text=name).click()
        page.get_by_role("heading", name=heading).wait_for(timeout=60_000)
        wait_until_idle(page, charts)
        times[name] = time.monotonic() - start
        check_page(page, name, charts, screenshot_prefix)
    return times


def check_page(page, name: str, charts: int, screenshot_prefix: str) -> None:
    stem = f"{screenshot_prefix}{name.lower()}"
    page.screenshot(path=str(ARTIFACTS / f"{stem}.png"))
    # The page scrolls inside Streamlit's main container, so each chart gets its own picture.
    plots = page.locator(".js-plotly-plot")
    for index in range(plots.count()):
        plots.nth(index).screenshot(path=str(ARTIFACTS / f"{stem}-chart{index + 1}.png"))
    report = chart_report(page)
    assert len(report) >= charts, f"{name}: {len(report)} Plotly charts, expected {charts}"
    for index, chart in enumerate(report):
        assert chart["drawn"], f"{name}: chart {index} has neither SVG nor canvas inside"
        assert chart["width"] > 100, f"{name}: chart {index} is {chart['width']} px wide"
        assert chart["height"] > 100, f"{name}: chart {index} is {chart['height']} px high"
    assert not page.blocked_requests, f"{name}: requests to outside hosts: {page.blocked_requests}"
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{name}: exception box shown: {exceptions.first.inner_text()}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: error shown: {errors.first.inner_text()}"


@pytest.fixture(scope="module")
def server():
    ARTIFACTS.mkdir(exist_ok=True)
    process, url = start_server(SMALL, ARTIFACTS / "streamlit.log")
    yield url
    stop_server(process)


def test_train_and_every_page_render(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = open_browser(playwright)
        try:
            times = run_click_through(page, server)
        finally:
            browser.close()
    (ARTIFACTS / "timings-small.json").write_text(json.dumps(times, indent=2) + "\n")
    assert list(times) == ["Train", "Hessian", "Spectrum", "Landscape"]


def test_oversized_hessian_explained_before_run(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser, page = open_browser(playwright)
        try:
            page.goto(server)
            width = page.locator('[data-testid="stSidebar"]').get_by_label("Width", exact=True)
            width.fill("512")
            width.press("Enter")
            message = page.get_by_text("does not fit the memory budget", exact=False).first
            message.wait_for(timeout=60_000)
            assert "matrix-free" in message.inner_text()
            page.screenshot(path=str(ARTIFACTS / "memory-budget-warning.png"), full_page=True)
        finally:
            browser.close()
