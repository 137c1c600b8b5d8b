"""Lanczos eigenpairs against dense eigh, on synthetic spectra and on a small network's Hessian."""

import numpy as np
import pytest

from hessian_core.hvp import HessianVectorProduct
from hessian_core.lanczos import lanczos_eigenpairs, lanczos_tridiagonal
from hessian_core.loss import PoissonLoss
from hessian_core.network import NetworkLayout, glorot_uniform_theta
from hessian_core.problem import CollocationPoints, source_term


def matrix_with_spectrum(eigenvalues, seed=0):
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((eigenvalues.size, eigenvalues.size)))
    matrix = (q * eigenvalues) @ q.T
    return (matrix + matrix.T) / 2


def wishart(n, m, seed):
    x = np.random.default_rng(seed).standard_normal((n, m))
    return x @ x.T / m


SPECTRA = {
    "wishart": wishart(150, 300, seed=4),
    "clustered": matrix_with_spectrum(np.concatenate([np.full(40, 1.0) + 1e-3 * np.arange(40), np.linspace(2.0, 3.0, 60), [10.0, 10.5, 11.0]]), seed=5),
    "repeated": matrix_with_spectrum(np.concatenate([np.linspace(0.1, 1.0, 90), [4.0, 4.0, 4.0, 6.0, 6.0]]), seed=6),
    "indefinite": matrix_with_spectrum(np.concatenate([[-9.0, -9.0, -4.0], np.linspace(-1.0, 2.0, 90), [5.0, 5.0, 7.0]]), seed=7),
}


def small_network_hessian():
    rng = np.random.default_rng(11)
    interior = rng.uniform(-1, 1, size=(40, 2))
    boundary = np.concatenate([np.stack([rng.uniform(-1, 1, 10), np.full(10, side)], axis=1) for side in (-1.0, 1.0)])
    points = CollocationPoints(interior=interior, boundary=boundary, source=source_term(interior))
    layout = NetworkLayout.from_widths((2, 8, 8, 1))
    loss = PoissonLoss(layout, "tanh", points, 1.0, 1.0, "float64")
    theta = glorot_uniform_theta(layout, seed=3)
    hvp = HessianVectorProduct(loss, theta)
    # Column by column, so the dense reference and Lanczos share one traced function.
    matrix = np.stack([hvp.matvec(column) for column in np.eye(layout.n_params)], axis=1)
    return hvp, (matrix + matrix.T) / 2


@pytest.mark.parametrize("name", sorted(SPECTRA))
@pytest.mark.parametrize("which", ["LA", "SA"])
def test_lanczos_eigenvalues_match_eigh(name, which):
    matrix = SPECTRA[name]
    reference = np.linalg.eigvalsh(matrix)
    expected = reference[::-1][:5] if which == "LA" else reference[:5]
    result = lanczos_eigenpairs(matrix, k=5, which=which, seed=1)
    assert result.converged, result.message
    np.testing.assert_allclose(result.eigenvalues, expected, rtol=1e-8)
    assert np.max(result.residuals) < 1e-8
    assert result.n_products > 0


def test_top_is_largest_algebraic():
    matrix = np.diag([-10.0, 3.0, 2.0, 1.0, 0.5, 0.25])
    top = lanczos_eigenpairs(matrix, k=2, which="LA")
    bottom = lanczos_eigenpairs(matrix, k=1, which="SA")
    np.testing.assert_allclose(top.eigenvalues, [3.0, 2.0], rtol=1e-12)
    np.testing.assert_allclose(bottom.eigenvalues, [-10.0], rtol=1e-12)


def test_lanczos_matches_network_hessian():
    hvp, matrix = small_network_hessian()
    values, vectors = np.linalg.eigh(matrix)
    for which, expected_values, expected_vectors in (
        ("LA", values[::-1][:5], vectors[:, ::-1][:, :5]),
        ("SA", values[:3], vectors[:, :3]),
    ):
        result = lanczos_eigenpairs(hvp, k=expected_values.size, which=which, seed=2)
        assert result.converged, result.message
        np.testing.assert_allclose(result.eigenvalues, expected_values, rtol=1e-8)
        # Eigenvectors agree up to sign: |uᵀv| = 1.
        overlaps = np.abs(np.sum(result.eigenvectors * expected_vectors, axis=0))
        np.testing.assert_allclose(overlaps, 1.0, atol=1e-8)
        assert np.max(result.residuals) < 1e-8


def test_unconverged_run_says_so():
    matrix = SPECTRA["clustered"]
    result = lanczos_eigenpairs(matrix, k=8, which="LA", tol=1e-14, max_products=30, seed=0)
    assert not result.converged
    assert "converged" in result.message
    assert "max_products" in result.message
    assert result.eigenvalues.size < 8
    assert result.residuals.shape == result.eigenvalues.shape


def test_lanczos_is_repeatable():
    first = lanczos_eigenpairs(SPECTRA["wishart"], k=3, seed=5)
    second = lanczos_eigenpairs(SPECTRA["wishart"], k=3, seed=5)
    assert np.array_equal(first.eigenvalues, second.eigenvalues)
    assert first.n_products == second.n_products


def test_lanczos_rejects_bad_arguments():
    with pytest.raises(ValueError, match="which"):
        lanczos_eigenpairs(np.eye(5), k=1, which="LM")
    with pytest.raises(ValueError, match="k must be"):
        lanczos_eigenpairs(np.eye(5), k=5)
    with pytest.raises(ValueError, match="ncv"):
        lanczos_eigenpairs(np.eye(10), k=3, ncv=3)


def test_tridiagonal_reproduces_krylov_moments():
    # Gauss quadrature with m nodes is exact for polynomials of degree up to 2m − 1:
    # e_1ᵀ T^p e_1 = zᵀ A^p z for a unit start vector z and p < 2m.
    matrix = SPECTRA["indefinite"]
    start = np.random.default_rng(8).standard_normal(matrix.shape[0])
    start /= np.linalg.norm(start)
    steps = 6
    tridiagonal = lanczos_tridiagonal(matrix, start, steps)
    t = np.diag(tridiagonal.alpha[0]) + np.diag(tridiagonal.beta[0], 1) + np.diag(tridiagonal.beta[0], -1)
    power_t, power_a = np.eye(steps), start.copy()
    for p in range(2 * steps):
        expected = start @ power_a
        assert power_t[0, 0] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        power_t, power_a = power_t @ t, matrix @ power_a
    assert tridiagonal.n_products == steps


def test_tridiagonal_continues_past_invariant_subspace():
    # A start vector inside a 2-dimensional invariant subspace exhausts it after two steps.
    matrix = np.diag([1.0, 2.0, 3.0, 3.0, 5.0])
    tridiagonal = lanczos_tridiagonal(matrix, np.array([1.0, 1.0, 0.0, 0.0, 0.0]), steps=5)
    t = np.diag(tridiagonal.alpha[0]) + np.diag(tridiagonal.beta[0], 1) + np.diag(tridiagonal.beta[0], -1)
    assert tridiagonal.restarts[0] >= 1
    assert tridiagonal.beta[0, 1] == 0.0
    np.testing.assert_allclose(np.linalg.eigvalsh(t), [1.0, 2.0, 3.0, 3.0, 5.0], atol=1e-12)
