"""The dashboard under non-finite values and interruption, driven headless by Streamlit's AppTest.

Small scripts that import ``app_state`` check the error display, the stored results and the
interruption mark; one test drives the real app through divergent training.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

streamlit_testing = pytest.importorskip("streamlit.testing.v1")

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
SCRIPT_TIMEOUT_SECONDS = 60
# The real app compiles TensorFlow functions on its first training; two shared cores are slow.
APP_TIMEOUT_SECONDS = 600
INTERRUPTED_NOTE = "The last hessian computation was interrupted before it finished; nothing from it was kept."


pytestmark = pytest.mark.usefixtures("navigation_only_pages")


@pytest.fixture(autouse=True)
def importable_app_state(monkeypatch):
    """Let the scripts import ``app_state``."""
    monkeypatch.syspath_prepend(str(ROOT))


def run_script(script: str, **session_values) -> object:
    at = streamlit_testing.AppTest.from_string(script, default_timeout=SCRIPT_TIMEOUT_SECONDS)
    for key, value in session_values.items():
        at.session_state[key] = value
    return at.run()


def markdown_texts(at) -> list[str]:
    return [element.value for element in at.markdown]


def warning_texts(at) -> list[str]:
    return [element.value for element in at.warning]


def app_state_results(at) -> dict:
    return at.session_state["hessian_lab_results"] if "hessian_lab_results" in at.session_state else {}


# --- A non-finite value shown as an error -------------------------------------------------------

SPECTRUM_OF_NAN_MATRIX = """
import numpy as np
import app_state
from hessian_core.spectrum import dense_spectrum

app_state.interrupted_note("spectrum")
with app_state.errors_on_page("The spectrum", kind="spectrum"):
    matrix = np.eye(4)
    matrix[3, 0] = matrix[0, 3] = np.nan
    dense_spectrum(matrix, top_k=1)
"""


def test_nonfinite_error_shown_without_traceback():
    at = run_script(SPECTRUM_OF_NAN_MATRIX)
    assert not at.exception, [e.message for e in at.exception]
    assert len(at.error) == 1
    assert at.error[0].value.startswith("The spectrum failed: The matrix contains NaN in column 0.")
    assert "smaller learning rate" in at.error[0].value
    # A caught error ends the running mark: the next run shows no interruption note.
    at.run()
    assert not at.exception
    assert warning_texts(at) == []


# --- Earlier results survive a failing computation ----------------------------------------------

FAILING_SECOND_HESSIAN = """
import numpy as np
import streamlit as st
import app_state
from hessian_core.hessian_methods import compute_hessian
from hessian_core.loss import PoissonLoss
from hessian_core.settings import Settings

settings = Settings(hidden_layers=1, width=4, n_interior=20, n_boundary=8)
if app_state.latest_result("hessian") is None:
    app_state.save_result("hessian", settings, "earlier Hessian")
else:
    with app_state.errors_on_page("The Hessian", kind="hessian"):
        loss = PoissonLoss.from_settings(settings)
        theta = np.full(loss.n_params, np.nan)
        app_state.save_result("hessian", settings, compute_hessian(loss, theta))
st.write(f"stored: {app_state.latest_result('hessian').value}")
"""


def test_failed_computation_keeps_earlier_result():
    at = run_script(FAILING_SECOND_HESSIAN)
    assert not at.error
    first_id = at.session_state["hessian_lab_results"]["hessian"].result_id
    assert "stored: earlier Hessian" in markdown_texts(at)

    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert len(at.error) == 1
    assert at.error[0].value.startswith("The Hessian failed: θ contains NaN at index 0 (layer 1 kernel [0, 0])")
    assert "stored: earlier Hessian" in markdown_texts(at)
    assert at.session_state["hessian_lab_results"]["hessian"].result_id == first_id


# --- Interruption ----------------------------------------------------------------------------------

INTERRUPTED_HESSIAN = """
import streamlit as st
import app_state
from streamlit.runtime.scriptrunner_utils.exceptions import StopException
from hessian_core.settings import Settings

app_state.interrupted_note("hessian")
st.write("page drawn")
interrupt = st.session_state.get("interrupt")
st.session_state["interrupt"] = None
if interrupt:
    with app_state.errors_on_page("The Hessian", kind="hessian"):
        st.write("computing")
        if interrupt == "after save":
            app_state.save_result("hessian", Settings(), "finished Hessian")
        if interrupt == "rerun":
            st.rerun()
        raise StopException()
    st.write("after the block")
"""


def test_stop_leaves_mark_and_note_shows_once():
    at = run_script(INTERRUPTED_HESSIAN, interrupt="stop")
    assert not at.exception, [e.message for e in at.exception]
    assert "computing" in markdown_texts(at)
    assert "after the block" not in markdown_texts(at)
    assert not at.error
    assert warning_texts(at) == []

    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert warning_texts(at) == [INTERRUPTED_NOTE]
    assert "page drawn" in markdown_texts(at)
    assert app_state_results(at) == {}

    at.run()
    assert warning_texts(at) == []


def test_rerun_mid_computation_shows_note():
    # st.rerun() raises Streamlit's RerunException, as a widget change during a run does;
    # the rerun happens within this at.run() and shows the note.
    at = run_script(INTERRUPTED_HESSIAN, interrupt="rerun")
    assert not at.exception, [e.message for e in at.exception]
    assert warning_texts(at) == [INTERRUPTED_NOTE]
    assert "computing" not in markdown_texts(at)


def test_stop_after_save_is_not_reported():
    at = run_script(INTERRUPTED_HESSIAN, interrupt="after save")
    assert not at.exception
    at.run()
    assert warning_texts(at) == []
    assert app_state_results(at)["hessian"].value == "finished Hessian"


# --- The real app with learning rate 10 -------------------------------------------------------------

SMALL_APP = {
    "hidden_layers": 2,
    "width": 6,
    "n_interior": 100,
    "n_boundary": 40,
    "adam_steps": 20,
    "lbfgs_steps": 0,
    "test_grid": 11,
}


def test_divergent_training_keeps_earlier_model(monkeypatch):
    monkeypatch.setenv("HESSIAN_LAB_DEFAULTS", json.dumps(SMALL_APP))
    at = streamlit_testing.AppTest.from_file(APP, default_timeout=APP_TIMEOUT_SECONDS).run()
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    earlier = at.session_state["hessian_lab_results"]["training"]
    earlier_error_metric = [m.value for m in at.metric if m.label == "Relative L2 error"]
    assert len(earlier_error_metric) == 1

    at.number_input(key="setting_learning_rate").set_value(10.0).run()
    at.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1, errors
    assert errors[0].startswith("Training failed: training diverged: the ")
    assert " at adam step " in errors[0]
    assert "lower the learning rate (now 10)" in errors[0]

    stored = at.session_state["hessian_lab_results"]["training"]
    assert stored.result_id == earlier.result_id
    assert any("Stale training result" in text and "learning_rate" in text for text in warning_texts(at))
    assert [m.value for m in at.metric if m.label == "Relative L2 error"] == earlier_error_metric
