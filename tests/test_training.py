"""Training: convergence on a small budget, both boundary samplings, divergence, callbacks."""

import numpy as np
import pytest

from hessian_core.network import NetworkLayout, glorot_uniform_theta
from hessian_core.settings import Settings
from hessian_core.training import TrainingDivergedError, train

SMALL = dict(hidden_layers=2, width=16, n_interior=300, n_boundary=200, adam_steps=300, learning_rate=1e-2, lbfgs_steps=200, test_grid=41)


@pytest.fixture(scope="module")
def edges_result():
    return train(Settings(**SMALL))


def test_training_lowers_loss_and_error(edges_result):
    history = edges_result.history
    assert history[0].loss / edges_result.loss > 1e3
    assert edges_result.relative_l2_error < 5e-2
    assert edges_result.theta.dtype == np.float64


def test_history_has_one_entry_per_step(edges_result):
    phases = [step.phase for step in edges_result.history]
    assert phases.count("adam") == 300
    assert 0 < phases.count("lbfgs") <= 200
    assert [s.step for s in edges_result.history if s.phase == "adam"] == list(range(1, 301))
    for step in edges_result.history:
        assert step.loss == pytest.approx(step.pde_loss + step.boundary_loss, rel=1e-12)


def test_top_edge_sampling_leaves_other_edges_unconstrained(edges_result):
    # The reference question sampled only x in [0, 1], y = 1: three edges stay free, and the
    # fitted u drifts away from the exact solution there.
    top_edge = train(Settings(**SMALL, boundary="top-edge"))
    assert top_edge.metrics()["boundary_sampling"] == "top-edge"
    assert edges_result.metrics()["boundary_sampling"] == "edges"
    assert top_edge.relative_l2_error > 10 * edges_result.relative_l2_error
    assert top_edge.relative_l2_error > 0.1


def test_callback_receives_every_step():
    seen = []
    train(Settings(**{**SMALL, "adam_steps": 5, "lbfgs_steps": 0}), callback=seen.append)
    assert [s.step for s in seen] == [1, 2, 3, 4, 5]
    assert all(s.total_steps == 5 for s in seen)
    assert seen[-1].seconds >= seen[0].seconds


def test_non_finite_loss_stops_with_step_and_advice():
    settings = Settings(**{**SMALL, "adam_steps": 3, "lbfgs_steps": 0, "dtype": "float32"})
    layout = NetworkLayout.from_settings(settings)
    # Weights of 1e30 overflow float32 in the Laplacian's squared gradient term.
    huge = glorot_uniform_theta(layout, 0, "float32") * np.float32(1e30)
    with pytest.raises(TrainingDivergedError) as caught:
        train(settings, initial_theta=huge)
    assert caught.value.step == 1
    assert "adam step 1" in str(caught.value)
    assert "lower the learning rate" in str(caught.value)


def test_float32_training_runs():
    result = train(Settings(**{**SMALL, "dtype": "float32", "adam_steps": 50, "lbfgs_steps": 20}))
    assert result.theta.dtype == np.float32
    assert np.isfinite(result.loss)


def test_wrong_initial_theta_shape_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        train(Settings(**SMALL), initial_theta=np.zeros(3))
