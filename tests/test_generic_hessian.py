"""The generic Hessian entry point on tf.Variables and Keras models."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import hessian_core
from hessian_core.generic_hessian import REVERSE_OVER_REVERSE_MAX_PARAMS, hessian
from hessian_core.hessian_methods import compute_hessian
from hessian_core.loss import PoissonLoss
from hessian_core.memory import MemoryBudgetError
from hessian_core.network import glorot_uniform_theta, to_keras
from hessian_core.settings import Settings

GENERIC_METHODS = ("forward-over-reverse", "reverse-over-reverse", "jacobian-pfor")


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("method", GENERIC_METHODS)
def test_quadratic_returns_its_matrix(method):
    # L(θ) = ½ θᵀAθ has Hessian A exactly, for θ split over two variables of different shapes.
    rng = np.random.default_rng(0)
    root = rng.normal(size=(7, 7))
    A = root + root.T
    first = tf.Variable(rng.normal(size=(2, 2)))
    second = tf.Variable(rng.normal(size=(3,)))

    def loss_fn():
        theta = tf.concat([tf.reshape(first, [-1]), second], 0)
        return 0.5 * tf.tensordot(theta, tf.linalg.matvec(A, theta), 1)

    result = hessian(loss_fn, [first, second], method=method, block_size=3)
    np.testing.assert_allclose(result.matrix, (A + A.T) / 2, rtol=0, atol=1e-13)
    assert result.record.n_params == 7
    assert result.record.variable_shapes == [[2, 2], [3]]


def test_package_exports_hessian():
    assert hessian_core.hessian is hessian
    assert hessian_core.compute_hessian is compute_hessian


def _question_style_loss(model, loss: PoissonLoss):
    """The PINN loss as the question wrote it: u from the Keras model, u_xx and u_yy from nested tapes."""
    interior, source, boundary = loss.interior, loss.source, loss.boundary

    def loss_fn():
        with tf.GradientTape(persistent=True) as outer:
            outer.watch(interior)
            with tf.GradientTape() as inner:
                inner.watch(interior)
                u = model(interior)
            gradient = inner.gradient(u, interior)
            u_x, u_y = gradient[:, 0], gradient[:, 1]
        u_xx = outer.gradient(u_x, interior)[:, 0]
        u_yy = outer.gradient(u_y, interior)[:, 1]
        pde = tf.reduce_mean(tf.square(u_xx + u_yy - source))
        boundary_term = tf.reduce_mean(tf.square(model(boundary)[:, 0]))
        return loss.pde_weight * pde + loss.boundary_weight * boundary_term

    return loss_fn


@pytest.fixture(scope="module")
def keras_problem():
    settings = Settings(width=10, n_interior=24, n_boundary=16)
    loss = PoissonLoss.from_settings(settings)
    theta = glorot_uniform_theta(loss.layout, 0)
    theta = theta + np.random.default_rng(1).normal(scale=0.1, size=theta.shape)
    model = to_keras(theta, loss.layout, "tanh")
    reference = compute_hessian(loss, theta, split_terms=False).matrix
    return model, loss, reference


@pytest.mark.parametrize("method", ["forward-over-reverse", "jacobian-pfor"])
def test_keras_model_matches_flat_hessian(keras_problem, method):
    model, loss, reference = keras_problem
    result = hessian(_question_style_loss(model, loss), model.trainable_variables, method=method, block_size=131)
    assert result.matrix.shape == reference.shape
    assert relative_difference(result.matrix, reference) <= 1e-10
    assert result.record.asymmetry <= 1e-12


def test_keras_reverse_over_reverse_matches_flat_hessian():
    settings = Settings(width=3, hidden_layers=2, n_interior=12, n_boundary=8)
    loss = PoissonLoss.from_settings(settings)
    theta = glorot_uniform_theta(loss.layout, 2) + 0.1
    model = to_keras(theta, loss.layout, "tanh")
    reference = compute_hessian(loss, theta, split_terms=False).matrix
    result = hessian(_question_style_loss(model, loss), model.trainable_variables, method="reverse-over-reverse")
    assert relative_difference(result.matrix, reference) <= 1e-10


def test_tf_hessians_rejected_for_variable_lists():
    variable = tf.Variable([1.0, 2.0], dtype=tf.float64)
    with pytest.raises(ValueError, match="diagonal blocks"):
        hessian(lambda: tf.reduce_sum(variable**3), [variable], method="tf-hessians")


def test_reverse_over_reverse_limit_needs_force():
    variable = tf.Variable(np.zeros(REVERSE_OVER_REVERSE_MAX_PARAMS + 1))
    with pytest.raises(ValueError, match="force=True"):
        hessian(lambda: tf.reduce_sum(variable**2), [variable], method="reverse-over-reverse")


def test_dense_result_over_budget_rejected():
    variable = tf.Variable(np.zeros(20_000))
    with pytest.raises(MemoryBudgetError, match="3,200,000,000 bytes"):
        hessian(lambda: tf.reduce_sum(variable**2), [variable], memory_budget_gib=1.0)


def test_mixed_dtypes_rejected():
    first = tf.Variable([1.0], dtype=tf.float32)
    second = tf.Variable([1.0], dtype=tf.float64)
    with pytest.raises(ValueError, match="one floating-point dtype"):
        hessian(lambda: tf.reduce_sum(first) + tf.cast(tf.reduce_sum(second), tf.float32), [first, second])


def test_non_variable_rejected():
    with pytest.raises(TypeError, match="tf.Variable"):
        hessian(lambda: tf.constant(0.0), [tf.constant([1.0])])
