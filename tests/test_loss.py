"""Loss terms against a direct NumPy evaluation at a few points, for a fixed θ."""

import numpy as np
import pytest
import tensorflow as tf

from hessian_core.loss import PoissonLoss, relative_l2_error
from hessian_core.network import NetworkLayout, glorot_uniform_theta
from hessian_core.problem import CollocationPoints, exact_solution, source_term, test_grid


def numpy_network(theta, layout, points):
    value = points
    for layer in range(1, layout.n_layers + 1):
        kernel, bias = layout.blocks[2 * layer - 2], layout.blocks[2 * layer - 1]
        value = value @ theta[kernel.offset : kernel.stop].reshape(kernel.shape) + theta[bias.offset : bias.stop]
        if layer < layout.n_layers:
            value = np.tanh(value)
    return value[:, 0]


def numpy_laplacian_by_differences(theta, layout, points, step=1e-4):
    # Second-order central differences in x and in y; truncation error about step² · |u''''|.
    total = -4.0 * numpy_network(theta, layout, points)
    for shift in ([step, 0.0], [-step, 0.0], [0.0, step], [0.0, -step]):
        total += numpy_network(theta, layout, points + np.array(shift))
    return total / step**2


def make_loss(widths, interior, boundary, pde_weight=1.0, boundary_weight=1.0):
    points = CollocationPoints(interior=interior, boundary=boundary, source=source_term(interior))
    return PoissonLoss(NetworkLayout.from_widths(widths), "tanh", points, pde_weight, boundary_weight, "float64")


INTERIOR = np.array([[0.1, -0.3], [0.5, 0.5], [-0.8, 0.2], [0.0, 0.9]])
BOUNDARY = np.array([[1.0, 0.3], [-1.0, -0.4], [0.2, 1.0]])


def test_one_hidden_layer_loss_matches_closed_form():
    loss = make_loss((2, 5, 1), INTERIOR, BOUNDARY)
    layout = loss.layout
    theta = glorot_uniform_theta(layout, seed=4) + 0.05
    kernel1 = theta[:10].reshape(2, 5)
    bias1, kernel2, bias2 = theta[10:15], theta[15:20], theta[20]

    # u = Σ_j c_j tanh(a_j) + d, and Δu = Σ_j c_j tanh''(a_j) (w_xj² + w_yj²), tanh'' = -2 t (1 - t²).
    t = np.tanh(INTERIOR @ kernel1 + bias1)
    laplacian = (kernel2 * (-2 * t * (1 - t**2)) * (kernel1**2).sum(axis=0)).sum(axis=1)
    pde_expected = np.mean((laplacian - source_term(INTERIOR)) ** 2)
    boundary_u = np.tanh(BOUNDARY @ kernel1 + bias1) @ kernel2 + bias2
    boundary_expected = np.mean(boundary_u**2)

    terms = loss.evaluate(theta)
    assert terms.pde == pytest.approx(pde_expected, rel=1e-13)
    assert terms.boundary == pytest.approx(boundary_expected, rel=1e-13)
    assert terms.total == pytest.approx(pde_expected + boundary_expected, rel=1e-13)


def test_deep_network_loss_matches_finite_differences():
    loss = make_loss((2, 8, 8, 1), INTERIOR, BOUNDARY, pde_weight=2.0, boundary_weight=0.5)
    theta = glorot_uniform_theta(loss.layout, seed=9) + 0.02
    laplacian = numpy_laplacian_by_differences(theta, loss.layout, INTERIOR)
    pde_expected = 2.0 * np.mean((laplacian - source_term(INTERIOR)) ** 2)
    boundary_expected = 0.5 * np.mean(numpy_network(theta, loss.layout, BOUNDARY) ** 2)

    terms = loss.evaluate(theta)
    assert terms.pde == pytest.approx(pde_expected, rel=1e-6)
    assert terms.boundary == pytest.approx(boundary_expected, rel=1e-13)


def test_gradient_matches_central_differences():
    loss = make_loss((2, 6, 6, 1), INTERIOR, BOUNDARY)
    theta = glorot_uniform_theta(loss.layout, seed=1) + 0.03
    _, _, _, gradient = loss.value_and_gradient(theta)
    step = 1e-6
    for index in (0, 17, loss.n_params - 1):
        shift = np.zeros_like(theta)
        shift[index] = step
        difference = (loss.evaluate(theta + shift).total - loss.evaluate(theta - shift).total) / (2 * step)
        assert float(gradient[index]) == pytest.approx(difference, rel=1e-6, abs=1e-9)


def test_exact_solution_satisfies_the_problem():
    grid = test_grid(21)
    edge = (np.abs(grid) == 1.0).any(axis=1)
    assert np.abs(exact_solution(grid[edge])).max() < 1e-15
    # Δ sin(π(x+1)/2) sin(π(y+1)/2) = -(π²/2) u, the stated source term.
    assert np.allclose(source_term(grid), -(np.pi**2 / 2) * exact_solution(grid), rtol=0, atol=1e-15)


def test_relative_l2_error_of_zero_network_is_one():
    loss = make_loss((2, 3, 1), INTERIOR, BOUNDARY)
    assert relative_l2_error(loss, np.zeros(loss.n_params), test_grid(11)) == pytest.approx(1.0, rel=1e-15)


def test_float32_loss_keeps_its_dtype():
    points = CollocationPoints(INTERIOR.astype("float32"), BOUNDARY.astype("float32"), source_term(INTERIOR).astype("float32"))
    loss = PoissonLoss(NetworkLayout.from_widths((2, 4, 1)), "tanh", points, dtype="float32")
    total, _, _, gradient = loss.value_and_gradient(np.zeros(loss.n_params, dtype="float32"))
    assert total.dtype == tf.float32
    assert gradient.dtype == tf.float32
