"""Every setting at and beyond its range in the dashboard, through AppTest: no setting crashes it.

A value reaches the app in two ways: the JSON in ``HESSIAN_LAB_DEFAULTS``, read on every
script run (Python's json accepts the NaN and Infinity literals), and the sidebar widgets.
For every field of ``RANGES`` both ends are accepted. Just outside each end, NaN, ±inf and
a huge value are rejected with one error message that names the field, the value and the
accepted range. For every field of ``CHOICES`` an unknown value is rejected the same way.

The widgets hold the range's limits themselves. Streamlit 1.67 resets a number input that
receives a value outside its min_value/max_value, or a non-finite float, to its starting
value without a message (``NumberInputSerde.deserialize``). In the browser such a value is
never sent: the input shows "Number is outside the allowed range" and keeps the old value.
So a value that the widget rejects leaves the settings unchanged, and only a
value the widget passes but ``Settings`` rejects (0 for a range open at 0) gets the error
next to the control. Choices have no widget row: a select box offers only valid options.

The smallest accepted settings also run through every page. Memory budgets too small
to run are rejected before the step starts, with the figures and the alternative: for
training, for the dense Hessian results, and for one block of one Hessian column.
"""

from __future__ import annotations

import gc
import json
import math
import re
from pathlib import Path

import pytest

from hessian_core.settings import CHOICES, RANGES, IntRange, Settings, describe_range

streamlit_testing = pytest.importorskip("streamlit.testing.v1")

APP = str(Path(__file__).resolve().parents[1] / "app.py")
# A run that stops at the sidebar takes under a second. The generous limit only keeps a
# slow shared machine from failing a correct run.
SCRIPT_TIMEOUT_SECONDS = 120
# Training and Hessian steps compile TensorFlow functions.
COMPUTE_TIMEOUT_SECONDS = 600
DEFAULTS = Settings()
# A huge value: far above every range, and still a number JSON can carry.
HUGE_FLOAT = 1e308
HUGE_INT = 10**30


pytestmark = pytest.mark.usefixtures("navigation_only_pages")


@pytest.fixture(autouse=True, scope="module")
def frozen_garbage_collector():
    """Keep Streamlit's per-run garbage collection from dominating a row.

    Before every script run Streamlit 1.67 calls keras.backend.clear_session(), because
    importing TensorFlow loads Keras, and that runs a full gc.collect(). Over TensorFlow's
    objects it took 0.4 s of a 0.45 s run on two shared cores. gc.freeze() leaves the
    objects alive after the imports out of later collections, so a row takes milliseconds
    while the app runs unchanged.
    """
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


# --- rows -----------------------------------------------------------------------------------


def accepted_ends(name: str) -> list:
    """The two ends of a range; an open lower end of 0 is replaced by the smallest positive float."""
    spec = RANGES[name]
    if isinstance(spec, IntRange):
        return [spec.low, spec.high]
    low = spec.low if spec.low_inclusive else math.nextafter(spec.low, math.inf)
    return [low, spec.high]


def rejected_values(name: str) -> list:
    """Just outside each end, NaN, ±inf and a huge value."""
    spec = RANGES[name]
    if isinstance(spec, IntRange):
        outside = [spec.low - 1, spec.high + 1]
        huge = HUGE_INT
    else:
        below = spec.low if not spec.low_inclusive else math.nextafter(spec.low, -math.inf)
        outside = [below, math.nextafter(spec.high, math.inf)]
        huge = HUGE_FLOAT
    return outside + [math.nan, math.inf, -math.inf, huge]


def unknown_choice(name: str) -> str:
    return f"no-such-{name.replace('_', '-')}"


def names_value(message: str, value) -> bool:
    """Whether the "got ..." part of ``message`` reads back as exactly ``value``."""
    match = re.search(r"got (\S+?)(?:;|,|$|\s)", message)
    if match is None:
        return False
    spelled = match.group(1)
    if isinstance(value, str):
        return spelled == repr(value)
    try:
        number = float(spelled)
    except ValueError:
        return False
    if isinstance(value, int):
        return spelled.lstrip("-").isdigit() and int(spelled) == value
    return number == value or (math.isnan(number) and math.isnan(value))


