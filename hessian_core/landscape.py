"""Loss landscape: the loss along lines and over planes through θ, evaluated in batches.

Public API
----------
line_slices(loss, theta, directions, landscape_range=1.0, points=41, ...) -> LineSlices
    L(θ + α·v) and its PDE and boundary terms for each column v of ``directions``, with
    the quadratic model L(θ) + α·gᵀv + ½·c·α² alongside (c = λ for an eigenvector).
surface(loss, theta, direction_x, direction_y, landscape_range=1.0, points=41, ...) -> Surface
    L(θ + α·u + β·w) on a points × points grid, evaluated in batches.
random_direction(layout, theta, seed, include_biases=True) -> ndarray
    A Gaussian direction normalised per neuron (see its docstring for what a neuron is).
check_surface_memory(loss, points, memory_budget_gib) -> int
    Raise ``MemoryBudgetError`` before a grid that cannot fit; return the batch size.
estimate_surface_bytes(loss, points, memory_budget_gib) -> int
    The peak memory of ``surface`` for that grid and budget, in bytes.
landscape_parameters(...) / cache_key(parameters)
    Every setting that changes a landscape result, and a hash of them for caches.

Each result carries ``parameters``: the range, the points, the direction kind and seed,
and the SHA-256 of θ, of the directions and of the loss definition. Its ``cache_key`` is
a hash of all of them, so a cache keyed on it cannot return values of other settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf

from .hvp import HessianVectorProduct
from .loss import PoissonLoss
from .memory import MemoryBudgetError, budget_bytes
from .network import NetworkLayout

logger = logging.getLogger(__name__)

# Batches of more θ than this are slower per evaluation on a CPU: their activations leave
# the cache. Measured at width 50 with 1,000 + 1,000 points in float64 on 2 cores, per
# evaluation: 8.6 ms in batches of 4, 7.3 ms of 16, 15 ms of 32 and 21 ms of 64.
MAX_BATCH = 16
# Share of the memory budget the batched loss evaluations may use; the rest is left to
# the Hessian-vector products, the directions and the framework.
BATCH_MEMORY_SHARE = 0.5
# TensorFlow's runtime and the traced, vectorised loss beyond the import baseline, which
# the budget's other share holds. A 3 × 3 grid of a 1 × 4 network with 100 + 100 points
# measured 13 MiB. The rest is headroom for the peak of the batches, which varied by up to
# 20 % between runs of one grid (``tests/test_memory_estimates.py`` measures it).
SURFACE_FRAMEWORK_BYTES = 32 * 1024**2


# --- fingerprints and cache keys ------------------------------------------------------------


def array_sha256(array: np.ndarray) -> str:
    """Return the SHA-256 of an array's dtype, shape and bytes (C order)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def loss_fingerprint(loss: PoissonLoss) -> str:
    """Return a SHA-256 of everything that defines the loss: widths, activation, dtype, weights and points."""
    digest = hashlib.sha256()
    description = {
        "widths": list(loss.layout.widths),
        "activation": loss.activation,
        "dtype": loss.dtype.name,
        "pde_weight": loss.pde_weight,
        "boundary_weight": loss.boundary_weight,
    }
    digest.update(json.dumps(description, sort_keys=True).encode())
    for array in (loss.points.interior, loss.points.source, loss.points.boundary):
        digest.update(array_sha256(np.asarray(array)).encode())
    return digest.hexdigest()


def landscape_parameters(
    loss: PoissonLoss,
    theta: np.ndarray,
    directions: np.ndarray,
    landscape_range: float,
    points: int,
    direction_kind: str,
    direction_seed: int | None = None,
    include_biases: bool | None = None,
    direction_source: str = "",
) -> dict:
    """Collect every setting that changes a landscape result into a JSON-ready dict.

    ``direction_kind`` is ``"eigenvector"`` or ``"random"``; ``direction_seed`` and
    ``include_biases`` apply to random directions; ``direction_source`` names where
    eigenvectors came from (for example ``"dense"`` or ``"lanczos"``). The directions
    themselves enter through their SHA-256, so two eigensolvers that return different
    vectors give different keys.
    """
    return {
        "landscape_range": float(landscape_range),
        "points": int(points),
        "direction_kind": direction_kind,
        "direction_seed": direction_seed,
        "include_biases": include_biases,
        "direction_source": direction_source,
        "directions_sha256": array_sha256(np.asarray(directions, dtype=np.float64)),
        "theta_sha256": array_sha256(np.asarray(theta)),
        "loss_sha256": loss_fingerprint(loss),
    }


