"""One tridiagonal reduction for all eigenvalues and the extreme eigenpairs, against numpy.linalg.eigh.

All in float64. Eigenvalues must agree with LAPACK's dense solver to 1e-12 of the largest
magnitude; eigenvectors are compared through their residuals ‖Av − λv‖ ≤ 1e-11·max|λ| and
their orthonormality, since the sign (and, inside a cluster, the basis) is not unique.
"""

import numpy as np
import pytest

from hessian_core.tridiagonal import extreme_eigenpairs, reduce_to_tridiagonal


def symmetric_with_eigenvalues(eigenvalues: np.ndarray, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((eigenvalues.size, eigenvalues.size)))
    matrix = (q * eigenvalues) @ q.T
    return (matrix + matrix.T) / 2


def check_pairs(matrix, values, vectors, expected_values):
    scale = np.abs(np.linalg.eigvalsh(matrix)).max()
    np.testing.assert_allclose(values, expected_values, rtol=0, atol=1e-12 * scale)
    residuals = np.linalg.norm(matrix @ vectors - vectors * values, axis=0)
    assert residuals.max() <= 1e-11 * scale
    np.testing.assert_allclose(vectors.T @ vectors, np.eye(values.size), atol=1e-10)


@pytest.mark.parametrize("n, top_k, bottom_k", [(1, 1, 1), (2, 1, 1), (7, 3, 2), (60, 60, 0), (250, 20, 1)])
def test_matches_eigh_on_random_matrices(n, top_k, bottom_k):
    rng = np.random.default_rng(n)
    matrix = rng.standard_normal((n, n))
    matrix = matrix + matrix.T
    reference = np.linalg.eigvalsh(matrix)
    eigenvalues, top_values, top_vectors, bottom_values, bottom_vectors = extreme_eigenpairs(matrix, top_k, bottom_k)
    np.testing.assert_allclose(eigenvalues, reference, rtol=0, atol=1e-12 * np.abs(reference).max())
    check_pairs(matrix, top_values, top_vectors, reference[::-1][:top_k])
    if bottom_k:
        check_pairs(matrix, bottom_values, bottom_vectors, reference[:bottom_k])
    else:
        assert bottom_vectors.shape == (n, 0)


def test_bottom_pair_in_crowded_spectrum():
    # Like a trained PINN Hessian: a few large eigenvalues over hundreds within 1e-6 of
    # zero, half of them negative, where Lanczos needs thousands of products.
    rng = np.random.default_rng(3)
    crowd = rng.uniform(-1e-6, 1e-6, 297)
    eigenvalues = np.concatenate([crowd, [-2e-6, 50.0, 100.0]])
    matrix = symmetric_with_eigenvalues(eigenvalues, seed=4)
    values, _, _, bottom_values, bottom_vectors = extreme_eigenpairs(matrix, 0, 1)
    np.testing.assert_allclose(values, np.sort(eigenvalues), rtol=0, atol=1e-12 * 100)
    assert bottom_values[0] == pytest.approx(-2e-6, abs=1e-12 * 100)
    residual = np.linalg.norm(matrix @ bottom_vectors[:, 0] - bottom_values[0] * bottom_vectors[:, 0])
    assert residual <= 1e-11 * 100


def test_reflectors_rebuild_the_matrix():
    # A = Q T Qᵀ with Q applied to the identity, an independent check of the back-transformation.
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((40, 40))
    matrix = matrix + matrix.T
    form = reduce_to_tridiagonal(matrix)
    q = form.apply_q(np.eye(40))
    tridiagonal = np.diag(form.diagonal) + np.diag(form.off_diagonal, 1) + np.diag(form.off_diagonal, -1)
    np.testing.assert_allclose(q @ tridiagonal @ q.T, matrix, atol=1e-12 * np.abs(matrix).max())
    np.testing.assert_allclose(q.T @ q, np.eye(40), atol=1e-13)


def test_input_matrix_is_left_unchanged():
    matrix = np.array([[4.0, 1.0, 2.0], [1.0, 3.0, 0.5], [2.0, 0.5, 1.0]])
    copy = matrix.copy()
    extreme_eigenpairs(matrix, 1, 1)
    np.testing.assert_array_equal(matrix, copy)
