"""Two users of one dashboard never see each other's model or results.

Everything a user computes lives in that browser session's ``st.session_state``. These
tests check it three ways: two AppTest sessions with different widths, the process-wide
caches and the app's source, and two Playwright pages in separate browser contexts against
one ``streamlit run app.py`` server. Both sessions start from the same
``HESSIAN_LAB_DEFAULTS``, as two users of one server do, and one of them changes the width.
The same server also shows what the browser does with a width outside the widget's limits.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from hessian_core.settings import Settings
from hessian_core.training import train

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
from streamlit.runtime.caching import cache_data_api, cache_resource_api  # noqa: E402
from test_browser import (  # noqa: E402
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    LOOPBACK_HOSTS,
    TRAIN_CHARTS,
    skip_without_browser,
    start_server,
    stop_server,
    wait_until_idle,
)

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
# The two sessions differ only in width: 2-6-6-1 (P = 67) and 2-8-8-1 (P = 105).
SHARED_DEFAULTS = {
    "hidden_layers": 2,
    "width": 6,
    "n_interior": 80,
    "n_boundary": 40,
    "adam_steps": 15,
    "lbfgs_steps": 5,
    "test_grid": 11,
    "top_k": 2,
    "landscape_points": 5,
}
FIRST = Settings(**{**SHARED_DEFAULTS, "width": 8})
SECOND = Settings(**SHARED_DEFAULTS)
TIMEOUT_SECONDS = 600
# Every module of the dashboard whose code runs in a user's session.
APP_SOURCES = [ROOT / "app.py", ROOT / "app_state.py", ROOT / "page_parts.py", ROOT / "figures.py", *sorted((ROOT / "pages").glob("*.py"))]
# Caches that outlive a script run and are shared by every session: Streamlit's and functools'.
CACHE_DECORATORS = {"cache_resource", "cache_data", "cache", "experimental_singleton", "experimental_memo", "lru_cache"}


pytestmark = pytest.mark.usefixtures("navigation_only_pages")


@pytest.fixture(scope="module")
def reference_losses() -> dict[int, str]:
    """Final loss of each width trained directly by hessian_core, as the Train page formats it."""
    return {settings.width: f"{train(settings).loss:.3e}" for settings in (FIRST, SECOND)}


def metric_value(at, label: str) -> str:
    for metric in at.metric:
        if metric.label == label:
            return metric.value
    raise AssertionError(f"no metric {label!r}; the page has {[m.label for m in at.metric]}")


def assert_clean(at) -> None:
    assert not at.exception, [element.message for element in at.exception]
    assert not at.error, [element.value for element in at.error]


def results_of(at) -> dict:
    return at.session_state["hessian_lab_results"]


@pytest.fixture(scope="module")
def two_sessions():
    """Start two AppTest sessions of one app. The first changes the width to 8, then both train."""
    patch = pytest.MonkeyPatch()
    patch.setenv("HESSIAN_LAB_DEFAULTS", json.dumps(SHARED_DEFAULTS))
    first = streamlit_testing.AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS).run()
    second = streamlit_testing.AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS).run()
    first.number_input(key="setting_width").set_value(FIRST.width).run()
    first.button[0].click().run()
    second.button[0].click().run()
    yield first, second
    patch.undo()


@pytest.mark.parametrize("index, settings", [(0, FIRST), (1, SECOND)])
def test_each_session_trains_its_own_model(two_sessions, reference_losses, index, settings):
    at = two_sessions[index]
    assert_clean(at)
    summary = " ".join(expander.label for expander in at.expander)
    assert f"{settings.n_params:,} parameters" in summary
    stored = results_of(at)["training"]
    assert stored.settings == settings
    assert stored.value.result.theta.shape == (settings.n_params,)
    assert metric_value(at, "Final loss") == reference_losses[settings.width]


def test_sessions_train_different_models(reference_losses):
    """Guards the test above: the two widths must give different losses to tell them apart."""
    assert reference_losses[FIRST.width] != reference_losses[SECOND.width]


def test_hessian_stays_in_its_session(two_sessions):
    first, second = two_sessions
    first.switch_page("pages/hessian.py").run()
    assert_clean(first)
    assert metric_value(first, "Parameters") == f"{FIRST.n_params:,}"
    assert results_of(first)["hessian"].value.matrix.shape == (FIRST.n_params, FIRST.n_params)

    second.run()
    assert_clean(second)
    assert "hessian" not in results_of(second)
    second.switch_page("pages/hessian.py").run()
    assert_clean(second)
    assert metric_value(second, "Parameters") == f"{SECOND.n_params:,}"
    assert results_of(second)["hessian"].value.matrix.shape == (SECOND.n_params, SECOND.n_params)
    # Computing the second session's Hessian left the first one's as it was.
    assert results_of(first)["hessian"].value.matrix.shape == (FIRST.n_params, FIRST.n_params)
    assert results_of(first)["hessian"].source_id == results_of(first)["training"].result_id


def test_nothing_left_in_shared_caches(two_sessions):
    """Every session shares st.cache_resource and st.cache_data, and after two sessions trained both are empty."""
    first, second = two_sessions
    assert "training" in results_of(first)
    assert "training" in results_of(second)
    assert cache_resource_api._resource_caches.get_stats() == {}
    assert cache_data_api._data_caches.get_stats() == {}


def cache_uses(path: Path) -> list[str]:
    """Return ``file:line name`` for every use of a shared cache decorator or function in ``path``."""
    uses = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr in CACHE_DECORATORS:
            uses.append(f"{path.name}:{node.lineno} {node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module in ("streamlit", "functools"):
            uses += [f"{path.name}:{node.lineno} {alias.name}" for alias in node.names if alias.name in CACHE_DECORATORS]
    return uses


def test_app_source_has_no_shared_cache():
    """Nothing in the dashboard is cached across sessions, so no per-user value can be."""
    uses = [use for path in APP_SOURCES for use in cache_uses(path)]
    assert uses == [], f"these caches are shared by every session, so keep per-user values in st.session_state: {uses}"


def test_cache_scan_finds_a_cache(tmp_path):
    """Guards the scan above: it finds a decorator written either way."""
    script = tmp_path / "page.py"
    script.write_text(
        "import functools\nimport streamlit as st\nfrom streamlit import cache_data\n\n"
        "@st.cache_resource\ndef model(): ...\n\n@functools.lru_cache\ndef grid(): ...\n"
    )
    assert sorted(cache_uses(script)) == ["page.py:3 cache_data", "page.py:5 cache_resource", "page.py:8 lru_cache"]


# --- two browsers against one server --------------------------------------------------------


@pytest.fixture(scope="module")
def browser_available():
    skip_without_browser()


def loopback_only(route) -> None:
    import urllib.parse

    if urllib.parse.urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
        route.continue_()
    else:
        route.abort()


def open_page(browser):
    """A page in its own browser context: its own cookies and storage, so its own Streamlit session."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.route("**/*", loopback_only)
    return context.new_page()


def browser_metric(page, label: str) -> str:
    metric = page.locator('[data-testid="stMetric"]', has_text=label)
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def parameters_text(settings: Settings) -> str:
    return f"{settings.n_params:,} parameters"


@pytest.fixture(scope="module")
def server_url(browser_available):
    """One ``streamlit run app.py`` on a free loopback port, shared by the browser tests."""
    ARTIFACTS.mkdir(exist_ok=True)
    server, url = start_server(SHARED_DEFAULTS, ARTIFACTS / "streamlit-isolation.log")
    yield url
    stop_server(server)


@pytest.fixture(scope="module")
def browser(server_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_for_rerun(page) -> None:
    """Wait until the script run that the last action started has finished drawing."""
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=120_000)
    page.wait_for_timeout(1000)


def sidebar_width(page):
    return page.locator('[data-testid="stSidebar"]').get_by_label("Width", exact=True)


def test_two_browsers_keep_their_own_models(server_url, browser, reference_losses):
    first, second = open_page(browser), open_page(browser)
    for page in (first, second):
        page.goto(server_url)
        page.get_by_text(parameters_text(SECOND)).first.wait_for(timeout=120_000)

    width = sidebar_width(first)
    width.fill(str(FIRST.width))
    width.press("Enter")
    first.get_by_text(parameters_text(FIRST)).first.wait_for(timeout=120_000)

    # Both sessions train at the same time on the one server.
    first.get_by_role("button", name="Train").click()
    second.get_by_role("button", name="Train").click()
    for page, settings, other, name in ((first, FIRST, SECOND, "a"), (second, SECOND, FIRST, "b")):
        page.wait_for_selector('[data-testid="stMetric"]', timeout=600_000)
        wait_until_idle(page, TRAIN_CHARTS, 600_000)
        # The focused Train button's tooltip would cover the settings summary.
        page.evaluate("document.activeElement.blur()")
        page.mouse.move(1400, 900)
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / f"isolation-{name}-trained.png"))
        assert page.get_by_text(parameters_text(settings)).count() >= 1
        assert page.get_by_text(parameters_text(other)).count() == 0
        assert browser_metric(page, "Final loss") == reference_losses[settings.width]
        assert page.locator('[data-testid="stException"]').count() == 0

    # A reload starts a new session: neither page shows any model, its own or the other's.
    for page, name in ((first, "a"), (second, "b")):
        page.reload()
        page.get_by_text("Press Train to train the network").wait_for(timeout=120_000)
        wait_for_rerun(page)
        page.screenshot(path=str(ARTIFACTS / f"isolation-{name}-reloaded.png"))
        assert page.locator('[data-testid="stMetric"]').count() == 0
        assert page.get_by_text(parameters_text(SECOND)).count() >= 1
        assert page.get_by_text(parameters_text(FIRST)).count() == 0
    first.context.close()
    second.context.close()


def test_browser_keeps_widget_inside_range(server_url, browser):
    """A width outside the widget's limits never reaches the app: the browser shows the range and keeps the old value.

    AppTest cannot show this, because it sends the value past the browser's check
    (``tests/test_app_guards.py`` covers what the server then does).
    """
    page = open_page(browser)
    page.goto(server_url)
    page.get_by_text(parameters_text(SECOND)).first.wait_for(timeout=120_000)
    width = sidebar_width(page)
    width.fill("0")
    width.press("Enter")
    message = page.get_by_text("Number is outside the allowed range", exact=False).first
    message.wait_for(timeout=60_000)
    wait_for_rerun(page)
    page.screenshot(path=str(ARTIFACTS / "isolation-width-out-of-range.png"))
    assert "between 1 and 512" in message.inner_text()
    assert page.get_by_text(parameters_text(SECOND)).count() >= 1
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0
    page.context.close()
