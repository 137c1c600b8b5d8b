"""Batched Hessian-vector products of the PINN loss, matrix-free.

H·v is the forward-mode derivative of the reverse-mode gradient in direction v, computed
by the hand-written second-order adjoint of :mod:`hessian_core.structured_hessian`: the
k vectors of a block travel together as one batch dimension through explicit value,
gradient and Laplacian tangents, so one compiled call returns H·V for V of shape (P, k)
at about two gradients' work per vector.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse.linalg
import tensorflow as tf

from .checks import check_finite_theta
from .loss import PoissonLoss
from .structured_hessian import StructuredPinnHessian

logger = logging.getLogger(__name__)

TERMS = ("total", "pde", "boundary")


class HessianVectorProduct:
    """H·V for one loss term at a fixed θ.

    Parameters
    ----------
    loss : PoissonLoss
    theta : array_like, shape (P,)
    term : {"total", "pde", "boundary"}
        Which Hessian: of L, of the weighted PDE term or of the weighted boundary term.
    chunk_size : int, optional
        Evaluate the loss over at most this many collocation points of each kind at a time,
        which bounds memory. Each chunk's mean is weighted by its share of the points, so the
        result equals the single-batch product up to rounding.

    Raises
    ------
    NonFiniteError
        If θ, converted to ``loss.dtype``, contains NaN or ±inf. The products themselves
        are not checked here; ``hessian_core.lanczos.CountingOperator``, through which
        every estimator applies the operator, checks each one.

    Attributes
    ----------
    n_products : int
        Number of Hessian-vector products computed so far (a block of k counts k).
    """

    def __init__(self, loss: PoissonLoss, theta, term: str = "total", chunk_size: int | None = None) -> None:
        if term not in TERMS:
            raise ValueError(f"term must be one of {', '.join(TERMS)}, got {term!r}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size}")
        self.loss = loss
        self.term = term
        self.theta = tf.constant(np.asarray(theta), dtype=loss.dtype)
        if self.theta.shape != (loss.n_params,):
            raise ValueError(f"θ must have shape ({loss.n_params},), got {tuple(self.theta.shape)}")
        check_finite_theta(self.theta.numpy(), loss.layout, f"in {loss.dtype.name}, for {term} Hessian-vector products")
        self.chunk_size = chunk_size
        self.n_products = 0
        self._engine = StructuredPinnHessian(loss, self.theta.numpy(), chunk_points=chunk_size)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.loss.n_params, self.loss.n_params)

    def matmat(self, vectors: np.ndarray) -> np.ndarray:
        """Return H·V for V of shape (P, k), as float64 of shape (P, k)."""
        vectors = np.asarray(vectors)
        squeeze = vectors.ndim == 1
        if squeeze:
            vectors = vectors[:, None]
        if vectors.ndim != 2 or vectors.shape[0] != self.loss.n_params:
            raise ValueError(f"vectors must have {self.loss.n_params} rows, got shape {vectors.shape}")
        pde, boundary = self._engine.products(vectors)
        product = {"total": pde + boundary, "pde": pde, "boundary": boundary}[self.term]
        self.n_products += vectors.shape[1]
        return product[:, 0] if squeeze else product

    def matvec(self, vector: np.ndarray) -> np.ndarray:
        """Return H·v for v of shape (P,)."""
        return self.matmat(np.asarray(vector).reshape(-1))

    def as_linear_operator(self) -> scipy.sparse.linalg.LinearOperator:
        """Wrap the product as a symmetric float64 SciPy ``LinearOperator``."""
        n = self.loss.n_params
        return scipy.sparse.linalg.LinearOperator(
            (n, n),
            matvec=self.matvec,
            matmat=self.matmat,
            rmatvec=self.matvec,
            rmatmat=self.matmat,
            dtype=np.float64,
        )
