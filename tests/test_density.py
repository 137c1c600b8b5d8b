"""Stochastic Lanczos quadrature: nodes, weights and the smoothed density."""

import numpy as np
import pytest
import scipy.linalg

from hessian_core.density import quadrature_from_tridiagonal, slq_density, smoothed_density


def matrix_with_spectrum(eigenvalues, seed=0):
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((eigenvalues.size, eigenvalues.size)))
    matrix = (q * eigenvalues) @ q.T
    return (matrix + matrix.T) / 2


@pytest.mark.parametrize(
    "matrix",
    [
        matrix_with_spectrum(np.linspace(-3.0, 8.0, 50), seed=1),
        matrix_with_spectrum(np.concatenate([[-4.0, -4.0, -1.0], np.linspace(0.2, 2.0, 40), [6.0, 6.0, 6.0, 9.0]]), seed=2),
        np.diag(np.concatenate([[-2.0, -2.0], np.arange(1.0, 19.0), [30.0, 30.0]])),
    ],
    ids=["distinct", "repeated-rotated", "repeated-diagonal"],
)
def test_slq_full_steps_reproduce_eigenvalues(matrix):
    n = matrix.shape[0]
    density = slq_density(matrix, n_runs=3, n_steps=n, seed=0)
    reference = np.linalg.eigvalsh(matrix)
    scale = np.max(np.abs(reference))
    for run in range(3):
        assert np.max(np.abs(np.sort(density.nodes[run]) - reference)) <= 1e-8 * scale
        assert density.weights[run].sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(density.weights[run] >= 0)
    assert density.n_products == 3 * n


def test_weights_are_squared_first_components():
    alpha = np.array([2.0, -1.0, 0.5, 3.0])
    beta = np.array([0.7, 1.1, 0.3])
    nodes, weights = quadrature_from_tridiagonal(alpha, beta)
    tridiagonal = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    values, vectors = scipy.linalg.eigh(tridiagonal)
    np.testing.assert_allclose(nodes, values, rtol=1e-13)
    np.testing.assert_allclose(weights, vectors[0] ** 2, rtol=1e-10)
    assert weights.sum() == pytest.approx(1.0, abs=1e-14)


def test_density_integrates_to_one():
    matrix = matrix_with_spectrum(np.linspace(-3.0, 8.0, 60), seed=3)
    density = slq_density(matrix, n_runs=4, n_steps=15, width=0.2, seed=1)
    assert np.trapezoid(density.density, density.grid) == pytest.approx(1.0, abs=1e-3)
    assert density.width == 0.2
    assert density.nodes.shape == (4, 15)


def test_smoothed_density_of_one_node():
    grid = np.array([0.0, 1.0, 2.0])
    values = smoothed_density(np.array([1.0]), np.array([1.0]), grid, width=0.5)
    expected = np.exp(-0.5 * ((grid - 1.0) / 0.5) ** 2) / (0.5 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(values, expected, rtol=1e-14)


def test_slq_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_steps"):
        slq_density(np.eye(4), n_steps=5)
    with pytest.raises(ValueError, match="width"):
        smoothed_density(np.zeros(1), np.ones(1), np.zeros(2), width=0.0)
