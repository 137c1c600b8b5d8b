"""Matrix-free eigenpairs by Lanczos: extreme eigenpairs and the Lanczos tridiagonal matrix.

Public API
----------
lanczos_eigenpairs(operator, k, which="LA", tol=1e-10, ncv=None, max_products=None, seed=0, ...) -> LanczosResult
    The k largest algebraic (``which="LA"``) or smallest algebraic (``which="SA"``,
    most negative first) eigenpairs through ``scipy.sparse.linalg.eigsh`` (implicitly
    restarted Lanczos, ARPACK), with the residual of every pair, the number of
    Hessian-vector products spent and a convergence flag.
lanczos_tridiagonal(operator, starts, steps, ...) -> LanczosTridiagonal
    ``steps`` Lanczos steps with full reorthogonalisation from one or several start
    vectors at once, returning each run's tridiagonal matrix. Stochastic Lanczos
    quadrature (:mod:`hessian_core.density`) is built on it.
as_operator(operator, purpose="") -> CountingOperator
    Wrap a ``HessianVectorProduct``, a ``LinearOperator`` or a dense array so that every
    product is counted and checked: a NaN or ±inf raises ``NonFiniteError`` naming the
    product number.

Operators are symmetric and applied in float64. A ``HessianVectorProduct`` is applied
through its ``matmat``, so a block of vectors costs one batched call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse.linalg

from .checks import NonFiniteError, check_finite_eigenpairs, describe_parameter, overflow_advice, with_parameter
from .memory import MemoryBudgetError, budget_bytes

logger = logging.getLogger(__name__)

WHICH = ("LA", "SA")


class CountingOperator:
    """A symmetric operator that counts and checks its products.

    ``n_products`` grows by k per (P, k) block. A block whose input or product contains
    NaN or ±inf raises ``NonFiniteError`` naming the 1-based number of the first bad
    product, so an estimator stops at the product that failed instead of passing NaN to
    ARPACK or into its averages. The check is one ``np.isfinite`` pass over P · k values.

    Parameters
    ----------
    operator : HessianVectorProduct, LinearOperator, ndarray or sparse matrix
        Anything with ``matmat`` and ``shape``, or anything
        ``scipy.sparse.linalg.aslinearoperator`` accepts. When it has a ``loss`` (a
        ``HessianVectorProduct``), error messages name the parameter of the bad row.
    purpose : str
        What the products are for, such as ``"Lanczos (LA)"``, quoted in error messages.
        A wrapped ``CountingOperator`` keeps its own purpose when it has one, so an
        estimator built on another names itself.
    """

    def __init__(self, operator, purpose: str = "") -> None:
        if isinstance(operator, CountingOperator):
            purpose = operator.purpose or purpose
            operator = operator.operator
        if not hasattr(operator, "matmat"):
            operator = scipy.sparse.linalg.aslinearoperator(operator)
        shape = tuple(operator.shape)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"the operator must be square, got shape {shape}")
        self.operator = operator
        self.shape = shape
        self.n_products = 0
        self.purpose = purpose
        loss = getattr(operator, "loss", None)
        self._layout = getattr(loss, "layout", None)
        self._dtype = loss.dtype.name if loss is not None else None

    @property
    def dimension(self) -> int:
        return self.shape[0]

    def matmat(self, vectors: np.ndarray) -> np.ndarray:
        """Return A·V for V of shape (P, k) as float64 of shape (P, k)."""
        vectors = np.asarray(vectors, dtype=np.float64)
        if vectors.ndim == 1:
            return self.matvec(vectors)
        first_product = self.n_products + 1
        self._check_finite(vectors, first_product, is_input=True)
        product = np.asarray(self.operator.matmat(vectors), dtype=np.float64).reshape(vectors.shape)
        self.n_products += vectors.shape[1]
        self._check_finite(product, first_product, is_input=False)
        return product

    def matvec(self, vector: np.ndarray) -> np.ndarray:
        """Return A·v for v of shape (P,) or (P, 1), in the same shape."""
        vector = np.asarray(vector, dtype=np.float64)
        return self.matmat(vector.reshape(-1, 1)).reshape(vector.shape)

    def _check_finite(self, block: np.ndarray, first_product: int, is_input: bool) -> None:
        """Raise ``NonFiniteError`` if column j of ``block``, product ``first_product + j``, is not finite."""
        finite = np.isfinite(block)
        if finite.all():
            return
        # Search column by column, so the first bad product is named, then its first bad row.
        columns, rows = np.nonzero(~finite.T)
        column, row = int(columns[0]), int(rows[0])
        number = first_product + column
        name = f"{'Hessian-vector' if self._layout is not None else 'operator'} product {number}"
        if self.purpose:
            name += f" of {self.purpose}"
        parameter = describe_parameter(self._layout, row)
        if is_input:
            quantity = f"The input vector of {name}"
            advice = (
                "Every earlier product was finite, so the caller or the solver's own arithmetic produced it; "
                "report it with the settings used"
            )
        else:
            quantity = name[0].upper() + name[1:]
            advice = overflow_advice(self._dtype) if self._dtype else "Check the operator's matrix for NaN or overflow"
        raise NonFiniteError(
            quantity, block[row, column], with_parameter(f"in row {row}", parameter), advice,
            index=row, parameter=parameter, product=number,
        )

    def as_linear_operator(self) -> scipy.sparse.linalg.LinearOperator:
        n = self.dimension
        return scipy.sparse.linalg.LinearOperator(
            (n, n), matvec=self.matvec, matmat=self.matmat, rmatvec=self.matvec, rmatmat=self.matmat, dtype=np.float64
        )


def as_operator(operator, purpose: str = "") -> CountingOperator:
    """Return ``operator`` wrapped in a fresh :class:`CountingOperator` (product count zero)."""
    return CountingOperator(operator, purpose)


@dataclass
class LanczosResult:
    """Extreme eigenpairs from Lanczos, with how well they converged.

    Attributes
    ----------
    eigenvalues : ndarray, shape (m,)
        Descending for ``which="LA"`` (largest first), ascending for ``which="SA"``
        (most negative first). m = k when converged; when not, m is the number of
        pairs ARPACK had converged, possibly 0.
    eigenvectors : ndarray, shape (P, m)
        Unit eigenvectors, column i for ``eigenvalues[i]``.
    residual_norms : ndarray, shape (m,)
        ‖Av − λv‖ of each pair, from one extra product per pair.
    residuals : ndarray, shape (m,)
        ‖Av − λv‖ / |λ| (the absolute norm where λ is exactly 0).
    which : str
        ``"LA"`` or ``"SA"``.
    k : int
        Number of pairs requested.
    converged : bool
        Whether ARPACK converged all k pairs within the restart budget.
    message : str
        Empty when converged, otherwise what failed and what to change.
    n_products : int
        Operator products spent, those for the residuals included.
    ncv, tol : int, float
        Lanczos basis size and ARPACK tolerance (relative accuracy of the Ritz values).
    seconds : float
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray = field(repr=False)
    residual_norms: np.ndarray
    residuals: np.ndarray
    which: str
    k: int
    converged: bool
    message: str
    n_products: int
    ncv: int
    tol: float
    seconds: float

    @property
    def max_residual(self) -> float:
        return float(np.max(self.residuals)) if self.residuals.size else float("nan")

    def to_dict(self) -> dict:
        """Return everything but the eigenvectors as JSON-ready values."""
        return {
            "which": self.which,
            "k": self.k,
            "converged": self.converged,
            "message": self.message,
            "eigenvalues": self.eigenvalues.tolist(),
            "residuals": self.residuals.tolist(),
            "residual_norms": self.residual_norms.tolist(),
            "n_products": self.n_products,
            "ncv": self.ncv,
            "tol": self.tol,
            "seconds": self.seconds,
        }