def cache_key(parameters: dict) -> str:
    """Return the SHA-256 of ``parameters`` serialised as sorted JSON."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()


# --- directions ------------------------------------------------------------------------------


def random_direction(layout: NetworkLayout, theta: np.ndarray, seed: int, include_biases: bool = True) -> np.ndarray:
    """Draw a Gaussian direction d normalised per neuron to the matching part of θ.

    Neuron j of layer l is output unit j of that layer. In the Keras layout a kernel has
    shape ``(fan_in, fan_out)``, so the neuron owns **column** ``kernel[:, j]`` (its
    incoming weights) and ``bias[j]``. For every neuron the direction's entries on those
    parameters are scaled so that their Euclidean norm equals the norm of θ's entries on
    the same parameters:

    .. math::

        d_{l,j} \\leftarrow d_{l,j} \\, \\frac{\\lVert \\theta_{l,j} \\rVert}{\\lVert d_{l,j} \\rVert},
        \\qquad \\theta_{l,j} = (K_l[:, j],\\ b_l[j]).

    With ``include_biases=False`` the bias entries of d are zero and a neuron is its
    kernel column alone. A neuron whose θ part is zero gets a zero direction.

    Returns a float64 array of shape (P,).
    """
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (layout.n_params,):
        raise ValueError(f"θ must have shape ({layout.n_params},), got {theta.shape}")
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(layout.n_params)

    for layer in range(1, layout.n_layers + 1):
        kernel_block, bias_block = layout.blocks[2 * (layer - 1)], layout.blocks[2 * layer - 1]
        # Views into the flat arrays, shaped (fan_in, fan_out) and (fan_out,).
        kernel_direction = direction[kernel_block.offset : kernel_block.stop].reshape(kernel_block.shape)
        bias_direction = direction[bias_block.offset : bias_block.stop]
        kernel_theta = theta[kernel_block.offset : kernel_block.stop].reshape(kernel_block.shape)
        bias_theta = theta[bias_block.offset : bias_block.stop]

        if not include_biases:
            bias_direction[:] = 0.0
        theta_norms = np.sum(kernel_theta**2, axis=0)
        direction_norms = np.sum(kernel_direction**2, axis=0)
        if include_biases:
            theta_norms = theta_norms + bias_theta**2
            direction_norms = direction_norms + bias_direction**2
        scale = np.sqrt(theta_norms) / np.sqrt(direction_norms)
        kernel_direction *= scale[None, :]
        bias_direction *= scale
    return direction


# --- batched loss evaluation -----------------------------------------------------------------


def loss_evaluation_bytes(loss: PoissonLoss) -> int:
    """Estimate the peak memory of one loss evaluation inside a vectorised batch, in bytes.

    The forward Laplacian carries (4 N_pde + N_bc) × width activations per layer, and about
    ten such arrays are alive at once, plus a few copies of θ. Measured with
    ``resource.getrusage`` on TensorFlow 2.21 CPU, 1,000 + 1,000 points: about 13 MB per
    evaluation at width 50 and 47 MB at width 200; this estimate gives 20 and 82 MB.
    """
    itemsize = loss.dtype.size
    width = max(loss.layout.widths[1:-1], default=1)
    rows = 4 * loss.points.interior.shape[0] + loss.points.boundary.shape[0]
    return int(itemsize * (3 * loss.n_params + 10 * rows * width))


class BatchedLoss:
    """Loss terms at many θ = θ₀ + D·c at once, with ``tf.vectorized_map`` over the batch.

    Parameters
    ----------
    loss : PoissonLoss
    theta : array_like, shape (P,)
    directions : ndarray, shape (P, d)
        The directions D; coefficients c have shape (batch, d).
    """

    def __init__(self, loss: PoissonLoss, theta, directions: np.ndarray) -> None:
        self.loss = loss
        self.theta = tf.constant(np.asarray(theta), dtype=loss.dtype)
        self.directions = tf.constant(np.asarray(directions), dtype=loss.dtype)
        self._batch = tf.function(self._batch_eager, reduce_retracing=True)

    def _batch_eager(self, coefficients: tf.Tensor) -> tf.Tensor:
        thetas = self.theta[None, :] + tf.matmul(coefficients, self.directions, transpose_b=True)
        return tf.vectorized_map(lambda theta: tf.stack(self.loss.terms(theta)), thetas, fallback_to_while_loop=False)

    def __call__(
        self, coefficients: np.ndarray, batch_size: int, progress: Callable[[str], None] | None = None, label: str = ""
    ) -> np.ndarray:
        """Return the (PDE, boundary) terms, shape (M, 2) float64, for coefficients of shape (M, d)."""
        coefficients = np.asarray(coefficients, dtype=np.float64)
        values = np.empty((coefficients.shape[0], 2))
        last_report = time.perf_counter()
        for start in range(0, coefficients.shape[0], batch_size):
            chunk = tf.constant(coefficients[start : start + batch_size], dtype=self.loss.dtype)
            values[start : start + batch_size] = self._batch(chunk).numpy()
            if progress is not None and time.perf_counter() - last_report > 5.0:
                last_report = time.perf_counter()
                progress(f"[landscape] {label} {min(start + batch_size, len(values))} of {len(values)} points")
        return values


def _grid_bytes(loss: PoissonLoss, points: int, n_directions: int) -> int:
    """Bytes of a grid's values and coefficients (5 · points² floats) and its directions."""
    return 8 * (5 * points * points + n_directions * loss.n_params)


