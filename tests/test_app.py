"""Headless tests of the dashboard with Streamlit's AppTest on a small configuration.

The small configuration reaches the app through ``HESSIAN_LAB_DEFAULTS``, the same JSON
variable a user can set. Two hidden layers of width 24 give P = 697 parameters, just above
the 600-cell heatmap limit, so the Hessian heatmap is pooled with 2 × 2 tiles.
One AppTest session trains once and visits every page; the tests run in file order.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from hessian_core.hessian_methods import compute_hessian
from hessian_core.loss import PoissonLoss
from hessian_core.settings import Settings
from hessian_core.training import train

streamlit_testing = pytest.importorskip("streamlit.testing.v1")

APP = str(Path(__file__).resolve().parents[1] / "app.py")
SMALL = {
    "hidden_layers": 2,
    "width": 24,
    "n_interior": 200,
    "n_boundary": 120,
    "adam_steps": 40,
    "lbfgs_steps": 10,
    "test_grid": 21,
    "top_k": 4,
    "landscape_points": 9,
}
SMALL_SETTINGS = Settings(**SMALL)
# Page runs compile TensorFlow functions; on two shared cores that takes tens of seconds.
TIMEOUT_SECONDS = 600


def array_of(value) -> np.ndarray:
    """Decode an array from a Plotly figure spec, which stores NumPy arrays as typed base64."""
    if isinstance(value, dict) and "bdata" in value:
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            data = data.reshape([int(side) for side in str(shape).split(",")])
        return data
    return np.asarray(value)


def figure_specs(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def figure_titled(at, start: str) -> dict:
    for spec in figure_specs(at):
        if spec["layout"].get("title", {}).get("text", "").startswith(start):
            return spec
    titles = [spec["layout"].get("title", {}).get("text") for spec in figure_specs(at)]
    raise AssertionError(f"no figure titled {start!r}; the page has {titles}")


def metric_value(at, label: str) -> str:
    for metric in at.metric:
        if metric.label == label:
            return metric.value
    raise AssertionError(f"no metric {label!r}; the page has {[m.label for m in at.metric]}")


pytestmark = pytest.mark.usefixtures("navigation_only_pages")


def assert_clean(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(scope="module")
def session():
    """One app session with the small configuration, trained once."""
    patch = pytest.MonkeyPatch()
    patch.setenv("HESSIAN_LAB_DEFAULTS", json.dumps(SMALL))
    at = streamlit_testing.AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS)
    at.run()
    assert_clean(at)
    at.button[0].click().run()
    yield at
    patch.undo()


def test_train_page_figures(session):
    at = session
    assert_clean(at)
    loss = figure_titled(at, "Loss during training")
    assert [trace["type"] for trace in loss["data"]] == ["scatter"] * 3
    assert [trace["name"] for trace in loss["data"]] == ["total", "PDE", "boundary"]
    assert loss["layout"]["yaxis"]["type"] == "log"
    assert loss["layout"]["xaxis"]["title"]["text"].startswith("step")
    predicted = figure_titled(at, "Predicted u")
    assert predicted["data"][0]["type"] == "heatmap"
    assert array_of(predicted["data"][0]["z"]).shape == (21, 21)
    assert figure_titled(at, "Exact u")["data"][0]["type"] == "heatmap"


def test_error_map_shows_boundary_points(session):
    spec = figure_titled(session, "Error u_θ − u_exact")
    assert [trace["type"] for trace in spec["data"]] == ["heatmap", "scatter"]
    points = spec["data"][1]
    assert array_of(points["x"]).size == SMALL["n_boundary"]
    assert "edges" in points["name"]


def test_train_metrics_match_core(session):
    direct = train(SMALL_SETTINGS)
    assert metric_value(session, "Relative L2 error") == f"{direct.relative_l2_error:.3e}"
    assert metric_value(session, "Final loss") == f"{direct.loss:.3e}"


def test_settings_summary_names_sampling(session):
    text = " ".join(expander.label for expander in session.expander)
    assert "boundary sampling edges" in text


def test_hessian_page_heatmap_pooled(session):
    at = session.switch_page("pages/hessian.py").run()
    assert_clean(at)
    spec = figure_titled(at, "total Hessian: rows 0–696")
    heatmap = spec["data"][0]
    assert heatmap["type"] == "heatmap"
    assert array_of(heatmap["z"]).shape == (349, 349)
    assert spec["layout"]["xaxis"]["title"]["text"] == "θ index (column)"
    assert "layer 1 kernel" in spec["layout"]["yaxis"]["ticktext"]
    assert "layer 3 bias" in spec["layout"]["xaxis"]["ticktext"]
    assert heatmap["colorscale"][0][1] != heatmap["colorscale"][-1][1]
    assert "pooled 2×2" in spec["layout"]["title"]["text"]


def test_hessian_block_at_full_resolution(session):
    spec = figure_titled(session, "total Hessian: rows 72–")
    assert "full resolution" in spec["layout"]["title"]["text"]
    # Layer 2 kernel is 24 × 24 = 576 entries, so its block fits at full resolution.
    assert array_of(spec["data"][0]["z"]).shape == (576, 576)


def test_hessian_block_norms_and_record(session):
    spec = figure_titled(session, "Frobenius norm of each block")
    assert array_of(spec["data"][0]["z"]).shape == (6, 6)
    assert metric_value(session, "Parameters") == f"{SMALL_SETTINGS.n_params:,}"
    assert any("forward-over-reverse method in float64" in caption.value for caption in session.caption)
    assert metric_value(session, "Computed in") == "float64"


def test_hessian_terms_selector(session):
    at = session
    at.radio(key="hessian_term").set_value("PDE").run()
    assert_clean(at)
    figure_titled(at, "PDE Hessian")
    at.radio(key="hessian_term").set_value("H − GN").run()
    assert_clean(at)
    figure_titled(at, "H − GN Hessian")
    at.radio(key="hessian_term").set_value("total").run()


def test_spectrum_page_figures(session):
    at = session.switch_page("pages/spectrum.py").run()
    assert_clean(at)
    spec = figure_titled(at, "Sorted eigenvalues")
    assert spec["data"][0]["type"] == "scatter"
    assert spec["layout"]["yaxis"]["title"]["text"] == "eigenvalue λ (symlog)"
    assert array_of(spec["data"][0]["y"]).size == SMALL_SETTINGS.n_params
    density = figure_titled(at, "Eigenvalue density")
    assert density["data"][0]["type"] == "bar"
    # The term spectra cost two more eigendecompositions, so they wait for the button.
    assert len(figure_specs(at)) == 2
    at.button(key="compute_term_spectra").click().run()
    assert_clean(at)
    overlaid = [s for s in figure_specs(at) if s["layout"]["title"]["text"] == "Sorted eigenvalues" and len(s["data"]) == 3]
    assert [trace["name"] for trace in overlaid[0]["data"]] == ["total", "PDE", "boundary"]


def test_term_spectra_match_core(session):
    at = session
    stored = at.session_state["hessian_lab_results"]
    hessian = stored["hessian"].value
    spectra = stored["spectrum"].value.spectra
    # float64 eigenvalues of the same matrices; LAPACK drivers may differ in the last digits.
    np.testing.assert_allclose(spectra["PDE"], np.linalg.eigvalsh(hessian.pde), rtol=0, atol=1e-10 * np.abs(spectra["PDE"]).max())
    np.testing.assert_allclose(
        spectra["boundary"], np.linalg.eigvalsh(hessian.boundary), rtol=0, atol=1e-10 * np.abs(spectra["boundary"]).max()
    )


def test_spectrum_metrics_match_core(session):
    at = session
    model = at.session_state["hessian_lab_results"]["training"].value
    loss = PoissonLoss.from_settings(SMALL_SETTINGS)
    direct = compute_hessian(loss, model.result.theta, split_terms=False)
    eigenvalues = np.linalg.eigvalsh(direct.matrix)
    assert metric_value(at, "λ_max") == f"{eigenvalues[-1]:.4e}"
    assert metric_value(at, "λ_min") == f"{eigenvalues[0]:.4e}"
    table = at.dataframe[0].value
    np.testing.assert_allclose(table["eigenvalue"].to_numpy(), eigenvalues[::-1][: SMALL["top_k"]], rtol=1e-8)
    assert np.all(table["residual ‖Hv − λv‖ / |λ|"].to_numpy() < 1e-8)


def test_landscape_page_figures(session):
    at = session.switch_page("pages/landscape.py").run()
    assert_clean(at)
    slices = figure_titled(at, "Loss along eigenvectors")
    dashed = [trace for trace in slices["data"] if trace.get("line", {}).get("dash") == "dash"]
    assert len(dashed) == 3
    assert array_of(slices["data"][0]["x"]).size == SMALL["landscape_points"]
    assert len(figure_titled(at, "Loss along random")["data"]) == 4
    contour = figure_titled(at, "Loss over the plane")
    assert contour["data"][0]["type"] == "contour"
    assert array_of(contour["data"][0]["z"]).shape == (9, 9)
    assert figure_titled(at, "u at θ + 0·v₁")["data"][0]["type"] == "heatmap"
    assert figure_titled(at, "PDE residual")["data"][0]["type"] == "heatmap"


def test_landscape_slider_redraws_solution(session):
    at = session
    before = array_of(figure_titled(at, "u at θ + 0·v₁")["data"][0]["z"])
    at.slider(key="shift_alpha").set_value(0.5).run()
    assert_clean(at)
    after = array_of(figure_titled(at, "u at θ + 0.5·v₁")["data"][0]["z"])
    assert after.shape == before.shape
    assert np.max(np.abs(after - before)) > 1e-6


def test_landscape_setting_marks_only_landscape_stale(session):
    # A full run first: the slider above reran only its fragment.
    at = session.switch_page("pages/landscape.py").run()
    at.number_input(key="setting_landscape_points").set_value(7).run()
    assert any("landscape_points 9 → 7" in warning.value for warning in at.warning)
    # The old contour is still shown, marked stale, and nothing was recomputed for 7 points.
    assert array_of(figure_titled(at, "Loss over the plane")["data"][0]["z"]).shape == (9, 9)
    at.switch_page("pages/hessian.py").run()
    assert not any("Stale" in warning.value for warning in at.warning)
    at.number_input(key="setting_landscape_points").set_value(9).run()


def test_model_setting_marks_every_result_stale(session):
    at = session
    at.number_input(key="setting_width").set_value(25).run()
    assert_clean(at)
    notes = " ".join(warning.value for warning in at.warning)
    assert "width 24 → 25" in notes
    at.switch_page("pages/train.py").run()
    assert any("Stale training result" in warning.value for warning in at.warning)
    at.switch_page("pages/spectrum.py").run()
    assert any("Stale spectrum result" in warning.value for warning in at.warning)


def test_invalid_setting_error_next_to_control(monkeypatch):
    monkeypatch.delenv("HESSIAN_LAB_DEFAULTS", raising=False)
    at = streamlit_testing.AppTest.from_file(APP, default_timeout=60).run()
    at.number_input(key="setting_learning_rate").set_value(0.0).run()
    assert not at.exception
    messages = [error.value for error in at.error]
    assert any("learning_rate must be in (0, 10]" in message for message in messages)


def test_memory_budget_warning_before_run(monkeypatch):
    monkeypatch.delenv("HESSIAN_LAB_DEFAULTS", raising=False)
    at = streamlit_testing.AppTest.from_file(APP, default_timeout=60).run()
    at.number_input(key="setting_memory_budget_gib").set_value(0.5).run()
    warnings = [warning.value for warning in at.sidebar.warning]
    assert any("matrix-free" in warning and "0.5 GiB" in warning for warning in warnings)


def test_bad_defaults_variable_reported(monkeypatch):
    monkeypatch.setenv("HESSIAN_LAB_DEFAULTS", '{"width": 0}')
    at = streamlit_testing.AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "width must be between 1 and 512, got 0" in at.error[0].value


def test_top_edge_sampling_shown_on_page(monkeypatch):
    monkeypatch.setenv("HESSIAN_LAB_DEFAULTS", json.dumps({**SMALL, "boundary": "top-edge", "adam_steps": 5, "lbfgs_steps": 0}))
    at = streamlit_testing.AppTest.from_file(APP, default_timeout=TIMEOUT_SECONDS).run()
    at.button[0].click().run()
    assert_clean(at)
    points = figure_titled(at, "Error u_θ − u_exact")["data"][1]
    assert "top-edge" in points["name"]
    assert np.all(array_of(points["y"]) == 1.0)
    assert np.all((array_of(points["x"]) >= 0.0) & (array_of(points["x"]) <= 1.0))
    summary = " ".join(expander.label for expander in at.expander)
    assert "boundary sampling top-edge" in summary


ERROR_SCRIPT = """
import app_state
from hessian_core.memory import MemoryBudgetError

with app_state.errors_on_page("The Hessian"):
    raise MemoryBudgetError("the dense results", 3 * 2**30, 2**30, "use matrix-free")
"""


def test_core_errors_shown_without_traceback(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(APP).parent))
    at = streamlit_testing.AppTest.from_string(ERROR_SCRIPT, default_timeout=30).run()
    assert not at.exception
    assert "The Hessian failed: the dense results needs about 3.00 GiB" in at.error[0].value
    assert "use matrix-free" in at.error[0].value
