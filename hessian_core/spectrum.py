"""Eigenvalues of a dense symmetric Hessian, the requested eigenvectors and summary statistics.

Public API
----------
dense_spectrum(matrix, top_k=20, bottom_k=1, memory_budget_gib=2.0, ...) -> DenseSpectrum
    Every eigenvalue and only the requested eigenvectors, from one tridiagonal
    reduction: the ``top_k`` largest algebraic and the ``bottom_k`` most negative, each
    pair with its residual.
spectrum_statistics(eigenvalues, relative_tolerance=None, dtype="float64") -> SpectrumStatistics
    Largest and smallest eigenvalue, counts of negative, near-zero and positive
    eigenvalues, trace, Frobenius norm and condition number of the positive part.
term_statistics(pde_matrix, boundary_matrix, ...) -> dict[str, SpectrumStatistics]
    The same statistics for the PDE and the boundary Hessians.
check_eigh_memory(n_params, memory_budget_gib)
    Raise ``MemoryBudgetError`` before an ``eigh`` that would not fit the budget.

"Top" always means largest algebraic: for diag(-10, 3, 2, 1) the top eigenvalue is 3,
and -10 is reported separately as the most negative one.

The matrix-free counterparts live in :mod:`hessian_core.lanczos` (top and bottom
eigenpairs), :mod:`hessian_core.trace` (Hutchinson) and :mod:`hessian_core.density`
(stochastic Lanczos quadrature).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.linalg

from .checks import NonFiniteError, check_finite_eigenpairs, first_non_finite_row
from .memory import MemoryBudgetError, budget_bytes, dense_matrix_bytes, eigh_memory_bytes
from .tridiagonal import extreme_eigenpairs

logger = logging.getLogger(__name__)

MATRIX_ADVICE = (
    "A Hessian with NaN or inf comes from a θ that overflowed: retrain with a smaller learning rate, "
    "check the θ file, or compute the Hessian in float64"
)


@dataclass(frozen=True)
class SpectrumStatistics:
    """Summary of a full set of eigenvalues of one symmetric matrix.

    Attributes
    ----------
    n : int
        Number of eigenvalues (the matrix dimension P).
    largest, smallest : float
        Largest and smallest algebraic eigenvalue.
    tolerance : float
        Absolute threshold ``relative_tolerance · max|λ|``: eigenvalues with
        ``|λ| <= tolerance`` count as zero.
    relative_tolerance : float
        The threshold relative to the largest magnitude.
    n_negative, n_zero, n_positive : int
        Counts of λ < −tolerance, |λ| <= tolerance and λ > tolerance.
    trace : float
        Σ λ, which equals the trace of the matrix.
    frobenius_norm : float
        sqrt(Σ λ²), which equals ‖H‖_F for a symmetric H.
    condition_number_positive : float
        λ_max / (smallest λ > tolerance); ``inf`` when no eigenvalue exceeds the tolerance.
    """

    n: int
    largest: float
    smallest: float
    tolerance: float
    relative_tolerance: float
    n_negative: int
    n_zero: int
    n_positive: int
    trace: float
    frobenius_norm: float
    condition_number_positive: float

    def to_dict(self) -> dict:
        values = dict(self.__dict__)
        # JSON has no infinity; null marks "no positive eigenvalue above the tolerance".
        if not math.isfinite(values["condition_number_positive"]):
            values["condition_number_positive"] = None
        return values


@dataclass
class DenseSpectrum:
    """All eigenvalues of a dense symmetric matrix and the requested eigenpairs.

    Attributes
    ----------
    eigenvalues : ndarray, shape (P,), float64
        Every eigenvalue, ascending.
    top_eigenvalues : ndarray, shape (top_k,)
        The largest algebraic eigenvalues, descending.
    top_eigenvectors : ndarray, shape (P, top_k)
        Unit eigenvectors, column i for ``top_eigenvalues[i]``.
    top_residuals : ndarray, shape (top_k,)
        ‖Hv − λv‖ / |λ| of each top pair.
    bottom_eigenvalues, bottom_eigenvectors, bottom_residuals
        The same for the ``bottom_k`` smallest algebraic eigenvalues, most negative first.
    statistics : SpectrumStatistics
    seconds : float
        Wall time of the eigendecompositions.
    """

    eigenvalues: np.ndarray
    top_eigenvalues: np.ndarray
    top_eigenvectors: np.ndarray = field(repr=False)
    top_residuals: np.ndarray
    bottom_eigenvalues: np.ndarray
    bottom_eigenvectors: np.ndarray = field(repr=False)
    bottom_residuals: np.ndarray
    statistics: SpectrumStatistics
    seconds: float


def default_relative_tolerance(n: int, dtype: str = "float64") -> float:
    """Return n · eps(dtype), the rank threshold of ``numpy.linalg.matrix_rank`` relative to max|λ|."""
    return float(n * np.finfo(np.dtype(dtype)).eps)


def spectrum_statistics(
    eigenvalues: np.ndarray, relative_tolerance: float | None = None, dtype: str = "float64"
) -> SpectrumStatistics:
    """Summarise a full set of eigenvalues of one symmetric matrix.

    Parameters
    ----------
    eigenvalues : array_like, shape (P,)
        Every eigenvalue of the matrix, in any order.
    relative_tolerance : float, optional
        Eigenvalues with |λ| <= relative_tolerance · max|λ| count as zero. Defaults to
        P · eps(dtype), the threshold ``numpy.linalg.matrix_rank`` uses for singular values.
    dtype : str
        Floating-point type the matrix was computed in; sets the default tolerance.

    Examples
    --------
    >>> stats = spectrum_statistics([-10.0, 3.0, 2.0, 1.0])
    >>> stats.largest, stats.smallest, stats.n_negative, stats.condition_number_positive
    (3.0, -10.0, 1, 3.0)
    """
    values = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())
    if values.size == 0:
        raise ValueError("eigenvalues must contain at least one value, got an empty array")
    if not np.all(np.isfinite(values)):
        index = int(np.flatnonzero(~np.isfinite(values))[0])
        raise NonFiniteError(
            "The eigenvalues", values[index], f"at position {index} of {values.size} in ascending order", MATRIX_ADVICE,
            index=index,
        )
    if relative_tolerance is None:
        relative_tolerance = default_relative_tolerance(values.size, dtype)
    if relative_tolerance < 0:
        raise ValueError(f"relative_tolerance must be non-negative, got {relative_tolerance}")

    scale = float(np.max(np.abs(values)))
    tolerance = relative_tolerance * scale
    positive = values[values > tolerance]
    condition = float(values[-1] / positive[0]) if positive.size else math.inf
    return SpectrumStatistics(
        n=int(values.size),
        largest=float(values[-1]),
        smallest=float(values[0]),
        tolerance=float(tolerance),
        relative_tolerance=float(relative_tolerance),
        n_negative=int(np.count_nonzero(values < -tolerance)),
        n_zero=int(np.count_nonzero(np.abs(values) <= tolerance)),
        n_positive=int(positive.size),
        trace=float(np.sum(values)),
        frobenius_norm=float(np.sqrt(np.sum(values * values))),
        condition_number_positive=condition,
    )


def check_eigh_memory(n_params: int, memory_budget_gib: float) -> int:
    """Raise ``MemoryBudgetError`` unless the matrix and LAPACK's working arrays fit the budget.

    The estimate is the P × P float64 matrix the caller keeps plus
    ``memory.eigh_memory_bytes(P)`` (the copy LAPACK overwrites and about 3·P² float64
    values of workspace): 8·5·P² bytes, 1.05 GiB for P = 5,301. Returns it in bytes.
    """
    needed = dense_matrix_bytes(n_params) + eigh_memory_bytes(n_params)
    budget = budget_bytes(memory_budget_gib)
    if needed > budget:
        raise MemoryBudgetError(
            f"the dense eigendecomposition (eigh) of a {n_params} × {n_params} Hessian",
            needed,
            budget,
            "use spectrum='lanczos' (--spectrum lanczos, matrix-free Lanczos) or raise the memory budget",
        )
    return needed


def _symmetric_matrix(matrix: np.ndarray, name: str) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {matrix.shape}")
    column = first_non_finite_row(matrix.T)
    if column is not None:
        values = matrix[:, column]
        raise NonFiniteError(
            f"The {name}", values[~np.isfinite(values)][0], f"in column {column}", MATRIX_ADVICE, index=column
        )
    return matrix


def _relative_residuals(matrix: np.ndarray, eigenvalues: np.ndarray, eigenvectors: np.ndarray) -> np.ndarray:
    if eigenvalues.size == 0:
        return np.zeros(0)
    residual = matrix @ eigenvectors - eigenvectors * eigenvalues
    norms = np.linalg.norm(residual, axis=0)
    # An exactly zero eigenvalue has no relative residual; report the absolute one.
    return norms / np.where(eigenvalues != 0, np.abs(eigenvalues), 1.0)


def dense_spectrum(
    matrix: np.ndarray,
    top_k: int = 20,
    bottom_k: int = 1,
    memory_budget_gib: float = 2.0,
    relative_tolerance: float | None = None,
    dtype: str = "float64",
    progress: Callable[[str], None] | None = None,
) -> DenseSpectrum:
    """Compute every eigenvalue of a symmetric matrix and only the requested eigenvectors.

    One O(P³) Householder reduction to tridiagonal form (LAPACK ``sytrd``) serves
    everything: all eigenvalues come from the tridiagonal matrix in O(P²), and the
    ``top_k`` largest and ``bottom_k`` smallest algebraic pairs by bisection and inverse
    iteration on it, mapped back through the reflectors (see
    :mod:`hessian_core.tridiagonal`). This costs about one ``eigh(eigvals_only=True)``,
    however crowded the eigenvalues near the requested ones are. The full P × P
    eigenvector matrix is never formed.

    Parameters
    ----------
    matrix : array_like, shape (P, P)
        Symmetric matrix, used in float64.
    top_k, bottom_k : int
        Number of eigenpairs to return from the top (largest algebraic) and from the
        bottom (most negative first). Clipped to P.
    memory_budget_gib : float
        Budget checked by :func:`check_eigh_memory` before any decomposition.
    relative_tolerance, dtype
        Passed to :func:`spectrum_statistics`.
    progress : callable, optional
        Called with a one-line message before each decomposition.

    Raises
    ------
    MemoryBudgetError
        If the decomposition would not fit ``memory_budget_gib``.
    NonFiniteError
        If the matrix contains NaN or ±inf (the message names the first such column), or
        if an eigenvalue or a returned eigenvector is not finite. It is a ``ValueError``.
    ValueError
        If the matrix is not square or ``top_k`` or ``bottom_k`` is negative.

    Examples
    --------
    >>> result = dense_spectrum(np.diag([-10.0, 3.0, 2.0, 1.0]), top_k=2, bottom_k=1)
    >>> result.top_eigenvalues.tolist(), result.bottom_eigenvalues.tolist()
    ([3.0, 2.0], [-10.0])
    """
    matrix = _symmetric_matrix(matrix, "matrix")
    n = matrix.shape[0]
    if top_k < 0 or bottom_k < 0:
        raise ValueError(f"top_k and bottom_k must be non-negative, got top_k={top_k}, bottom_k={bottom_k}")
    top_k, bottom_k = min(top_k, n), min(bottom_k, n)
    check_eigh_memory(n, memory_budget_gib)
    report = progress or (lambda text: None)
    start = time.perf_counter()

    report(f"[spectrum] all {n} eigenvalues and the top {top_k} and bottom {bottom_k} eigenvectors (one tridiagonal reduction)")
    eigenvalues, top_values, top_vectors, bottom_values, bottom_vectors = extreme_eigenpairs(matrix, top_k, bottom_k)
    statistics = spectrum_statistics(eigenvalues, relative_tolerance, dtype)
    for name, values, vectors in (("top", top_values, top_vectors), ("bottom", bottom_values, bottom_vectors)):
        check_finite_eigenpairs(
            values, vectors, f"The {name} eigenpair", "although the matrix is finite",
            "The eigensolver failed; use spectrum='lanczos' or report it with the matrix size",
        )

    seconds = time.perf_counter() - start
    logger.info("dense spectrum of a %d × %d matrix in %.1f s", n, n, seconds)
    return DenseSpectrum(
        eigenvalues=eigenvalues,
        top_eigenvalues=top_values,
        top_eigenvectors=top_vectors,
        top_residuals=_relative_residuals(matrix, top_values, top_vectors),
        bottom_eigenvalues=bottom_values,
        bottom_eigenvectors=bottom_vectors,
        bottom_residuals=_relative_residuals(matrix, bottom_values, bottom_vectors),
        statistics=statistics,
        seconds=seconds,
    )


def term_statistics(
    pde_matrix: np.ndarray,
    boundary_matrix: np.ndarray,
    memory_budget_gib: float = 2.0,
    relative_tolerance: float | None = None,
    dtype: str = "float64",
    progress: Callable[[str], None] | None = None,
) -> dict[str, SpectrumStatistics]:
    """Compute the spectrum statistics of the PDE and the boundary Hessians separately.

    Each term costs one ``eigh(eigvals_only=True)``; no eigenvectors are formed.
    Returns ``{"pde": ..., "boundary": ...}``.
    """
    report = progress or (lambda text: None)
    statistics = {}
    for name, matrix in (("pde", pde_matrix), ("boundary", boundary_matrix)):
        matrix = _symmetric_matrix(matrix, f"{'PDE' if name == 'pde' else name} Hessian")
        check_eigh_memory(matrix.shape[0], memory_budget_gib)
        report(f"[spectrum] all eigenvalues of the {name} Hessian (eigh)")
        values = scipy.linalg.eigh(matrix, eigvals_only=True, lower=True, check_finite=False)
        statistics[name] = spectrum_statistics(values, relative_tolerance, dtype)
    return statistics
