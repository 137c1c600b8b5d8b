"""Tests of the dashboard's view computations, each against a direct NumPy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hessian_core import views
from hessian_core.network import NetworkLayout
from hessian_core.settings import Settings
from hessian_core.training import TrainingStep


def brute_force_pool(matrix: np.ndarray, tile: int) -> np.ndarray:
    """Reference pooling: loop over tiles and keep the entry of largest magnitude."""
    rows = math.ceil(matrix.shape[0] / tile)
    cols = math.ceil(matrix.shape[1] / tile)
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            block = matrix[i * tile : (i + 1) * tile, j * tile : (j + 1) * tile]
            flat = block.ravel()
            out[i, j] = flat[np.argmax(np.abs(flat))]
    return out


@pytest.mark.parametrize("shape, max_cells", [((5301, 5301), 600), ((37, 23), 10), ((601, 601), 600), ((12, 12), 600)])
def test_pool_matches_brute_force(shape, max_cells):
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 3, size=shape)
    pooled = views.pool_max_magnitude(matrix, max_cells)
    expected_tile = max(1, math.ceil(max(shape) / max_cells))
    assert pooled.tile == expected_tile
    assert max(pooled.values.shape) <= max_cells
    if shape[0] > 1000:
        # The brute-force loop is slow at this size; check a corner of tiles only.
        corner = matrix[: 30 * pooled.tile, : 30 * pooled.tile]
        np.testing.assert_array_equal(pooled.values[:30, :30], brute_force_pool(corner, pooled.tile))
    else:
        np.testing.assert_array_equal(pooled.values, brute_force_pool(matrix, pooled.tile))


def test_pool_keeps_sign_of_largest_magnitude():
    matrix = np.array([[1.0, -5.0], [4.0, 2.0]])
    pooled = views.pool_max_magnitude(matrix, max_cells=1)
    assert pooled.values.tolist() == [[-5.0]]


def test_pool_default_hessian_size():
    pooled = views.pool_max_magnitude(np.zeros((5301, 5301)))
    assert pooled.tile == 9
    assert pooled.values.shape == (589, 589)
    assert pooled.starts(0)[-1] == 5292


def test_pool_rejects_non_matrix():
    with pytest.raises(ValueError, match="2-D"):
        views.pool_max_magnitude(np.zeros(5))


def test_symlog_round_trip_and_sign():
    values = np.array([-1e4, -1.0, -1e-9, 0.0, 1e-9, 1.0, 1e4])
    transformed = views.symlog(values, 1e-3)
    np.testing.assert_allclose(views.inverse_symlog(transformed, 1e-3), values, rtol=1e-12, atol=1e-24)
    assert np.all(np.sign(transformed) == np.sign(values))
    assert np.all(np.diff(transformed) > 0)


def test_symlog_linear_near_zero():
    # For |x| much smaller than c, log10(1 + x/c) ≈ x / (c ln 10).
    threshold = 1.0
    x = 1e-8
    assert views.symlog(np.array(x), threshold) == pytest.approx(x / math.log(10), rel=1e-7)


def test_symlog_rejects_bad_threshold():
    with pytest.raises(ValueError, match="positive"):
        views.symlog(np.ones(2), 0.0)


def test_symlog_ticks_labels_match_positions():
    positions, labels = views.symlog_ticks(max_abs=250.0, linear_threshold=1e-3)
    assert labels[len(labels) // 2] == "0"
    for position, label in zip(positions, labels):
        assert views.inverse_symlog(np.array(position), 1e-3) == pytest.approx(float(label), rel=1e-9)
    assert len(positions) <= 9
    assert positions == sorted(positions)


def test_symlog_threshold_zero_matrix():
    assert views.symlog_threshold(0.0, 4) == 1.0
    assert views.symlog_threshold(200.0, 2) == pytest.approx(2.0)


def test_block_boundaries_default_layout():
    layout = NetworkLayout.from_widths((2, 50, 50, 50, 1))
    assert views.block_boundaries(layout) == [100, 150, 2650, 2700, 5200, 5250, 5300]


def test_spread_positions_keeps_gap_and_order():
    centers = [0.0, 1.0, 2.0, 50.0, 98.0, 99.0, 100.0]
    positions = views.spread_positions(centers, min_gap=5.0, low=0.0, high=100.0)
    assert np.all(np.diff(positions) >= 5.0 - 1e-12)
    assert positions[0] >= 0.0
    assert positions[-1] <= 100.0
    assert positions[3] == 50.0


def test_block_labels_cover_window():
    layout = NetworkLayout.from_widths((2, 50, 50, 50, 1))
    labels = views.block_labels(layout, 2600, 2800)
    assert labels.names == ["layer 2 kernel", "layer 2 bias", "layer 3 kernel"]
    assert np.all(np.diff(labels.positions) >= 0.03 * 200 - 1e-9)


def test_block_frobenius_norms_match_slices():
    layout = NetworkLayout.from_widths((2, 3, 1))
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((layout.n_params, layout.n_params))
    norms = views.block_frobenius_norms(matrix, layout)
    assert norms.shape == (4, 4)
    kernel, bias = layout.blocks[0], layout.blocks[1]
    expected = np.sqrt(np.sum(matrix[kernel.offset : kernel.stop, bias.offset : bias.stop] ** 2))
    assert norms[0, 1] == pytest.approx(expected, rel=1e-14)
    assert np.sqrt(np.sum(norms**2)) == pytest.approx(np.linalg.norm(matrix), rel=1e-12)


def test_block_frobenius_norms_reject_wrong_shape():
    layout = NetworkLayout.from_widths((2, 3, 1))
    with pytest.raises(ValueError, match="shape"):
        views.block_frobenius_norms(np.zeros((3, 3)), layout)


def test_block_range_and_unknown_name():
    layout = NetworkLayout.from_widths((2, 50, 50, 50, 1))
    assert views.block_range(layout, "layer 2 bias") == (2650, 2700)
    with pytest.raises(KeyError, match="layer 1 kernel"):
        views.block_range(layout, "layer 9 kernel")


def test_clip_range_limits_size():
    assert views.clip_range(150, 2650, 5301, max_size=600) == (150, 750)
    assert views.clip_range(-5, 40, 30) == (0, 30)
    with pytest.raises(ValueError, match="empty"):
        views.clip_range(40, 40, 100)


def test_result_key_covers_each_dependency():
    base = Settings(width=8)
    changes = {"width": 9, "seed": 1, "boundary": "top-edge", "hessian_method": "reverse-over-reverse",
               "landscape_points": 11, "landscape_range": 0.5, "top_k": 3, "spectrum": "lanczos", "test_grid": 21}
    for kind, fields in views.RESULT_DEPENDENCIES.items():
        for name, value in changes.items():
            changed = base.replace(**{name: value})
            same = views.result_key(kind, changed) == views.result_key(kind, base)
            assert same == (name not in fields), f"{kind} key and {name}"


def test_landscape_key_changes_with_grid_and_range():
    # A landscape computed on one grid must never be reused for another grid or range.
    base = Settings(width=8)
    key = views.result_key("landscape", base)
    assert views.result_key("landscape", base.replace(landscape_points=21)) != key
    assert views.result_key("landscape", base.replace(landscape_range=2.0)) != key
    assert views.result_key("landscape", base.replace(seed=5)) != key


def test_memory_budget_not_in_keys():
    base = Settings(width=8)
    for kind in views.RESULT_DEPENDENCIES:
        assert views.result_key(kind, base) == views.result_key(kind, base.replace(memory_budget_gib=8.0))


def test_describe_changes_names_values():
    old, new = Settings(width=8), Settings(width=16, seed=2)
    assert views.describe_changes("hessian", old, new) == "width 8 → 16, seed 0 → 2"
    assert views.describe_changes("training", old, old.replace(landscape_points=11)) == ""


def test_result_key_unknown_kind():
    with pytest.raises(KeyError, match="training"):
        views.result_key("weights", Settings())


def test_settings_summary_names_sampling():
    summary = views.settings_summary(Settings(boundary="top-edge"))
    assert "top-edge" in summary["boundary points"]
    assert "unconstrained" in summary["boundary points"]
    assert "5,301 parameters" in summary["network"]


def test_training_progress_counts_both_phases():
    adam = TrainingStep("adam", 50, 150, 1.0, 0.5, 0.5, 10.0)
    progress = views.training_progress(adam, adam_steps=100)
    assert progress.done == 50
    assert progress.fraction == pytest.approx(1 / 3)
    assert progress.remaining_seconds == pytest.approx(20.0)
    lbfgs = TrainingStep("lbfgs", 25, 150, 1.0, 0.5, 0.5, 30.0)
    assert views.training_progress(lbfgs, adam_steps=100).done == 125


def test_format_duration():
    assert views.format_duration(None) == "unknown"
    assert views.format_duration(42.4) == "42 s"
    assert views.format_duration(185.0) == "3 min 05 s"


def test_loss_history_continues_steps_after_adam():
    history = [TrainingStep("adam", i, 4, 1.0 / i, 0.6 / i, 0.4 / i, i) for i in (1, 2)]
    history += [TrainingStep("lbfgs", i, 4, 0.1 / i, 0.05 / i, 0.05 / i, 2 + i) for i in (1, 2)]
    curves = views.loss_history(history, adam_steps=2)
    assert curves.steps.tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(curves.pde + curves.boundary, curves.total, rtol=1e-14)


def test_symlog_histogram_fractions_sum_to_one():
    values = np.concatenate([-np.logspace(-3, 1, 50), np.logspace(-8, 2, 200)])
    edges, fractions = views.symlog_histogram(values, 1e-6, bins=40)
    assert edges.shape == (41,)
    assert fractions.sum() == pytest.approx(1.0, rel=1e-14)
    assert fractions[edges[1:] <= 0].sum() == pytest.approx(50 / 250, rel=1e-12)


class ExactLoss:
    """Stand-in for PoissonLoss whose prediction is the exact solution plus a constant."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def predict(self, theta, points):
        from hessian_core.problem import exact_solution

        return exact_solution(points) + self.offset