def default_ncv(k: int, dimension: int) -> int:
    """Return the Lanczos basis size: max(2k + 1, k + 20), at most the dimension."""
    return min(dimension, max(2 * k + 1, k + 20))


def lanczos_eigenpairs(
    operator,
    k: int,
    which: str = "LA",
    tol: float = 1e-10,
    ncv: int | None = None,
    max_products: int | None = None,
    seed: int = 0,
    memory_budget_gib: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> LanczosResult:
    """Compute the k extreme eigenpairs of a symmetric operator by implicitly restarted Lanczos.

    ``scipy.sparse.linalg.eigsh`` runs ARPACK on a ``LinearOperator`` whose matvec is one
    product with ``operator``. ARPACK accepts a Ritz pair once its residual estimate is
    at most ``tol · |λ|``. Afterwards every returned pair's true residual ‖Av − λv‖ is
    computed with one more product per pair.

    Parameters
    ----------
    operator : HessianVectorProduct, LinearOperator or array_like, shape (P, P)
        Symmetric operator.
    k : int
        Number of eigenpairs, 1 <= k < P.
    which : {"LA", "SA"}
        Largest algebraic ("top") or smallest algebraic (most negative first).
    tol : float
        ARPACK's relative tolerance. The eigenvalue error is then about tol² · |λ|² / gap
        (Rayleigh quotient), the residual about tol · |λ|.
    ncv : int, optional
        Lanczos basis size, k < ncv <= P; defaults to :func:`default_ncv`. Memory is
        about ncv · P · 8 bytes.
    max_products : int, optional
        Restart budget in products, 20 · P by default (ARPACK's own default of 10 · P
        restarts is far more than a Hessian needs).
    seed : int
        Seed of the start vector, so a run can be repeated exactly.
    memory_budget_gib : float, optional
        If given, a basis that would not fit raises ``MemoryBudgetError`` before any product.
    progress : callable, optional
        Called about every 10 s with a one-line message giving the products spent so far.

    Returns
    -------
    LanczosResult
        ``converged`` is False and ``message`` states why when ARPACK stopped early; the
        pairs it had converged are still returned with their residuals.

    Raises
    ------
    NonFiniteError
        If a product contains NaN or ±inf (the message names the product number), or if
        ARPACK returns a non-finite eigenpair. Nothing is returned in either case.

    Examples
    --------
    >>> result = lanczos_eigenpairs(np.diag([-10.0, 3.0, 2.0, 1.0, 0.5]), k=1, which="LA")
    >>> round(float(result.eigenvalues[0]), 10), result.converged
    (3.0, True)
    """
    counting = as_operator(operator, f"Lanczos ({which})")
    n = counting.dimension
    if which not in WHICH:
        raise ValueError(f"which must be 'LA' (largest algebraic) or 'SA' (smallest algebraic), got {which!r}")
    if not 1 <= k < n:
        raise ValueError(f"k must be between 1 and P - 1 = {n - 1} for Lanczos, got {k}; use the dense spectrum for all eigenvalues")
    ncv = default_ncv(k, n) if ncv is None else int(ncv)
    if not k < ncv <= n:
        raise ValueError(f"ncv must satisfy k < ncv <= P, that is {k} < ncv <= {n}, got {ncv}")
    if tol <= 0:
        raise ValueError(f"tol must be positive, got {tol}; 1e-10 gives eigenvalues to about 1e-12 relative")
    if memory_budget_gib is not None:
        needed = (ncv + 2 * k + 4) * n * 8
        budget = budget_bytes(memory_budget_gib)
        if needed > budget:
            raise MemoryBudgetError(
                f"a Lanczos basis of {ncv} vectors of length {n}",
                needed,
                budget,
                f"lower k (now {k}) or ncv, or raise the memory budget",
            )
    max_products = 20 * n if max_products is None else int(max_products)
    # Each ARPACK restart costs about ncv - k products.
    max_restarts = max(1, max_products // max(1, ncv - k))

    rng = np.random.default_rng(seed)
    start_vector = rng.standard_normal(n)
    begin = time.perf_counter()
    last_report = [begin]

    def matvec(vector: np.ndarray) -> np.ndarray:
        product = counting.matvec(vector)
        if progress is not None and time.perf_counter() - last_report[0] > 10.0:
            last_report[0] = time.perf_counter()
            progress(f"[lanczos] {which}: {counting.n_products} products, {last_report[0] - begin:.0f} s")
        return product

    operator_for_arpack = scipy.sparse.linalg.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    converged, message = True, ""
    try:
        eigenvalues, eigenvectors = scipy.sparse.linalg.eigsh(
            operator_for_arpack, k=k, which=which, tol=tol, ncv=ncv, maxiter=max_restarts, v0=start_vector
        )
    except scipy.sparse.linalg.ArpackNoConvergence as error:
        eigenvalues, eigenvectors = error.eigenvalues, error.eigenvectors
        converged = False
        message = (
            f"Lanczos ({which}) converged {len(eigenvalues)} of {k} eigenpairs after {counting.n_products} products, "
            f"the limit of {max_restarts} ARPACK restarts set by max_products={max_products}; "
            f"raise max_products or ncv (now {ncv}), or loosen tol (now {tol:g})"
        )
        logger.warning(message)

    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    eigenvectors = np.asarray(eigenvectors, dtype=np.float64).reshape(n, -1)
    order = np.argsort(-eigenvalues if which == "LA" else eigenvalues, kind="stable")
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    check_finite_eigenpairs(
        eigenvalues, eigenvectors, f"Lanczos ({which}) eigenpair", f"after {counting.n_products} finite products",
        "ARPACK returned it from finite products; rerun with another seed or use the dense spectrum",
    )

    residual_norms = np.zeros(0)
    if eigenvalues.size:
        residual = counting.matmat(eigenvectors) - eigenvectors * eigenvalues
        residual_norms = np.linalg.norm(residual, axis=0)
    residuals = residual_norms / np.where(eigenvalues != 0, np.abs(eigenvalues), 1.0)
    seconds = time.perf_counter() - begin
    logger.info(
        "Lanczos %s: %d of %d pairs, %d products, max relative residual %s, %.1f s",
        which, eigenvalues.size, k, counting.n_products,
        f"{np.max(residuals):.2e}" if residuals.size else "none (no pair)", seconds,
    )
    return LanczosResult(
        eigenvalues=eigenvalues,
        eigenvectors=eigenvectors,
        residual_norms=residual_norms,
        residuals=residuals,
        which=which,
        k=k,
        converged=converged,
        message=message,
        n_products=counting.n_products,
        ncv=ncv,
        tol=tol,
        seconds=seconds,
    )


@dataclass
class LanczosTridiagonal:
    """The tridiagonal matrices of several Lanczos runs of equal length.

    Run r's matrix has diagonal ``alpha[r]`` (shape (steps,)) and off-diagonal
    ``beta[r]`` (shape (steps - 1,)). An off-diagonal entry of exactly 0 marks an
    invariant subspace: the run continued from a fresh random vector orthogonal to all
    earlier Lanczos vectors, so with steps = P the matrix has every eigenvalue of A,
    repeated ones included, although the first start vector only reaches the first block.

    Attributes
    ----------
    alpha : ndarray, shape (runs, steps)
    beta : ndarray, shape (runs, steps - 1)
    n_products : int
    restarts : ndarray of int, shape (runs,)
        How many times each run hit an invariant subspace and continued.
    """

    alpha: np.ndarray
    beta: np.ndarray
    n_products: int
    restarts: np.ndarray


def lanczos_tridiagonal(
    operator,
    starts: np.ndarray,
    steps: int,
    seed: int = 0,
    breakdown_tolerance: float = 1e-10,
    memory_budget_gib: float | None = None,
) -> LanczosTridiagonal:
    """Run ``steps`` Lanczos steps with full reorthogonalisation from each start vector.

    All runs advance together, so each step is one (P, runs) block product. Every new
    Lanczos vector is orthogonalised twice against all earlier vectors of its run
    (classical Gram-Schmidt, repeated), which keeps the basis orthonormal to rounding and
    the Ritz values free of spurious copies.

    Parameters
    ----------
    operator : HessianVectorProduct, LinearOperator or array_like, shape (P, P)
    starts : ndarray, shape (P,) or (P, runs)
        Start vectors; each is normalised.
    steps : int
        Lanczos steps per run, 1 <= steps <= P.
    seed : int
        Seed of the fresh vectors drawn after an invariant subspace.
    breakdown_tolerance : float
        A step whose new off-diagonal β is below this times the largest |α| or β seen
        so far counts as an invariant subspace.
    memory_budget_gib : float, optional
        If given, a basis of ``steps · runs`` vectors that would not fit raises
        ``MemoryBudgetError`` before any product.

    Cost: steps · runs products and O(steps² · P · runs) flops for the
    reorthogonalisation; memory steps · P · runs · 8 bytes for the stored basis.

    Raises ``NonFiniteError`` if a product contains NaN or ±inf; step j's block computes
    products j · runs + 1 to (j + 1) · runs, and the message names the first bad one.
    """
    counting = as_operator(operator, "the Lanczos runs")
    n = counting.dimension
    starts = np.asarray(starts, dtype=np.float64)
    if starts.ndim == 1:
        starts = starts[:, None]
    if starts.shape[0] != n:
        raise ValueError(f"start vectors must have {n} rows, got shape {starts.shape}")
    runs = starts.shape[1]
    if not 1 <= steps <= n:
        raise ValueError(f"steps must be between 1 and P = {n}, got {steps}")
    norms = np.linalg.norm(starts, axis=0)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ValueError("every start vector must be finite and non-zero")
    if memory_budget_gib is not None:
        needed = (steps + 3) * n * runs * 8
        budget = budget_bytes(memory_budget_gib)
        if needed > budget:
            raise MemoryBudgetError(
                f"the bases of {runs} Lanczos runs of {steps} steps on P = {n}", needed, budget, "use fewer runs or steps"
            )

    rng = np.random.default_rng(seed)
    basis = np.zeros((steps, n, runs))
    alpha = np.zeros((runs, steps))
    beta = np.zeros((runs, max(steps - 1, 0)))
    restarts = np.zeros(runs, dtype=int)
    scale = np.zeros(runs)
    current = starts / norms

    for j in range(steps):
        basis[j] = current
        product = counting.matmat(current)
        alpha[:, j] = np.einsum("ir,ir->r", current, product)
        scale = np.maximum(scale, np.abs(alpha[:, j]))
        if j == steps - 1:
            break

        # Full reorthogonalisation, twice: one pass of Gram-Schmidt loses orthogonality
        # when the new vector nearly lies in the span of the old ones.
        residual = product
        for _ in range(2):
            coefficients = np.einsum("jir,ir->jr", basis[: j + 1], residual)
            residual = residual - np.einsum("jir,jr->ir", basis[: j + 1], coefficients)
        new_beta = np.linalg.norm(residual, axis=0)

        for r in range(runs):
            if new_beta[r] > breakdown_tolerance * max(scale[r], 1e-300):
                beta[r, j] = new_beta[r]
                scale[r] = max(scale[r], new_beta[r])
                residual[:, r] /= new_beta[r]
                continue
            # Invariant subspace: continue from a random vector orthogonal to the basis.
            restarts[r] += 1
            beta[r, j] = 0.0
            fresh = rng.standard_normal(n)
            for _ in range(2):
                fresh -= basis[: j + 1, :, r].T @ (basis[: j + 1, :, r] @ fresh)
            residual[:, r] = fresh / np.linalg.norm(fresh)
        current = residual

    return LanczosTridiagonal(alpha=alpha, beta=beta, n_products=counting.n_products, restarts=restarts)
