"""Hutchinson trace estimates against exact traces."""

import numpy as np
import pytest

from hessian_core.trace import hutchinson_trace


def matrix_with_spectrum(eigenvalues, seed=0):
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((eigenvalues.size, eigenvalues.size)))
    matrix = (q * eigenvalues) @ q.T
    return (matrix + matrix.T) / 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hutchinson_within_four_standard_errors(seed):
    matrix = matrix_with_spectrum(np.concatenate([[-6.0, -6.0, -1.0], np.linspace(0.0, 4.0, 77)]), seed=10 + seed)
    estimate = hutchinson_trace(matrix, n_probes=200, seed=seed, block_size=32)
    assert estimate.standard_error > 0
    assert abs(estimate.estimate - np.trace(matrix)) < 4 * estimate.standard_error
    assert estimate.n_probes == 200
    assert estimate.samples.shape == (200,)


def test_hutchinson_standard_error_formula():
    matrix = matrix_with_spectrum(np.linspace(-1.0, 3.0, 30), seed=3)
    estimate = hutchinson_trace(matrix, n_probes=50, seed=4)
    assert estimate.standard_error == pytest.approx(np.std(estimate.samples, ddof=1) / np.sqrt(50), rel=1e-14)
    assert estimate.estimate == pytest.approx(np.mean(estimate.samples), rel=1e-14)


def test_hutchinson_exact_for_diagonal():
    # Rademacher probes have z_j² = 1, so every sample of a diagonal matrix is its trace.
    estimate = hutchinson_trace(np.diag([1.0, -2.0, 5.0]), n_probes=7)
    assert estimate.estimate == 4.0
    assert estimate.standard_error == 0.0


def test_hutchinson_is_seeded():
    matrix = matrix_with_spectrum(np.linspace(-1.0, 3.0, 30), seed=3)
    first = hutchinson_trace(matrix, n_probes=20, seed=9)
    second = hutchinson_trace(matrix, n_probes=20, seed=9, block_size=3)
    other = hutchinson_trace(matrix, n_probes=20, seed=10)
    assert first.estimate == second.estimate
    assert first.estimate != other.estimate


def test_hutchinson_rejects_no_probes():
    with pytest.raises(ValueError, match="n_probes"):
        hutchinson_trace(np.eye(3), n_probes=0)