def names_range(message: str, name: str) -> bool:
    if name in CHOICES:
        return describe_range(name) in message
    spec = RANGES[name]
    if isinstance(spec, IntRange):
        return f"between {spec.low} and {spec.high}" in message
    return describe_range(name).removesuffix(f" {spec.unit}") in message


def assert_names_field_value_range(message: str, name: str, value) -> None:
    assert name in message, message
    assert names_value(message, value), f"{value!r} is not named in: {message}"
    assert names_range(message, name), f"the range {describe_range(name)} is not named in: {message}"


def rejected_rows() -> list:
    rows = []
    for name, spec in RANGES.items():
        for value in rejected_values(name):
            rows.append(pytest.param(name, value, id=f"{name}={value!r}"))
    return rows


def run_with_defaults(monkeypatch, values: dict, timeout: float = SCRIPT_TIMEOUT_SECONDS):
    """Start a new session whose sidebar starts from ``values``."""
    monkeypatch.setenv("HESSIAN_LAB_DEFAULTS", json.dumps(values))
    return streamlit_testing.AppTest.from_file(APP, default_timeout=timeout).run()


@pytest.fixture(scope="module")
def rejecting_session():
    """One session for the rejected rows, run again for each value.

    The app reads the variable on every run, and a rejected value stops the run before the
    sidebar draws a widget, so no row leaves state behind for the next one.
    """
    patch = pytest.MonkeyPatch()
    patch.setenv("HESSIAN_LAB_DEFAULTS", json.dumps({"width": 0}))
    at = streamlit_testing.AppTest.from_file(APP, default_timeout=SCRIPT_TIMEOUT_SECONDS).run()
    yield at
    patch.undo()


def current_settings(at) -> Settings:
    return at.session_state["hessian_lab_settings"]


# --- through HESSIAN_LAB_DEFAULTS -----------------------------------------------------------


def test_defaults_json_keeps_nan_and_infinity():
    """The rows below rely on json writing and reading NaN and Infinity as Python does."""
    text = json.dumps({"learning_rate": math.nan, "width": -math.inf})
    assert text == '{"learning_rate": NaN, "width": -Infinity}'
    values = json.loads(text)
    assert math.isnan(values["learning_rate"])
    assert values["width"] == -math.inf


@pytest.mark.parametrize("name, value", [(name, value) for name in RANGES for value in accepted_ends(name)])
def test_defaults_range_end_accepted(monkeypatch, name, value):
    at = run_with_defaults(monkeypatch, {name: value})
    assert not at.exception, [element.message for element in at.exception]
    assert not at.error, [element.value for element in at.error]
    assert getattr(current_settings(at), name) == value


@pytest.mark.parametrize("name, value", rejected_rows())
def test_defaults_bad_value_rejected(monkeypatch, rejecting_session, name, value):
    monkeypatch.setenv("HESSIAN_LAB_DEFAULTS", json.dumps({name: value}))
    at = rejecting_session.run()
    assert not at.sidebar.number_input, "a rejected value must stop the run before the sidebar"
    assert not at.exception, [element.message for element in at.exception]
    messages = [element.value for element in at.error]
    assert len(messages) == 1, messages
    assert messages[0].startswith("Invalid HESSIAN_LAB_DEFAULTS: ")
    assert_names_field_value_range(messages[0], name, value)


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_defaults_unknown_choice_rejected(monkeypatch, rejecting_session, name):
    value = unknown_choice(name)
    monkeypatch.setenv("HESSIAN_LAB_DEFAULTS", json.dumps({name: value}))
    at = rejecting_session.run()
    assert not at.exception, [element.message for element in at.exception]
    messages = [element.value for element in at.error]
    assert len(messages) == 1, messages
    assert_names_field_value_range(messages[0], name, value)


# --- through the sidebar widgets ------------------------------------------------------------


