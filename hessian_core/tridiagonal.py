"""All eigenvalues and a few eigenvectors of a dense symmetric matrix from one tridiagonal reduction.

``scipy.linalg.eigh`` reduces the matrix to tridiagonal form, O(P³), every time it is
called, so all eigenvalues plus the top and bottom eigenvectors cost two or three
reductions through it. Lanczos on the dense matrix avoids that for well-separated
eigenvalues, but the most negative eigenvalue of a trained PINN's Hessian usually sits in
a cluster of thousands of tiny eigenvalues, where Lanczos needs thousands of products.

Here the reduction ``A = Q T Qᵀ`` (LAPACK ``sytrd``) runs once. Every eigenvalue of T
comes from ``sterf`` in O(P²). The selected eigenvectors of T come from
``scipy.linalg.eigh_tridiagonal`` (bisection and inverse iteration, O(P) each) and are
mapped back through the P − 1 Householder reflectors that make up Q.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

logger = logging.getLogger(__name__)


@dataclass
class TridiagonalForm:
    """The reduction ``A = Q T Qᵀ`` of a symmetric matrix, with Q kept as Householder reflectors.

    Attributes
    ----------
    diagonal : ndarray, shape (P,)
    off_diagonal : ndarray, shape (P - 1,)
    reflectors : ndarray, shape (P, P)
        Column i below row i + 1 contains the tail of reflector i (LAPACK's lower storage).
    tau : ndarray, shape (P - 1,)
        Scale of each reflector: ``H_i = I − tau_i v_i v_iᵀ``.
    """

    diagonal: np.ndarray
    off_diagonal: np.ndarray
    reflectors: np.ndarray
    tau: np.ndarray

    @property
    def dimension(self) -> int:
        return self.diagonal.size

    def eigenvalues(self) -> np.ndarray:
        """Return every eigenvalue, ascending (LAPACK ``sterf``)."""
        if self.dimension == 1:
            return self.diagonal.copy()
        return scipy.linalg.eigvalsh_tridiagonal(self.diagonal, self.off_diagonal, lapack_driver="sterf", check_finite=False)

    def eigenpairs(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """Return eigenvalues ``first`` to ``last`` (0-based, ascending, inclusive) and their eigenvectors of A."""
        if self.dimension == 1:
            return self.diagonal.copy(), np.ones((1, 1))
        values, vectors = scipy.linalg.eigh_tridiagonal(
            self.diagonal, self.off_diagonal, select="i", select_range=(first, last),
            lapack_driver="stebz", check_finite=False,
        )
        return values, self.apply_q(vectors)

    def apply_q(self, vectors: np.ndarray) -> np.ndarray:
        """Return Q·Z for Z of shape (P, k): the eigenvectors of T mapped to eigenvectors of A.

        With lower storage, Q = H_0 H_1 ⋯ H_{P−2}, so the reflectors are applied last
        first. Reflector i touches rows i + 1 to P − 1 only.
        """
        result = np.array(vectors, dtype=np.float64, order="C")
        n = self.dimension
        for i in range(n - 2, -1, -1):
            scale = self.tau[i]
            if scale == 0.0:
                continue
            v = self.reflectors[i + 1:, i].copy()
            v[0] = 1.0
            rows = result[i + 1:]
            rows -= np.outer(scale * v, v @ rows)
        return result


def reduce_to_tridiagonal(matrix: np.ndarray) -> TridiagonalForm:
    """Reduce a symmetric matrix (its lower triangle is read) to tridiagonal form, once.

    Parameters
    ----------
    matrix : ndarray, shape (P, P)
        Symmetric, finite, float64; not modified.

    Examples
    --------
    >>> form = reduce_to_tridiagonal(np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]]))
    >>> np.round(form.eigenvalues(), 12).tolist() == np.round([2 - 2**0.5, 2.0, 2 + 2**0.5], 12).tolist()
    True
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    n = matrix.shape[0]
    if n == 1:
        return TridiagonalForm(matrix.diagonal().copy(), np.zeros(0), np.zeros((1, 1)), np.zeros(0))
    # The workspace query gives the blocked algorithm, half of whose work is a BLAS-3 update.
    lwork, info = scipy.linalg.lapack.dsytrd_lwork(n, lower=1)
    if info != 0:
        raise RuntimeError(f"LAPACK dsytrd_lwork failed with info={info}")
    reflectors, diagonal, off_diagonal, tau, info = scipy.linalg.lapack.dsytrd(
        matrix, lower=1, lwork=max(int(lwork), n), overwrite_a=False
    )
    if info != 0:
        raise RuntimeError(f"LAPACK dsytrd failed with info={info}")
    return TridiagonalForm(diagonal, off_diagonal, reflectors, tau)


def extreme_eigenpairs(matrix: np.ndarray, top_k: int, bottom_k: int):
    """Return every eigenvalue and the ``top_k`` largest and ``bottom_k`` smallest eigenpairs.

    Returns
    -------
    eigenvalues : ndarray, shape (P,)
        Ascending.
    top_values, top_vectors : ndarray, shapes (top_k,) and (P, top_k)
        Largest first.
    bottom_values, bottom_vectors : ndarray, shapes (bottom_k,) and (P, bottom_k)
        Most negative first.
    """
    n = matrix.shape[0]
    form = reduce_to_tridiagonal(matrix)
    eigenvalues = form.eigenvalues()
    empty = (np.zeros(0), np.zeros((n, 0)))
    top = empty
    if top_k > 0:
        values, vectors = form.eigenpairs(n - top_k, n - 1)
        top = (values[::-1].copy(), vectors[:, ::-1].copy())
    bottom = form.eigenpairs(0, bottom_k - 1) if bottom_k > 0 else empty
    return eigenvalues, top[0], top[1], bottom[0], bottom[1]
