"""The spectrum and landscape stage of a run: compute them and write their files.

Public API
----------
write_spectrum_files(settings, loss, theta, hessian, out, report) -> dict
    Writes ``eigenvalues.npy``, ``spectrum.json`` and ``landscape.npz`` into ``out`` and
    returns the content of ``spectrum.json``.

Files
-----
``eigenvalues.npy``
    float64, ascending. Every eigenvalue when the dense Hessian was decomposed
    (``spectrum.json["eigenvalues_file"]["complete"]`` is true); otherwise only the
    eigenvalues Lanczos found (the most negative and the top-k).
``spectrum.json``
    Statistics (dense only, total, PDE and boundary), the top-k pairs (largest algebraic)
    with residuals, the most negative pair reported separately, the Hutchinson trace with
    its standard error, the SLQ density grid, and the products spent by each estimator.
``landscape.npz``
    1D slices along the top-k eigenvectors, the most negative eigenvector and two random
    per-neuron-normalised directions, with quadratic models and the PDE and boundary terms;
    the 2D surface over the top two eigenvectors; and the JSON ``parameters`` and
    ``cache_key`` of each part.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .density import slq_density
from .files import write_atomic, write_npy_atomic, write_npz_atomic
from .hvp import HessianVectorProduct
from .lanczos import lanczos_eigenpairs
from .landscape import line_slices, random_direction, surface
from .loss import PoissonLoss
from .settings import Settings
from .spectrum import dense_spectrum, term_statistics
from .trace import hutchinson_trace

logger = logging.getLogger(__name__)

# Estimator sizes. Through Hessian-vector products each probe or step costs one product,
# about 0.6 s at width 200 on two CPU cores, so the matrix-free sizes are smaller.
HUTCHINSON_PROBES = {"dense": 200, "matrix-free": 30}
# Probes per batched product; 10 divides both probe counts, so every block has one shape
# and the compiled product is traced once.
HUTCHINSON_BLOCK = 10
SLQ_RUNS = {"dense": 8, "matrix-free": 3}
SLQ_STEPS = {"dense": 80, "matrix-free": 30}
LANCZOS_TOL = 1e-10
# Product budgets of the two Lanczos runs. The most negative eigenvalue of a trained PINN
# usually sits next to a crowd of near-zero eigenvalues, where Lanczos converges slowly.
LANCZOS_MAX_PRODUCTS = {"LA": 4000, "SA": 1000}
BOTTOM_K = 1
RANDOM_DIRECTIONS = 2
SEED_OFFSET_RANDOM_DIRECTIONS = 1000
# Residual bound a Lanczos pair must meet to count as accurate in spectrum.json.
RESIDUAL_BOUND = 1e-6


def _reporter(report: Callable[[str], None]):
    """Wrap ``report`` so each message also goes to the debug log."""

    def emit(text: str) -> None:
        logger.debug(text)
        report(text)

    return emit


def _pairs_entry(eigenvalues, residuals, method: str, **extra) -> dict:
    return {
        "method": method,
        "eigenvalues": np.asarray(eigenvalues, dtype=np.float64).tolist(),
        "residuals": np.asarray(residuals, dtype=np.float64).tolist(),
        "max_residual": float(np.max(residuals)) if len(residuals) else None,
        **extra,
    }


def write_spectrum_files(
    settings: Settings, loss: PoissonLoss, theta: np.ndarray, hessian, out: Path, report: Callable[[str], None]
) -> dict:
    """Compute the spectrum and the landscape of ``loss`` at θ and write their files into ``out``.

    ``hessian`` is a dense Hessian result (``.matrix``, and ``.pde`` and ``.boundary`` or
    None) or None. The dense path (``eigh``) runs when a Hessian is given and
    ``settings.spectrum == "dense"``; otherwise Lanczos runs on Hessian-vector products.

    Raises
    ------
    MemoryBudgetError
        Before a dense decomposition or a landscape grid that cannot fit the budget.
    RuntimeError
        If Lanczos did not converge on the top-k pairs. All three files are still written
        first, with ``converged`` false. An unconverged most negative pair only sets its
        flag and reports a warning.
    """
    emit = _reporter(report)
    out = Path(out)
    theta = np.asarray(theta)
    n = loss.n_params
    top_k = min(settings.top_k, n - 1)
    use_dense = hessian is not None and settings.spectrum == "dense"
    mode = "dense" if use_dense else "matrix-free"
    seconds: dict[str, float] = {}
    products: dict[str, int] = {}
    summary: dict = {"mode": settings.spectrum if hessian is not None else "lanczos", "n_params": n, "top_k": top_k}

    # The operator for the stochastic estimators: the dense matrix when there is one
    # (exact and fast), otherwise Hessian-vector products.
    hvp = HessianVectorProduct(loss, theta)
    operator = hessian.matrix if hessian is not None else hvp
    summary["estimator_operator"] = "dense matrix" if hessian is not None else "hessian-vector products"

    # --- eigenpairs ---------------------------------------------------------------------------
    start = time.perf_counter()
    failures = []
    if use_dense:
        spectrum = dense_spectrum(
            hessian.matrix, top_k, BOTTOM_K, settings.memory_budget_gib, dtype=settings.dtype, progress=emit
        )
        eigenvalues = spectrum.eigenvalues
        top_values, top_vectors = spectrum.top_eigenvalues, spectrum.top_eigenvectors
        bottom_values, bottom_vectors = spectrum.bottom_eigenvalues, spectrum.bottom_eigenvectors
        summary["statistics"] = spectrum.statistics.to_dict()
        if getattr(hessian, "pde", None) is not None and getattr(hessian, "boundary", None) is not None:
            terms = term_statistics(
                hessian.pde, hessian.boundary, settings.memory_budget_gib, dtype=settings.dtype, progress=emit
            )
            summary["term_statistics"] = {name: stats.to_dict() for name, stats in terms.items()}
        summary["top"] = _pairs_entry(top_values, spectrum.top_residuals, "eigh", converged=True)
        summary["most_negative"] = _pairs_entry(bottom_values, spectrum.bottom_residuals, "eigh", converged=True)
        summary["eigenvalues_file"] = {"complete": True, "count": int(eigenvalues.size), "order": "ascending"}
        products["eigenpairs"] = 0
    else:
        emit(f"[spectrum] top {top_k} eigenpairs by Lanczos on Hessian-vector products (P = {n})")
        top = lanczos_eigenpairs(
            hvp, top_k, "LA", tol=LANCZOS_TOL, max_products=LANCZOS_MAX_PRODUCTS["LA"], seed=settings.seed,
            memory_budget_gib=settings.memory_budget_gib, progress=emit,
        )
        emit(f"[spectrum] top {top_k}: {top.n_products} products, max residual {top.max_residual:.1e}, {top.seconds:.1f} s")
        emit("[spectrum] most negative eigenpair by Lanczos (which='SA')")
        bottom = lanczos_eigenpairs(
            hvp, BOTTOM_K, "SA", tol=LANCZOS_TOL, max_products=LANCZOS_MAX_PRODUCTS["SA"], seed=settings.seed + 1,
            memory_budget_gib=settings.memory_budget_gib, progress=emit,
        )
        emit(f"[spectrum] most negative: {bottom.n_products} products, {bottom.seconds:.1f} s")
        top_values, top_vectors = top.eigenvalues, top.eigenvectors
        bottom_values, bottom_vectors = bottom.eigenvalues, bottom.eigenvectors
        summary["statistics"] = None
        for name, result in (("top", top), ("most_negative", bottom)):
            summary[name] = _pairs_entry(
                result.eigenvalues,
                result.residuals,
                "lanczos",
                converged=result.converged,
                message=result.message,
                n_products=result.n_products,
                ncv=result.ncv,
                tol=result.tol,
                residual_bound=RESIDUAL_BOUND,
                within_residual_bound=bool(result.eigenvalues.size and result.max_residual < RESIDUAL_BOUND),
            )
            if result.converged:
                continue
            if name == "top":
                failures.append(result.message)
            else:
                # The most negative pair is a diagnostic: flagged in spectrum.json, not fatal.
                emit(f"[spectrum] warning: {result.message}")
        eigenvalues = np.unique(np.concatenate([bottom_values, top_values]))
        summary["eigenvalues_file"] = {"complete": False, "count": int(eigenvalues.size), "order": "ascending"}
        products["eigenpairs"] = top.n_products + bottom.n_products
    seconds["eigenpairs"] = time.perf_counter() - start
    write_npy_atomic(out / "eigenvalues.npy", np.sort(eigenvalues))

    # --- trace and density --------------------------------------------------------------------
    start = time.perf_counter()
    emit(f"[spectrum] Hutchinson trace with {HUTCHINSON_PROBES[mode]} probes")
    trace = hutchinson_trace(operator, HUTCHINSON_PROBES[mode], seed=settings.seed, block_size=HUTCHINSON_BLOCK)
    summary["hutchinson"] = trace.to_dict()
    if use_dense:
        summary["hutchinson"]["exact_trace"] = summary["statistics"]["trace"]
    products["hutchinson"] = trace.n_probes
    seconds["hutchinson"] = time.perf_counter() - start

    start = time.perf_counter()
    runs, steps = SLQ_RUNS[mode], min(SLQ_STEPS[mode], n)
    emit(f"[spectrum] spectral density by SLQ: {runs} runs of {steps} Lanczos steps")
    density = slq_density(operator, runs, steps, seed=settings.seed, memory_budget_gib=settings.memory_budget_gib)
    summary["density"] = density.to_dict()
    products["slq"] = density.n_products
    seconds["slq"] = time.perf_counter() - start

    # --- landscape ----------------------------------------------------------------------------
    start = time.perf_counter()
    directions = np.concatenate([top_vectors, bottom_vectors[:, :1]], axis=1)
    labels = [f"top {i + 1}" for i in range(top_vectors.shape[1])] + ["most negative"] * min(1, bottom_vectors.shape[1])
    slice_eigenvalues = np.concatenate([top_values, bottom_values[:1]])
    source = "eigh" if use_dense else "lanczos"
    term_products = (HessianVectorProduct(loss, theta, term="pde"), HessianVectorProduct(loss, theta, term="boundary"))
    slices = None
    if directions.shape[1]:
        emit(f"[landscape] 1D slices along {directions.shape[1]} eigenvectors, {settings.landscape_points} points each")
        slices = line_slices(
            loss, theta, directions, settings.landscape_range, settings.landscape_points, labels, slice_eigenvalues,
            direction_kind="eigenvector", direction_source=source, memory_budget_gib=settings.memory_budget_gib,
            progress=emit, term_products=term_products,
        )
    random_seed = settings.seed + SEED_OFFSET_RANDOM_DIRECTIONS
    randoms = np.stack(
        [random_direction(loss.layout, theta, random_seed + i) for i in range(RANDOM_DIRECTIONS)], axis=1
    )
    emit(f"[landscape] 1D slices along {RANDOM_DIRECTIONS} random per-neuron-normalised directions")
    random_slices = line_slices(
        loss, theta, randoms, settings.landscape_range, settings.landscape_points,
        [f"random {i + 1}" for i in range(RANDOM_DIRECTIONS)], direction_kind="random", direction_seed=random_seed,
        include_biases=True, memory_budget_gib=settings.memory_budget_gib, progress=emit, term_products=term_products,
    )
    arrays = {}
    for prefix, result in (("slice", slices), ("random_slice", random_slices)):
        if result is None:
            continue
        arrays.update({
            f"{prefix}_alphas": result.alphas,
            f"{prefix}_labels": np.array(result.labels),
            f"{prefix}_total": result.total,
            f"{prefix}_pde": result.pde,
            f"{prefix}_boundary": result.boundary,
            f"{prefix}_quadratic_total": result.quadratic_total,
            f"{prefix}_quadratic_pde": result.quadratic_pde,
            f"{prefix}_quadratic_boundary": result.quadratic_boundary,
            f"{prefix}_curvatures": result.curvatures,
            f"{prefix}_gradient_projections": result.gradient_projections,
            f"{prefix}_parameters": np.array(json.dumps(result.parameters, sort_keys=True)),
            f"{prefix}_cache_key": np.array(result.cache_key),
        })
    arrays["loss_at_theta"] = random_slices.loss_at_theta
    arrays["slice_eigenvalues"] = slice_eigenvalues
    products["landscape"] = random_slices.n_products + (slices.n_products if slices is not None else 0)

    if top_vectors.shape[1] >= 2:
        points = settings.landscape_points
        emit(f"[landscape] 2D surface over the top two eigenvectors, {points} × {points} points")
        plane = surface(
            loss, theta, top_vectors[:, 0], top_vectors[:, 1], settings.landscape_range, points,
            direction_source=source, memory_budget_gib=settings.memory_budget_gib, progress=emit,
        )
        arrays.update({
            "surface_alphas": plane.alphas,
            "surface_betas": plane.betas,
            "surface_total": plane.total,
            "surface_pde": plane.pde,
            "surface_boundary": plane.boundary,
            "surface_labels": np.array(plane.labels),
            "surface_parameters": np.array(json.dumps(plane.parameters, sort_keys=True)),
            "surface_cache_key": np.array(plane.cache_key),
        })
    write_npz_atomic(out / "landscape.npz", **arrays)
    seconds["landscape"] = time.perf_counter() - start

    products["total"] = sum(products.values())
    summary["products"] = products
    summary["seconds"] = seconds
    write_atomic(out / "spectrum.json", json.dumps(summary, indent=2) + "\n")
    emit(f"[spectrum] wrote eigenvalues.npy, spectrum.json and landscape.npz ({products['total']} Hessian-vector products)")
    if failures:
        raise RuntimeError("; ".join(failures) + "; spectrum.json records the unconverged pairs")
    return summary
