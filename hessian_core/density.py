"""Spectral density by stochastic Lanczos quadrature (SLQ) and Gaussian smoothing.

Public API
----------
slq_density(operator, n_runs=4, n_steps=40, width=None, seed=0, grid_points=400, ...) -> SpectralDensity
    Quadrature nodes and weights from several Lanczos runs, and their Gaussian-smoothed
    density on a grid.
quadrature_from_tridiagonal(alpha, beta) -> (nodes, weights)
    Nodes and weights of one run's tridiagonal matrix.
smoothed_density(nodes, weights, grid, width) -> ndarray
    Σ_j w_j N(t; node_j, width²) on a grid; also serves a dense spectrum (weights 1/P).

The density approximates the normalised spectral measure (1/P) Σ_i δ(t − λ_i), so it
integrates to 1; multiply it by P for eigenvalues per unit of t.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from .lanczos import as_operator, lanczos_tridiagonal

logger = logging.getLogger(__name__)


def quadrature_from_tridiagonal(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the Gauss quadrature nodes and weights of one Lanczos tridiagonal matrix T.

    Nodes are the eigenvalues of T (ascending); weight j is the squared first component
    of T's unit eigenvector j. The eigenvector matrix is orthogonal, so the weights sum
    to 1.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    if alpha.size == 1:
        return alpha.copy(), np.ones(1)
    nodes, vectors = scipy.linalg.eigh_tridiagonal(alpha, beta)
    return nodes, vectors[0] ** 2


def smoothed_density(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, width: float) -> np.ndarray:
    """Evaluate Σ_j w_j · exp(−(t − node_j)² / (2 width²)) / (width · sqrt(2π)) at each t in ``grid``.

    ``nodes`` and ``weights`` have the same shape (any); the sum runs over all entries.
    """
    if not width > 0:
        raise ValueError(f"the smoothing width must be positive, got {width}")
    nodes = np.asarray(nodes, dtype=np.float64).ravel()
    weights = np.asarray(weights, dtype=np.float64).ravel()
    grid = np.asarray(grid, dtype=np.float64)
    density = np.zeros(grid.shape)
    # Chunks of nodes keep the (grid, nodes) temporary small for a dense spectrum of 10⁵ values.
    for start in range(0, nodes.size, 2048):
        offsets = (grid.ravel()[:, None] - nodes[None, start : start + 2048]) / width
        density += (np.exp(-0.5 * offsets * offsets) @ weights[start : start + 2048]).reshape(grid.shape)
    return density / (width * math.sqrt(2.0 * math.pi))


@dataclass
class SpectralDensity:
    """A smoothed spectral density with the quadrature it came from.

    Attributes
    ----------
    grid : ndarray, shape (G,)
        Points t at which the density is evaluated.
    density : ndarray, shape (G,)
        Mean over runs of each run's smoothed quadrature; integrates to about 1.
    nodes, weights : ndarray, shape (n_runs, n_steps)
        Quadrature nodes (ascending per run) and weights (each row sums to 1).
    width : float
        Standard deviation of the Gaussian smoothing, in eigenvalue units.
    n_runs, n_steps, n_products, seed : int
    restarts : ndarray of int, shape (n_runs,)
        Invariant subspaces met per run (see ``LanczosTridiagonal``).
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    width: float
    n_runs: int
    n_steps: int
    n_products: int
    seed: int
    restarts: np.ndarray

    def to_dict(self) -> dict:
        return {
            "grid": self.grid.tolist(),
            "density": self.density.tolist(),
            "nodes": self.nodes.tolist(),
            "weights": self.weights.tolist(),
            "width": self.width,
            "n_runs": self.n_runs,
            "n_steps": self.n_steps,
            "n_products": self.n_products,
            "seed": self.seed,
            "restarts": self.restarts.tolist(),
        }


def slq_density(
    operator,
    n_runs: int = 4,
    n_steps: int = 40,
    width: float | None = None,
    seed: int = 0,
    grid_points: int = 400,
    grid: np.ndarray | None = None,
    memory_budget_gib: float | None = None,
) -> SpectralDensity:
    """Estimate the spectral density of a symmetric operator by stochastic Lanczos quadrature.

    Each run starts Lanczos from a normalised Rademacher vector z and takes ``n_steps``
    steps with full reorthogonalisation. The eigenvalues θ_j of its tridiagonal matrix and
    the squared first components τ_j² of their eigenvectors give a Gauss quadrature,
    zᵀ f(A) z ≈ Σ_j τ_j² f(θ_j). The density is the average over runs of
    Σ_j τ_j² N(t; θ_j, width²).

    Parameters
    ----------
    operator : HessianVectorProduct, LinearOperator or array_like, shape (P, P)
    n_runs : int
        Independent start vectors; all runs advance together as one block product.
    n_steps : int
        Lanczos steps per run, at most P. With n_steps = P the nodes are all eigenvalues.
    width : float, optional
        Gaussian smoothing width. Defaults to 1% of the node range (1 if all nodes are equal).
    seed : int
        Seed of the start vectors.
    grid_points : int
        Size of the default grid, which spans the nodes ± 3 widths.
    grid : ndarray, optional
        Evaluate the density on these points instead.
    memory_budget_gib : float, optional
        Passed to :func:`hessian_core.lanczos.lanczos_tridiagonal`.

    Cost: n_runs · n_steps products; memory n_runs · n_steps · P · 8 bytes for the bases.

    Raises
    ------
    NonFiniteError
        If a product contains NaN or ±inf; the message names the product number (Lanczos
        step j of all runs computes products j · n_runs + 1 to (j + 1) · n_runs).
    """
    counting = as_operator(operator, "stochastic Lanczos quadrature")
    n = counting.dimension
    if n_runs < 1:
        raise ValueError(f"n_runs must be at least 1, got {n_runs}")
    if not 1 <= n_steps <= n:
        raise ValueError(f"n_steps must be between 1 and P = {n}, got {n_steps}")

    rng = np.random.default_rng(seed)
    starts = rng.choice(np.array([-1.0, 1.0]), size=(n, n_runs)) / math.sqrt(n)
    tridiagonal = lanczos_tridiagonal(counting, starts, n_steps, seed=seed + 1, memory_budget_gib=memory_budget_gib)

    nodes = np.empty((n_runs, n_steps))
    weights = np.empty((n_runs, n_steps))
    for run in range(n_runs):
        nodes[run], weights[run] = quadrature_from_tridiagonal(tridiagonal.alpha[run], tridiagonal.beta[run])

    if width is None:
        spread = float(np.ptp(nodes))
        width = 0.01 * spread if spread > 0 else 1.0
    if grid is None:
        grid = np.linspace(nodes.min() - 3 * width, nodes.max() + 3 * width, grid_points)
    density = smoothed_density(nodes, weights / n_runs, grid, width)
    logger.info("SLQ density: %d runs of %d steps, %d products", n_runs, n_steps, tridiagonal.n_products)
    return SpectralDensity(
        grid=np.asarray(grid, dtype=np.float64),
        density=density,
        nodes=nodes,
        weights=weights,
        width=float(width),
        n_runs=n_runs,
        n_steps=n_steps,
        n_products=tridiagonal.n_products,
        seed=seed,
        restarts=tridiagonal.restarts,
    )