def test_solution_grids_orientation_and_error():
    grids = views.solution_grids(ExactLoss(0.25), np.zeros(1), points_per_side=11)
    assert grids.predicted.shape == (11, 11)
    np.testing.assert_allclose(grids.error, 0.25, rtol=1e-14)
    # Rows are y and columns x: the exact solution is zero on the edges, one in the centre.
    assert grids.exact[5, 5] == pytest.approx(1.0)
    assert np.max(np.abs(grids.exact[0])) < 1e-15
    assert np.max(np.abs(grids.exact[:, -1])) < 1e-15


def test_solution_grids_match_training_error():
    from hessian_core.loss import PoissonLoss, relative_l2_error
    from hessian_core.network import glorot_uniform_theta
    from hessian_core.problem import test_grid

    settings = Settings(width=4, hidden_layers=1, n_interior=20, n_boundary=20)
    loss = PoissonLoss.from_settings(settings)
    theta = glorot_uniform_theta(loss.layout, 0)
    grids = views.solution_grids(loss, theta, 15)
    assert views.relative_l2(grids) == pytest.approx(relative_l2_error(loss, theta, test_grid(15)), rel=1e-12)


def test_views_import_without_streamlit():
    import subprocess
    import sys

    code = "import sys, hessian_core.views; print('streamlit' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False"


def test_block_labels_stay_inside_pooled_axis():
    layout = NetworkLayout.from_widths((2, 50, 50, 50, 1))
    pooled_end = 5292  # start of the last 9-wide tile of a 5,301-wide matrix
    labels = views.block_labels(layout, 0, 5301, high=pooled_end)
    assert labels.names[-1] == "layer 4 bias"
    assert labels.positions[-1] <= pooled_end
    assert len(labels.names) == 8


def test_symlog_histograms_share_edges():
    spectra = {"total": np.array([-1.0, 0.0, 5.0, 50.0]), "pde": np.array([0.1, 0.2]), "boundary": np.array([-3.0, 200.0])}
    histograms = views.symlog_histograms(spectra, 1e-3, bins=10)
    edges = [edges for edges, _ in histograms.values()]
    for other in edges[1:]:
        np.testing.assert_array_equal(other, edges[0])
    for name, (_, fractions) in histograms.items():
        assert fractions.sum() == pytest.approx(1.0, rel=1e-14), name
