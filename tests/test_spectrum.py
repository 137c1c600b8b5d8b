"""Dense spectrum: eigenvalues, requested eigenpairs and statistics against known spectra."""

import numpy as np
import pytest

from hessian_core.memory import MemoryBudgetError
from hessian_core.spectrum import check_eigh_memory, dense_spectrum, spectrum_statistics, term_statistics


def matrix_with_spectrum(eigenvalues, seed=0):
    """Return Q·diag(λ)·Qᵀ for a random orthogonal Q, exactly symmetrised."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((eigenvalues.size, eigenvalues.size)))
    matrix = (q * eigenvalues) @ q.T
    return (matrix + matrix.T) / 2, q


# Negative and repeated eigenvalues, with a gap around every non-repeated top value.
KNOWN = np.concatenate([[-7.0, -7.0, -3.0], np.linspace(0.5, 5.0, 40), [8.0, 8.0, 11.0, 15.0]])


def test_top_means_largest_algebraic():
    result = dense_spectrum(np.diag([-10.0, 3.0, 2.0, 1.0]), top_k=3, bottom_k=1)
    assert result.top_eigenvalues.tolist() == [3.0, 2.0, 1.0]
    assert result.bottom_eigenvalues.tolist() == [-10.0]
    assert result.statistics.largest == 3.0
    assert result.statistics.smallest == -10.0
    assert -10.0 not in result.top_eigenvalues


def test_dense_eigenvalues_match_known_spectrum():
    matrix, _ = matrix_with_spectrum(KNOWN)
    result = dense_spectrum(matrix, top_k=4, bottom_k=2)
    scale = np.abs(KNOWN).max()
    assert np.max(np.abs(result.eigenvalues - np.sort(KNOWN))) < 1e-12 * scale
    assert np.all(np.diff(result.eigenvalues) >= 0)
    np.testing.assert_allclose(result.top_eigenvalues, [15.0, 11.0, 8.0, 8.0], rtol=1e-12)
    np.testing.assert_allclose(result.bottom_eigenvalues, [-7.0, -7.0], rtol=1e-12)


def test_dense_eigenvectors_have_small_residuals():
    matrix, q = matrix_with_spectrum(KNOWN)
    result = dense_spectrum(matrix, top_k=4, bottom_k=2)
    assert result.top_eigenvectors.shape == (KNOWN.size, 4)
    assert np.max(result.top_residuals) < 1e-12
    assert np.max(result.bottom_residuals) < 1e-12
    # The simple top eigenvalue 15 has a unique eigenvector up to sign: Q's last column.
    assert abs(abs(result.top_eigenvectors[:, 0] @ q[:, -1]) - 1.0) < 1e-12


def test_statistics_of_known_spectrum():
    stats = spectrum_statistics([-2.0, -1e-15, 0.0, 1e-15, 0.5, 4.0], relative_tolerance=1e-10)
    assert stats.tolerance == pytest.approx(4e-10)
    assert stats.n_negative == 1
    assert stats.n_zero == 3
    assert stats.n_positive == 2
    assert stats.trace == pytest.approx(2.5, abs=1e-14)
    assert stats.frobenius_norm == pytest.approx(np.sqrt(4 + 0.25 + 16), rel=1e-15)
    assert stats.condition_number_positive == pytest.approx(8.0, rel=1e-15)


def test_statistics_without_positive_part():
    stats = spectrum_statistics([-3.0, -1.0])
    assert stats.condition_number_positive == float("inf")
    assert stats.to_dict()["condition_number_positive"] is None


def test_statistics_trace_matches_matrix_trace():
    matrix, _ = matrix_with_spectrum(KNOWN, seed=3)
    stats = dense_spectrum(matrix, top_k=1, bottom_k=0).statistics
    assert stats.trace == pytest.approx(np.trace(matrix), rel=1e-12)
    assert stats.frobenius_norm == pytest.approx(np.linalg.norm(matrix), rel=1e-12)


def test_eigh_memory_check_names_figures_and_lanczos():
    with pytest.raises(MemoryBudgetError) as error:
        check_eigh_memory(20_000, 2.0)
    message = str(error.value)
    assert "20000 × 20000" in message
    assert "2.00 GiB" in message
    assert "lanczos" in message


def test_dense_spectrum_rejects_before_decomposing():
    with pytest.raises(MemoryBudgetError):
        dense_spectrum(np.eye(200), top_k=2, memory_budget_gib=1e-4)


def test_dense_spectrum_rejects_bad_input():
    with pytest.raises(ValueError, match="square"):
        dense_spectrum(np.ones((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        dense_spectrum(np.full((3, 3), np.nan))


def test_term_statistics_add_up_to_total():
    pde, _ = matrix_with_spectrum(KNOWN, seed=1)
    boundary, _ = matrix_with_spectrum(np.abs(KNOWN), seed=2)
    terms = term_statistics(pde, boundary)
    total = dense_spectrum(pde + boundary, top_k=1, bottom_k=0).statistics
    assert terms["pde"].trace + terms["boundary"].trace == pytest.approx(total.trace, rel=1e-12)
    assert terms["pde"].n_negative == 3
    assert terms["boundary"].n_negative == 0
