"""Batched Hessian-vector products of the PINN loss, matrix-free.

H·v is the forward-mode derivative (``tf.autodiff.ForwardAccumulator``) of the
reverse-mode gradient, in direction v. A block of k vectors is pushed through at once with
``tf.vectorized_map``, so one compiled call returns H·V for V of shape (P, k).
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse.linalg
import tensorflow as tf

from .loss import PoissonLoss

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
        self.chunk_size = chunk_size
        self.n_products = 0
        self._chunks = self._make_chunks()
        self._block = tf.function(self._block_eager, reduce_retracing=True)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.loss.n_params, self.loss.n_params)

    def _make_chunks(self) -> list[tuple[str, tuple[tf.Tensor, ...], float]]:
        """Split the points into (kind, tensors, weight) with weight = chunk size / total size."""
        chunks = []
        kinds = []
        if self.term in ("total", "pde"):
            kinds.append(("pde", (self.loss.interior, self.loss.source)))
        if self.term in ("total", "boundary"):
            kinds.append(("boundary", (self.loss.boundary,)))
        for kind, tensors in kinds:
            n = int(tensors[0].shape[0])
            size = n if self.chunk_size is None else min(self.chunk_size, n)
            for start in range(0, n, size):
                stop = min(start + size, n)
                chunks.append((kind, tuple(t[start:stop] for t in tensors), (stop - start) / n))
        return chunks

    def _term_value(self, theta: tf.Tensor, kind: str, tensors, weight) -> tf.Tensor:
        if kind == "pde":
            return weight * self.loss.pde_loss(theta, *tensors)
        return weight * self.loss.boundary_loss(theta, *tensors)

    def _block_eager(self, vectors: tf.Tensor, kind: str, tensors, weight: tf.Tensor) -> tf.Tensor:
        # vectors has shape (k, P); row i of the result is H_chunk · vectors[i]. The chunk's
        # points are arguments, so chunks of one size share one traced function.
        theta = self.theta

        def single(vector):
            with tf.autodiff.ForwardAccumulator(theta, vector) as accumulator:
                with tf.GradientTape() as tape:
                    tape.watch(theta)
                    value = self._term_value(theta, kind, tensors, weight)
                gradient = tape.gradient(value, theta)
            return accumulator.jvp(gradient)

        return tf.vectorized_map(single, vectors)

    def matmat(self, vectors: np.ndarray) -> np.ndarray:
        """Return H·V for V of shape (P, k), as float64 of shape (P, k)."""
        vectors = np.asarray(vectors)
        squeeze = vectors.ndim == 1
        if squeeze:
            vectors = vectors[:, None]
        if vectors.ndim != 2 or vectors.shape[0] != self.loss.n_params:
            raise ValueError(f"vectors must have {self.loss.n_params} rows, got shape {vectors.shape}")
        tangents = tf.constant(vectors.T, dtype=self.loss.dtype)
        total = None
        # Chunks are summed in a fixed order, so repeated calls give identical results.
        for kind, tensors, weight in self._chunks:
            part = self._block(tangents, kind, tensors, tf.constant(weight, self.loss.dtype))
            total = part if total is None else total + part
        self.n_products += vectors.shape[1]
        product = total.numpy().T.astype(np.float64)
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