def check_surface_memory(loss: PoissonLoss, points: int, memory_budget_gib: float, n_directions: int = 2) -> int:
    """Check that a points × points grid fits the budget and return its batch size.

    The estimate is the grid's values and coefficients (5 · points² floats), the
    directions (n_directions · P floats) and at least one batched loss evaluation
    (:func:`loss_evaluation_bytes`), against ``BATCH_MEMORY_SHARE`` of the budget. The
    batch size is as many evaluations as fit that share, at most ``MAX_BATCH``.

    Raises
    ------
    MemoryBudgetError
        With the estimate, the budget and a coarser grid that fits, if any.
    """
    budget = int(budget_bytes(memory_budget_gib) * BATCH_MEMORY_SHARE)
    per_evaluation = loss_evaluation_bytes(loss)

    needed = _grid_bytes(loss, points, n_directions) + per_evaluation
    if needed > budget:
        coarser = [n for n in range(3, points) if _grid_bytes(loss, n, n_directions) + per_evaluation <= budget]
        advice = (
            f"use a coarser grid of at most {coarser[-1]} points per axis, or raise the memory budget"
            if coarser
            else "one loss evaluation alone exceeds it, so raise the memory budget or use fewer collocation points"
        )
        raise MemoryBudgetError(
            f"a {points} × {points} landscape grid (checked against {BATCH_MEMORY_SHARE:.0%} of the budget)",
            needed,
            budget,
            advice,
        )
    return int(max(1, min(MAX_BATCH, (budget - _grid_bytes(loss, points, n_directions)) // per_evaluation)))


def estimate_surface_bytes(loss: PoissonLoss, points: int, memory_budget_gib: float, n_directions: int = 2) -> int:
    """Estimate the peak memory of :func:`surface` above the process's baseline, in bytes.

    The estimate is the grid and its directions, one batch of loss evaluations of the
    size that :func:`check_surface_memory` chooses for the budget, and
    ``SURFACE_FRAMEWORK_BYTES``: 8 · (5 · points² + n_directions · P) + batch_size ·
    :func:`loss_evaluation_bytes` + 32 MiB. It stays within any budget of at least
    64 MiB, because the check keeps the grid and the batches within half the budget.

    Raises
    ------
    MemoryBudgetError
        As :func:`check_surface_memory`, when the grid does not fit the budget.
    """
    batch_size = check_surface_memory(loss, points, memory_budget_gib, n_directions)
    return _grid_bytes(loss, points, n_directions) + batch_size * loss_evaluation_bytes(loss) + SURFACE_FRAMEWORK_BYTES


def slice_coordinates(landscape_range: float, points: int) -> np.ndarray:
    """Return ``points`` evenly spaced α in [−range, range]; the middle one is exactly 0 when points is odd."""
    if not landscape_range > 0:
        raise ValueError(f"landscape_range must be positive, got {landscape_range}")
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    alphas = landscape_range * np.linspace(-1.0, 1.0, points)
    if points % 2:
        alphas[points // 2] = 0.0
    return alphas


# --- 1D slices -------------------------------------------------------------------------------


@dataclass
class LineSlices:
    """The loss along lines θ + α·v, one per direction, with quadratic models.

    Attributes
    ----------
    alphas : ndarray, shape (n,)
    labels : list of str
        One name per direction, for example ``"top 1"`` or ``"most negative"``.
    total, pde, boundary : ndarray, shape (m, n)
        L(θ + α·v) and its weighted PDE and boundary terms.
    quadratic_total, quadratic_pde, quadratic_boundary : ndarray, shape (m, n)
        Second-order Taylor models q(α) = L(θ) + α·gᵀv + ½·c·α² of each term, with g
        the term's gradient and c its curvature.
    loss_at_theta : ndarray, shape (3,)
        (total, PDE, boundary) at θ from the same batched evaluation as the slices.
    gradient_projections : ndarray, shape (3, m)
        gᵀv for the total, PDE and boundary terms.
    curvatures : ndarray, shape (3, m)
        c for the total, PDE and boundary terms. The PDE and boundary rows are vᵀH_term v
        from Hessian-vector products; the total row is the eigenvalue λ where one was
        given, otherwise their sum.
    eigenvalues : ndarray, shape (m,) or None
    parameters : dict
        From :func:`landscape_parameters`.
    cache_key : str
    n_products : int
        Hessian-vector products spent on the curvatures.
    seconds : float
    """

    alphas: np.ndarray
    labels: list[str]
    total: np.ndarray
    pde: np.ndarray
    boundary: np.ndarray
    quadratic_total: np.ndarray
    quadratic_pde: np.ndarray
    quadratic_boundary: np.ndarray
    loss_at_theta: np.ndarray
    gradient_projections: np.ndarray
    curvatures: np.ndarray
    eigenvalues: np.ndarray | None
    parameters: dict = field(repr=False)
    cache_key: str = ""
    n_products: int = 0
    seconds: float = 0.0


def _term_gradients(loss: PoissonLoss, theta) -> np.ndarray:
    """Return the gradients of the PDE and boundary terms at θ, shape (2, P) float64."""
    theta = tf.constant(np.asarray(theta), dtype=loss.dtype)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(theta)
        pde, boundary = loss.terms(theta)
    gradients = [tape.gradient(term, theta).numpy().astype(np.float64) for term in (pde, boundary)]
    del tape
    return np.stack(gradients)


def line_slices(
    loss: PoissonLoss,
    theta,
    directions: np.ndarray,
    landscape_range: float = 1.0,
    points: int = 41,
    labels: list[str] | None = None,
    eigenvalues: np.ndarray | None = None,
    direction_kind: str = "eigenvector",
    direction_seed: int | None = None,
    include_biases: bool | None = None,
    direction_source: str = "",
    memory_budget_gib: float = 2.0,
    progress: Callable[[str], None] | None = None,
    term_products: tuple[HessianVectorProduct, HessianVectorProduct] | None = None,
) -> LineSlices:
    """Evaluate the loss and its terms along θ + α·v for every column v of ``directions``.

    .. math::

        \\ell_v(\\alpha) = L(\\theta + \\alpha v), \\qquad
        q_v(\\alpha) = L(\\theta) + \\alpha\\, g^\\top v + \\tfrac12 c\\, \\alpha^2,

    for α in ``slice_coordinates(landscape_range, points)``, and the same for the PDE and
    boundary terms. For a unit eigenvector with eigenvalue λ, c = vᵀHv = λ, so q_v'' = λ.

    Parameters
    ----------
    loss : PoissonLoss
    theta : array_like, shape (P,)
    directions : ndarray, shape (P, m)
        One direction per column, used as given (not normalised).
    landscape_range, points : float, int
        α runs over ``points`` values in [−range, range].
    labels : list of str, optional
    eigenvalues : ndarray, shape (m,), optional
        λ of each direction when the directions are eigenvectors of the total Hessian.
    direction_kind, direction_seed, include_biases, direction_source
        Recorded in ``parameters`` (see :func:`landscape_parameters`).
    memory_budget_gib : float
        Sets the batch size (see :func:`check_surface_memory`).
    progress : callable, optional
        Receives a one-line message about every 5 s.
    term_products : (HessianVectorProduct, HessianVectorProduct), optional
        Products of the PDE and boundary Hessians at this θ, to reuse their compiled
        functions across calls; built here when not given.

    Cost: m · points loss evaluations in batches, and 2m Hessian-vector products for the
    PDE and boundary curvatures.
    """
    start_time = time.perf_counter()
    theta = np.asarray(theta)
    directions = np.asarray(directions, dtype=np.float64)
    if directions.ndim == 1:
        directions = directions[:, None]
    n_directions = directions.shape[1]
    if directions.shape[0] != loss.n_params:
        raise ValueError(f"directions must have {loss.n_params} rows, got shape {directions.shape}")
    if eigenvalues is not None:
        eigenvalues = np.asarray(eigenvalues, dtype=np.float64).ravel()
        if eigenvalues.shape != (n_directions,):
            raise ValueError(f"eigenvalues must have one entry per direction ({n_directions}), got {eigenvalues.shape}")
    labels = list(labels) if labels is not None else [f"direction {i + 1}" for i in range(n_directions)]
    alphas = slice_coordinates(landscape_range, points)
    batch_size = check_surface_memory(loss, points, memory_budget_gib, n_directions=n_directions)

    # One batch list: every (direction, α) pair, then α = 0 once for L(θ) itself.
    coefficients = np.zeros((n_directions * points + 1, n_directions))
    for i in range(n_directions):
        coefficients[i * points : (i + 1) * points, i] = alphas
    evaluate = BatchedLoss(loss, theta, directions)
    values = evaluate(coefficients, batch_size, progress, "slices")
    pde = values[:-1, 0].reshape(n_directions, points)
    boundary = values[:-1, 1].reshape(n_directions, points)
    loss_at_theta = np.array([values[-1].sum(), values[-1, 0], values[-1, 1]])

    if progress is not None:
        progress(f"[landscape] curvature of the PDE and boundary terms along {n_directions} directions")
    term_gradients = _term_gradients(loss, theta)
    gradient_projections = np.empty((3, n_directions))
    gradient_projections[1:] = term_gradients @ directions
    gradient_projections[0] = gradient_projections[1] + gradient_projections[2]
    curvatures = np.empty((3, n_directions))
    n_products = 0
    if term_products is None:
        term_products = (HessianVectorProduct(loss, theta, term="pde"), HessianVectorProduct(loss, theta, term="boundary"))
    for row, (term, hvp) in enumerate(zip(("pde", "boundary"), term_products), start=1):
        if hvp.term != term or not np.array_equal(hvp.theta.numpy(), theta):
            raise ValueError(f"term_products[{row - 1}] must be the {term} product at this θ, got the {hvp.term} product")
        before = hvp.n_products
        curvatures[row] = np.einsum("ij,ij->j", directions, hvp.matmat(directions))
        n_products += hvp.n_products - before
    curvatures[0] = eigenvalues if eigenvalues is not None else curvatures[1] + curvatures[2]

    def quadratic(row: int, value: float) -> np.ndarray:
        return value + np.outer(gradient_projections[row], alphas) + 0.5 * np.outer(curvatures[row], alphas**2)

    parameters = landscape_parameters(
        loss, theta, directions, landscape_range, points, direction_kind, direction_seed, include_biases, direction_source
    )
    return LineSlices(
        alphas=alphas,
        labels=labels,
        total=pde + boundary,
        pde=pde,
        boundary=boundary,
        quadratic_total=quadratic(0, loss_at_theta[0]),
        quadratic_pde=quadratic(1, loss_at_theta[1]),
        quadratic_boundary=quadratic(2, loss_at_theta[2]),
        loss_at_theta=loss_at_theta,
        gradient_projections=gradient_projections,
        curvatures=curvatures,
        eigenvalues=eigenvalues,
        parameters=parameters,
        cache_key=cache_key(parameters),
        n_products=n_products,
        seconds=time.perf_counter() - start_time,
    )


# --- 2D surface ------------------------------------------------------------------------------


@dataclass
class Surface:
    """The loss over the plane θ + α·u + β·w on a grid.

    Attributes
    ----------
    alphas, betas : ndarray, shape (n,)
        Coordinates along u and w.
    total, pde, boundary : ndarray, shape (n, n)
        Entry [i, j] is the value at (alphas[i], betas[j]).
    labels : tuple of str
        Names of u and w.
    parameters : dict
    cache_key : str
    batch_size : int
        Loss evaluations per vectorised call.
    seconds : float
    """

    alphas: np.ndarray
    betas: np.ndarray
    total: np.ndarray
    pde: np.ndarray
    boundary: np.ndarray
    labels: tuple[str, str]
    parameters: dict = field(repr=False)
    cache_key: str = ""
    batch_size: int = 0
    seconds: float = 0.0


def surface(
    loss: PoissonLoss,
    theta,
    direction_x: np.ndarray,
    direction_y: np.ndarray,
    landscape_range: float = 1.0,
    points: int = 41,
    labels: tuple[str, str] = ("top 1", "top 2"),
    direction_kind: str = "eigenvector",
    direction_seed: int | None = None,
    include_biases: bool | None = None,
    direction_source: str = "",
    memory_budget_gib: float = 2.0,
    progress: Callable[[str], None] | None = None,
) -> Surface:
    """Evaluate L(θ + α·u + β·w) and its terms for α, β on a ``points`` × ``points`` grid.

    The coordinates are ``slice_coordinates(landscape_range, points)`` on both axes. The
    grid is checked against the budget first (:func:`check_surface_memory`) and then
    evaluated in vectorised batches of up to ``MAX_BATCH`` points.

    Cost: points² loss evaluations, no Hessian-vector products.

    Raises
    ------
    MemoryBudgetError
        If the grid cannot fit the budget; the message suggests a coarser grid.
    """
    start_time = time.perf_counter()
    theta = np.asarray(theta)
    directions = np.stack([np.asarray(direction_x, dtype=np.float64), np.asarray(direction_y, dtype=np.float64)], axis=1)
    if directions.shape[0] != loss.n_params:
        raise ValueError(f"directions must have length {loss.n_params}, got {directions.shape[0]}")
    batch_size = check_surface_memory(loss, points, memory_budget_gib)
    alphas = slice_coordinates(landscape_range, points)

    grid_alpha, grid_beta = np.meshgrid(alphas, alphas, indexing="ij")
    coefficients = np.stack([grid_alpha.ravel(), grid_beta.ravel()], axis=1)
    values = BatchedLoss(loss, theta, directions)(coefficients, batch_size, progress, "surface")
    pde = values[:, 0].reshape(points, points)
    boundary = values[:, 1].reshape(points, points)

    parameters = landscape_parameters(
        loss, theta, directions, landscape_range, points, direction_kind, direction_seed, include_biases, direction_source
    )
    seconds = time.perf_counter() - start_time
    logger.info("landscape surface %d × %d in %.1f s (batches of %d)", points, points, seconds, batch_size)
    return Surface(
        alphas=alphas,
        betas=alphas.copy(),
        total=pde + boundary,
        pde=pde,
        boundary=boundary,
        labels=tuple(labels),
        parameters=parameters,
        cache_key=cache_key(parameters),
        batch_size=batch_size,
        seconds=seconds,
    )