class SidebarSession:
    """One session started from the defaults, shared by the widget rows and replaced if a row breaks it."""

    def __init__(self) -> None:
        self._app_test = None

    def get(self):
        if self._app_test is None:
            self._app_test = streamlit_testing.AppTest.from_file(APP, default_timeout=SCRIPT_TIMEOUT_SECONDS).run()
        return self._app_test

    def reset(self, name: str) -> None:
        """Put the widget of ``name`` back to its starting value, or drop a broken session."""
        at = self._app_test
        try:
            if at is not None and not at.exception:
                set_widget(at, name, getattr(DEFAULTS, name))
        except KeyError:
            pass
        if at is not None and (at.exception or at.error):
            self._app_test = None


@pytest.fixture(scope="module")
def sidebar():
    patch = pytest.MonkeyPatch()
    patch.delenv("HESSIAN_LAB_DEFAULTS", raising=False)
    yield SidebarSession()
    patch.undo()


def widget_accepts(name: str, value) -> bool:
    """Whether the number input passes ``value`` on: finite and inside its min_value/max_value."""
    spec = RANGES[name]
    return math.isfinite(value) and spec.low <= value <= spec.high


def set_widget(at, name: str, value):
    return at.number_input(key=f"setting_{name}").set_value(value).run()


def widget_rows() -> list:
    rows = []
    for name in RANGES:
        spec = RANGES[name]
        values = accepted_ends(name) + rejected_values(name)
        if isinstance(spec, IntRange):
            # An integer number input converts the value with int() before checking its
            # limits, so NaN and ±inf raise inside Streamlit ("cannot convert float NaN to
            # integer") before the script runs. The browser never sends them: it rejects
            # any value outside the limits itself.
            values = [value for value in values if math.isfinite(value)]
        rows += [pytest.param(name, value, id=f"{name}={value!r}") for value in values]
    return rows


@pytest.mark.parametrize("name, value", widget_rows())
def test_widget_value_checked(sidebar, name, value):
    at = set_widget(sidebar.get(), name, value)
    try:
        assert not at.exception, [element.message for element in at.exception]
        starting = getattr(DEFAULTS, name)
        if not widget_accepts(name, value):
            # Streamlit put the starting value back, so nothing ran with the rejected one.
            assert at.number_input(key=f"setting_{name}").value == starting
            assert not at.error, [element.value for element in at.error]
            assert getattr(current_settings(at), name) == starting
        elif value in accepted_ends(name):
            assert not at.error, [element.value for element in at.error]
            assert getattr(current_settings(at), name) == value
        else:
            # Inside the widget's limits but outside the range: the open end at 0.
            messages = [element.value for element in at.sidebar.error]
            assert len(messages) == 1, messages
            assert_names_field_value_range(messages[0], name, value)
            assert any("A setting in the sidebar is invalid" in element.value for element in at.main.error)
    finally:
        sidebar.reset(name)


# --- the smallest accepted settings through every page ---------------------------------------

# Every range at its lower end, except two: a memory budget of 0.0625 GiB cannot train (a
# test below checks that), and the landscape plane needs two eigenvectors.
SMALLEST = {name: accepted_ends(name)[0] for name in RANGES} | {"memory_budget_gib": 2.0, "top_k": 2}


@pytest.fixture(scope="module")
def smallest_session():
    """One session trained with SMALLEST: P = 5, one point of each kind, no training steps."""
    patch = pytest.MonkeyPatch()
    patch.setenv("HESSIAN_LAB_DEFAULTS", json.dumps(SMALLEST))
    at = streamlit_testing.AppTest.from_file(APP, default_timeout=COMPUTE_TIMEOUT_SECONDS).run()
    at.button[0].click().run()
    yield at
    patch.undo()


@pytest.mark.parametrize("page", ["pages/train.py", "pages/hessian.py", "pages/spectrum.py"])
def test_smallest_settings_page_runs(smallest_session, page):
    at = smallest_session.switch_page(page).run()
    assert not at.exception, [element.message for element in at.exception]
    assert not at.error, [element.value for element in at.error]
    assert current_settings(at) == Settings(**SMALLEST)


