"""The Gauss-Newton approximation of the PINN loss Hessian, from the residual Jacobians.

For L(θ) = w_pde·mean(r_pde²) + w_bc·mean(r_bc²), with r_pde = Δu − f and r_bc = u,

.. math::

    H = \\underbrace{2 w_{pde} J_{pde}^T J_{pde} / N_{pde} + 2 w_{bc} J_{bc}^T J_{bc} / N_{bc}}_{G}
        + \\frac{2 w_{pde}}{N_{pde}} \\sum_i r_i \\nabla^2 r_i + \\frac{2 w_{bc}}{N_{bc}} \\sum_j r_j \\nabla^2 r_j ,

where J are the Jacobians of the residual vectors in θ. G is positive semi-definite by
construction. The second part, H − G, is the residual-curvature term. Both residuals are
linear in the output layer's weights, so G equals H on the output layer's diagonal block.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from .generic_hessian import symmetrize
from .loss import PoissonLoss
from .memory import MATRIX_FREE_ADVICE, MemoryBudgetError, budget_bytes, dense_matrix_bytes, format_bytes

logger = logging.getLogger(__name__)

# Points per Jacobian call. pfor keeps per-point copies of every activation, about
# 40 values per unit per interior point, so 250 points of width 50 stay under 40 MiB.
JACOBIAN_CHUNK_POINTS = 250


@dataclass
class GaussNewtonResult:
    """The Gauss-Newton matrix G = G_pde + G_bc, each P × P float64 and exactly symmetric."""

    matrix: np.ndarray
    pde: np.ndarray
    boundary: np.ndarray
    seconds: float
    n_jacobian_rows: int
    asymmetry: float = 0.0


def residual_jacobians(loss: PoissonLoss, theta, chunk_points: int = JACOBIAN_CHUNK_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Return J_pde = ∂(Δu − f)/∂θ, shape (N_pde, P), and J_bc = ∂u/∂θ, shape (N_bc, P), as float64."""
    theta = tf.constant(np.asarray(theta), dtype=loss.dtype)

    @tf.function(reduce_retracing=True)
    def pde_rows(interior, source):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            residual = loss.pde_residual(theta, interior, source)
        return tape.jacobian(residual, theta, experimental_use_pfor=True)

    @tf.function(reduce_retracing=True)
    def boundary_rows(boundary):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            residual = loss.boundary_residual(theta, boundary)
        return tape.jacobian(residual, theta, experimental_use_pfor=True)

    n_interior, n_boundary = int(loss.interior.shape[0]), int(loss.boundary.shape[0])
    pde = np.empty((n_interior, loss.n_params))
    boundary = np.empty((n_boundary, loss.n_params))
    for start in range(0, n_interior, chunk_points):
        stop = min(start + chunk_points, n_interior)
        pde[start:stop] = pde_rows(loss.interior[start:stop], loss.source[start:stop]).numpy()
    for start in range(0, n_boundary, chunk_points):
        stop = min(start + chunk_points, n_boundary)
        boundary[start:stop] = boundary_rows(loss.boundary[start:stop]).numpy()
    return pde, boundary


def gauss_newton_bytes(loss: PoissonLoss, split_terms: bool = True) -> int:
    """Estimate the bytes of :func:`gauss_newton_matrix`: the dense results and both Jacobians."""
    n_points = int(loss.interior.shape[0]) + int(loss.boundary.shape[0])
    return dense_matrix_bytes(loss.n_params, 3 if split_terms else 1) + 8 * n_points * loss.n_params


def gauss_newton_matrix(
    loss: PoissonLoss,
    theta,
    memory_budget_gib: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
) -> GaussNewtonResult:
    """Compute the Gauss-Newton matrix of the PINN loss and its PDE and boundary parts.

    .. math:: G = \\frac{2 w_{pde}}{N_{pde}} J_{pde}^T J_{pde} + \\frac{2 w_{bc}}{N_{bc}} J_{bc}^T J_{bc}

    Costs one pfor Jacobian per point chunk and two P × N × P matrix products.

    Raises
    ------
    MemoryBudgetError
        If the three P × P matrices and the two Jacobians do not fit in the budget.
    """
    budget = budget_bytes(memory_budget_gib)
    needed = gauss_newton_bytes(loss)
    if needed > budget:
        raise MemoryBudgetError(
            f"the Gauss-Newton matrices of {loss.n_params:,} parameters",
            needed,
            budget,
            MATRIX_FREE_ADVICE,
        )
    logger.info("Gauss-Newton matrix of %d parameters (estimate %s)", loss.n_params, format_bytes(needed))
    start = time.perf_counter()
    if progress is not None:
        progress(0, loss.n_params)
    pde_jacobian, boundary_jacobian = residual_jacobians(loss, theta)
    pde_scale = 2.0 * loss.pde_weight / pde_jacobian.shape[0]
    boundary_scale = 2.0 * loss.boundary_weight / boundary_jacobian.shape[0]
    # JᵀJ from one product is symmetric only up to rounding in some BLAS builds; average it.
    pde = pde_scale * (pde_jacobian.T @ pde_jacobian)
    asymmetry = symmetrize(pde)
    boundary = boundary_scale * (boundary_jacobian.T @ boundary_jacobian)
    asymmetry = max(asymmetry, symmetrize(boundary))
    total = pde + boundary
    if progress is not None:
        progress(loss.n_params, loss.n_params)
    n_rows = pde_jacobian.shape[0] + boundary_jacobian.shape[0]
    return GaussNewtonResult(total, pde, boundary, time.perf_counter() - start, n_rows, asymmetry)