def test_smallest_settings_landscape_page_runs(smallest_session):
    at = smallest_session.switch_page("pages/landscape.py").run()
    assert not at.exception, [element.message for element in at.exception]
    assert not at.error, [element.value for element in at.error]


# --- memory budgets too small to run --------------------------------------------------------


def test_budget_below_dense_results_rejected(monkeypatch):
    """P = 5,301: three dense matrices need 0.63 GiB, more than a budget of 0.5 GiB."""
    values = {
        "memory_budget_gib": 0.5, "spectrum": "lanczos", "n_interior": 200, "n_boundary": 100,
        "adam_steps": 0, "lbfgs_steps": 0, "test_grid": 11,
    }
    settings = Settings(**values)
    at = run_with_defaults(monkeypatch, values, COMPUTE_TIMEOUT_SECONDS)
    notes = [element.value for element in at.sidebar.warning]
    assert len(notes) == 1, notes
    assert "5,301 × 5,301 Hessian does not fit the memory budget" in notes[0]
    assert "0.63 GiB, more than 0.5 GiB" in notes[0]
    assert "'matrix-free'" in notes[0]

    at.button[0].click().run()
    assert not at.exception, [element.message for element in at.exception]
    assert not at.error, [element.value for element in at.error]
    assert at.session_state["hessian_lab_results"]["training"].settings == settings
    at.switch_page("pages/hessian.py").run()
    assert not at.exception, [element.message for element in at.exception]
    assert not at.error, [element.value for element in at.error]
    rejections = [element.value for element in at.main.warning if "does not fit the memory budget" in element.value]
    assert len(rejections) == 1, [element.value for element in at.main.warning]
    assert "0.63 GiB, more than 0.5 GiB" in rejections[0]
    assert "raise the memory budget to at least 0.75 GiB" in rejections[0]
    assert "hessian" not in at.session_state["hessian_lab_results"]
    assert not at.get("plotly_chart")


def test_lowest_budget_rejects_training(monkeypatch):
    """The lowest accepted budget, 0.0625 GiB, is below the fixed 400 MiB of the training estimate."""
    at = run_with_defaults(monkeypatch, {"memory_budget_gib": 0.0625, "adam_steps": 1, "lbfgs_steps": 0})
    assert not at.error, [element.value for element in at.error]
    at.button[0].click().run()
    assert not at.exception, [element.message for element in at.exception]
    messages = [element.value for element in at.error]
    assert len(messages) == 1, messages
    assert messages[0].startswith("Training failed: training 1000 interior points")
    assert "more than the memory budget of 64.0 MiB" in messages[0]
    assert "raise the memory budget" in messages[0]
    assert "training" not in at.session_state["hessian_lab_results"]


def test_budget_below_one_block_rejected(monkeypatch):
    """jacobian-pfor keeps every activation per column: 20,000 interior points need about 0.5 GB for one."""
    values = {
        "memory_budget_gib": 0.5, "hessian_method": "jacobian-pfor", "spectrum": "lanczos", "hidden_layers": 2,
        "width": 8, "n_interior": 20_000, "n_boundary": 1000, "adam_steps": 0, "lbfgs_steps": 0, "test_grid": 11,
    }
    at = run_with_defaults(monkeypatch, values, COMPUTE_TIMEOUT_SECONDS)
    # The dense results of P = 105 are tiny, so the sidebar has nothing to warn about.
    assert not at.sidebar.warning, [element.value for element in at.sidebar.warning]
    at.button[0].click().run()
    assert not at.error, [element.value for element in at.error]
    assert "training" in at.session_state["hessian_lab_results"]
    at.switch_page("pages/hessian.py").run()
    assert not at.exception, [element.message for element in at.exception]
    messages = [element.value for element in at.error]
    assert len(messages) == 1, messages
    message = messages[0]
    assert message.startswith("The Hessian failed: the jacobian-pfor Hessian of 105 parameters")
    assert "with one column per block needs about" in message
    assert "more than the memory budget of 0.50 GiB" in message
    assert "matrix-free" in message
    assert "hessian" not in at.session_state["hessian_lab_results"]
