"""Dense Hessians of the PINN loss, by several methods, with their PDE and boundary parts.

Public API
----------
``compute_hessian(loss, theta, method="forward-over-reverse", memory_budget_gib=2.0,
split_terms=True, progress=None, force=False) -> HessianResult``
    The P × P Hessian of ``loss`` (a :class:`~hessian_core.loss.PoissonLoss`) at θ.
    ``progress(done, total)`` is called as Hessian columns are filled.
``HessianResult``
    ``.matrix`` (P × P float64, the total, exactly symmetric), ``.pde`` and ``.boundary``
    (P × P float64, or None when ``split_terms=False``), ``.record`` (a
    :class:`HessianRecord`).
``HessianRecord``
    How the matrix was computed; ``.to_dict()`` gives method, dtype, block_size, seconds,
    n_products, asymmetry (max|H − Hᵀ| / max|H| before symmetrisation), whether the matrix
    is an approximation, and the parameter layout.
``gauss_newton_matrix(loss, theta, memory_budget_gib=2.0) -> GaussNewtonResult``
    (in :mod:`hessian_core.gauss_newton`) the total, PDE and boundary Gauss-Newton matrices,
    so that H − GN, the residual-curvature term, can be shown.
``hessian_core.hessian(loss_fn, variables, method="forward-over-reverse") -> GenericHessian``
    (in :mod:`hessian_core.generic_hessian`) the Hessian of any scalar ``loss_fn()`` of a list
    of ``tf.Variable``\\ s, such as a Keras model's ``trainable_variables``, in the order of
    ``variables``.
``MemoryBudgetError``
    (in :mod:`hessian_core.memory`) raised before anything large is allocated when the
    dense results cannot fit in the budget.

Methods: ``forward-over-reverse`` (default), ``reverse-over-reverse``, ``jacobian-pfor``,
``tf-hessians`` and ``gauss-newton`` (an approximation, labelled as such). ``matrix-free``
has no dense matrix and is rejected here; use :class:`hessian_core.hvp.HessianVectorProduct`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import tensorflow as tf

from .checks import (
    NonFiniteError,
    check_finite_theta,
    describe_parameter,
    first_non_finite_row,
    overflow_advice,
    with_parameter,
)
from .gauss_newton import gauss_newton_bytes, gauss_newton_matrix
from .generic_hessian import (
    VariableHessianColumns,
    check_reverse_over_reverse_size,
    fill_blocks,
    symmetrize,
)
from .loss import PoissonLoss
from .memory import (
    STRUCTURED_MAX_BLOCK_SIZE,
    MemoryBudgetError,
    autodiff_block_bytes,
    budget_bytes,
    dense_matrix_bytes,
    format_bytes,
    plan_blocks,
    structured_block_bytes,
)
from .settings import HESSIAN_METHODS
from .structured_hessian import StructuredPinnHessian

logger = logging.getLogger(__name__)

DENSE_METHODS = tuple(m for m in HESSIAN_METHODS if m != "matrix-free")

# XLA compilation of the structured blocks. Both settings give the same matrix; see
# docs/benchmarks.md for the timings behind the default.
STRUCTURED_JIT_COMPILE = False

Progress = Callable[[int, int], None]


@dataclass
class HessianRecord:
    """Provenance of a dense Hessian, for ``hessian.json`` and the app.

    Attributes
    ----------
    method : str
    dtype : str
        Floating-point type the derivatives were computed in; the matrices are float64.
    n_params : int
    block_size : int
        Hessian columns per compiled call (1 for the row-by-row methods).
    chunk_points : int or None
        Collocation points of each kind per chunk, or None when all points go at once.
    seconds : float
        Wall time of the computation, symmetrisation included.
    n_products : int
        Hessian-vector products (columns or rows) computed, summed over the terms.
    asymmetry : float
        max|H − Hᵀ| / max|H| of the total, measured before symmetrisation, over
        ``asymmetry_scope``.
    asymmetry_scope : str
        Which entries were computed twice and compared.
    approximation : bool
        True for Gauss-Newton, which is not the Hessian.
    memory_estimate_bytes, memory_budget_bytes : int
    layout : dict
        Layer widths and parameter blocks (``NetworkLayout.to_dict``).
    note : str
    """

    method: str
    dtype: str
    n_params: int
    block_size: int
    chunk_points: int | None
    seconds: float
    n_products: int
    asymmetry: float
    asymmetry_scope: str
    approximation: bool
    memory_estimate_bytes: int
    memory_budget_bytes: int
    layout: dict = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HessianResult:
    """A dense Hessian and, when requested, its PDE and boundary parts.

    Attributes
    ----------
    matrix : ndarray, shape (P, P), float64
        Hessian of the total loss (the Gauss-Newton matrix for method ``gauss-newton``),
        exactly symmetric.
    pde, boundary : ndarray, shape (P, P), float64, or None
        The same for the weighted PDE and boundary terms; ``pde + boundary`` equals
        ``matrix`` up to rounding. None when ``split_terms=False``.
    record : HessianRecord
    """

    matrix: np.ndarray
    pde: np.ndarray | None
    boundary: np.ndarray | None
    record: HessianRecord


def compute_hessian(
    loss: PoissonLoss,
    theta,
    method: str = "forward-over-reverse",
    memory_budget_gib: float = 2.0,
    split_terms: bool = True,
    progress: Progress | None = None,
    force: bool = False,
) -> HessianResult:
    """Compute the dense Hessian ∇²L(θ) of the PINN loss, and of its two terms.

    .. math:: H = \\nabla^2_\\theta L = \\nabla^2_\\theta L_{pde} + \\nabla^2_\\theta L_{bc}

    Parameters
    ----------
    loss : PoissonLoss
    theta : array_like, shape (P,)
        Parameters, converted to ``loss.dtype``; the derivatives are computed in that dtype.
    method : str
        One of ``DENSE_METHODS``:

        ``forward-over-reverse``
            Hand-written second-order adjoint, layer by layer (see
            :mod:`hessian_core.structured_hessian`): P columns, each costing less than one
            gradient of the loss because it starts at its own layer and stops there.
        ``reverse-over-reverse``
            One eager reverse sweep per gradient entry; rejected above 1,000 parameters
            unless ``force=True``.
        ``jacobian-pfor``
            pfor Jacobian of k gradient entries at a time.
        ``tf-hessians``
            ``tf.hessians`` of the flat θ inside ``tf.function`` (a compiled loop of P
            reverse sweeps).
        ``gauss-newton``
            The Gauss-Newton matrix from the residual Jacobians, an approximation.
    memory_budget_gib : float
        Budget for the dense results plus one block of working tensors; it sets the
        block size and, if needed, the point chunk.
    split_terms : bool
        Also return the PDE and boundary parts. The tape-based methods then run twice,
        once per term; ``forward-over-reverse`` and ``gauss-newton`` get both at no extra cost.
    progress : callable, optional
        ``progress(done, total)`` as columns (or rows) are filled, with total = P.
    force : bool
        Allow reverse-over-reverse above 1,000 parameters.

    Returns
    -------
    HessianResult

    Raises
    ------
    MemoryBudgetError
        Before allocating, when the dense results (8·P² bytes each, three with
        ``split_terms``) plus one block of the method do not fit in the budget.
    NonFiniteError
        Before starting, when θ (in ``loss.dtype``) contains NaN or ±inf. The message
        names the first such index and its parameter. After computing, when a matrix
        contains NaN or ±inf. The message then names the first such column, its parameter,
        the term and the block of columns it was computed in.
    ValueError
        For an unknown method, ``matrix-free``, a θ of the wrong shape, or a forbidden
        reverse-over-reverse.
    """
    if method == "matrix-free":
        raise ValueError(
            "method 'matrix-free' has no dense Hessian; use hessian_core.hvp.HessianVectorProduct for "
            f"products, or one of {', '.join(DENSE_METHODS)} for the matrix"
        )
    if method not in DENSE_METHODS:
        raise ValueError(f"method must be one of {', '.join(DENSE_METHODS)}, got {method!r}")
    theta = np.asarray(theta)
    if theta.shape != (loss.n_params,):
        raise ValueError(
            f"θ must have shape ({loss.n_params},) for layer widths {list(loss.layout.widths)}, got {theta.shape}"
        )
    # Convert first, so that an entry that overflows the network's dtype counts as infinite.
    with np.errstate(over="ignore"):
        theta = theta.astype(loss.dtype.as_numpy_dtype)
    check_finite_theta(theta, loss.layout, f"in {loss.dtype.name}, before the {method} Hessian")
    budget = budget_bytes(memory_budget_gib)
    n_params = loss.n_params
    dense = dense_matrix_bytes(n_params, 3 if split_terms else 1)
    what = f"the {method} Hessian of {n_params:,} parameters ({'three' if split_terms else 'one'} P × P float64 matrices)"
    report = progress if progress is not None else _log_progress(method)

    if method == "reverse-over-reverse":
        check_reverse_over_reverse_size(n_params, force)

    start = time.perf_counter()
    if method == "forward-over-reverse":
        result = _structured_hessian(loss, theta, what, dense, budget, split_terms, report)
    elif method == "gauss-newton":
        result = _gauss_newton(loss, theta, memory_budget_gib, split_terms, report)
    elif method == "tf-hessians":
        result = _tf_hessians(loss, theta, what, dense, budget, split_terms, report)
    else:
        result = _tape_hessian(loss, theta, method, what, dense, budget, split_terms, report)
    # The parts were checked as they were assembled; their sum can still overflow.
    _reject_non_finite(result.matrix, "total loss", loss, method)
    result.record.seconds = time.perf_counter() - start
    result.record.layout = loss.layout.to_dict()
    logger.info(
        "%s Hessian of %d parameters in %.1f s, asymmetry %.2e before symmetrisation",
        method, n_params, result.record.seconds, result.record.asymmetry,
    )
    return result


def _reject_non_finite(
    matrix: np.ndarray, term: str, loss: PoissonLoss, method: str, computed_in: Callable[[int], str] | None = None
) -> None:
    """Raise ``NonFiniteError`` if ``matrix`` contains NaN or ±inf, naming its first such row.

    Row c of every matrix checked here contains Hessian column c as it was computed (the
    Hessian is symmetric), so the row names the column whose computation failed.
    ``computed_in(c)`` describes the compiled call that row c came from. Costs one
    ``np.isfinite`` pass, with a P × P boolean temporary.
    """
    row = first_non_finite_row(matrix)
    if row is None:
        return
    values = matrix[row]
    value = values[~np.isfinite(values)][0]
    parameter = describe_parameter(loss.layout, row)
    where = with_parameter(f"in column {row}", parameter) + f" of the {term}"
    if computed_in is not None:
        where += f", computed {computed_in(row)}"
    raise NonFiniteError(
        f"The {method} Hessian", value, where, overflow_advice(loss.dtype.name), index=row, parameter=parameter
    )


def _column_block(method: str, column: int, block_size: int, n_params: int) -> str:
    """Describe the compiled call that computed ``column`` with a tape-based method."""
    if method == "tf-hessians":
        return "in the single tf.hessians call for all columns"
    if block_size <= 1:
        return "by its own reverse sweep"
    start = column // block_size * block_size
    return f"in the block of columns {start}–{min(start + block_size, n_params) - 1}"


def _log_progress(method: str) -> Progress:
    """Log progress at most every 10% of the columns."""
    last = [-1]

    def report(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth > last[0]:
            last[0] = tenth
            logger.info("%s Hessian: %d of %d columns", method, done, total)

    return report


def _structured_plan(loss: PoissonLoss, what: str, dense: int, budget: int):
    widths = loss.layout.widths
    n_interior, n_boundary = int(loss.interior.shape[0]), int(loss.boundary.shape[0])
    itemsize = loss.dtype.size

    def block_bytes(k: int, chunk: int) -> int:
        return structured_block_bytes(widths, min(chunk, n_interior), min(chunk, n_boundary), k, itemsize)

    widest_layer = max((widths[i] + 1) * widths[i + 1] for i in range(len(widths) - 1))
    return plan_blocks(
        what, block_bytes, widest_layer, max(n_interior, n_boundary), dense, budget, max_block_size=STRUCTURED_MAX_BLOCK_SIZE
    )


def _structured_hessian(loss, theta, what, dense, budget, split_terms, report) -> HessianResult:
    plan = _structured_plan(loss, what, dense, budget)
    n_interior, n_boundary = int(loss.interior.shape[0]), int(loss.boundary.shape[0])
    chunk = plan.chunk_points if plan.chunk_points < max(n_interior, n_boundary) else None
    engine = StructuredPinnHessian(loss, theta, chunk_points=chunk, jit_compile=STRUCTURED_JIT_COMPILE)

    n_params = loss.n_params
    layout = loss.layout
    pde = np.zeros((n_params, n_params))
    boundary = np.zeros((n_params, n_params)) if split_terms else None
    done = 0
    report(0, n_params)
    for layer in range(1, layout.n_layers + 1):
        layer_slice = layout.layer_slice(layer)
        n_columns = layer_slice.stop - layer_slice.start
        for start in range(0, n_columns, plan.block_size):
            local = np.arange(start, min(start + plan.block_size, n_columns))
            # Pad the last block to the layer's block size so each layer is traced once.
            width = min(plan.block_size, n_columns)
            rows_pde, rows_boundary = engine.block_rows(layer, np.pad(local, (0, width - len(local)), mode="edge"))
            rows_pde, rows_boundary = rows_pde[: len(local)], rows_boundary[: len(local)]
            # Column c of H restricted to rows >= offset, stored as row c (H is symmetric).
            columns = layer_slice.start + local
            if split_terms:
                pde[columns, layer_slice.start :] = rows_pde
                boundary[columns, layer_slice.start :] = rows_boundary
            else:
                pde[columns, layer_slice.start :] = rows_pde + rows_boundary
            done += len(local)
            report(done, n_params)

    def computed_in(column: int) -> str:
        block = layout.block_of(column)
        layer_slice = layout.layer_slice(block.layer)
        start = layer_slice.start + (column - layer_slice.start) // plan.block_size * plan.block_size
        stop = min(start + plan.block_size, layer_slice.stop) - 1
        return f"in the block of columns {start}–{stop} of layer {block.layer}"

    # Before mirroring, row c holds only what column c's own block computed.
    named_parts = {"PDE term": pde, "boundary term": boundary} if split_terms else {"total loss": pde}
    for term, matrix in named_parts.items():
        _reject_non_finite(matrix, term, loss, "forward-over-reverse", computed_in)

    # Rows of lower layers were never computed: mirror them from the blocks above.
    parts = [pde, boundary] if split_terms else [pde]
    for matrix in parts:
        for layer in range(1, layout.n_layers + 1):
            layer_slice = layout.layer_slice(layer)
            matrix[layer_slice.stop :, layer_slice] = matrix[layer_slice, layer_slice.stop :].T

    if split_terms:
        total = pde + boundary
    else:
        total, pde = pde, None
    # Only the diagonal layer blocks were computed twice (both triangles), so only they
    # carry a measurable asymmetry; symmetrise each matrix block by block there.
    asymmetry = _diagonal_block_asymmetry(total, layout)
    for matrix in [total] + ([pde, boundary] if split_terms else []):
        for layer in range(1, layout.n_layers + 1):
            layer_slice = layout.layer_slice(layer)
            block = matrix[layer_slice, layer_slice]
            symmetrize(block)

    record = HessianRecord(
        method="forward-over-reverse",
        dtype=loss.dtype.name,
        n_params=n_params,
        block_size=plan.block_size,
        chunk_points=chunk,
        seconds=0.0,
        n_products=n_params,
        asymmetry=asymmetry,
        asymmetry_scope="diagonal layer blocks (the off-diagonal blocks are computed once and mirrored)",
        approximation=False,
        memory_estimate_bytes=plan.total_bytes,
        memory_budget_bytes=budget,
        note="structured forward-over-reverse: columns of layer l need only rows of layers >= l",
    )
    return HessianResult(total, pde, boundary, record)


def _diagonal_block_asymmetry(matrix: np.ndarray, layout) -> float:
    largest = float(np.abs(matrix).max())
    if largest == 0:
        return 0.0
    asymmetry = 0.0
    for layer in range(1, layout.n_layers + 1):
        layer_slice = layout.layer_slice(layer)
        block = matrix[layer_slice, layer_slice]
        asymmetry = max(asymmetry, float(np.abs(block - block.T).max()))
    return asymmetry / largest


def _term_functions(loss: PoissonLoss, split_terms: bool):
    """Return [(name, loss term of θ)] for the Hessians a tape-based method must compute."""
    if split_terms:
        return [("pde", loss.pde_loss), ("boundary", loss.boundary_loss)]
    return [("total", loss)]


def _tape_hessian(loss, theta, method, what, dense, budget, split_terms, report) -> HessianResult:
    widths = loss.layout.widths
    n_interior, n_boundary = int(loss.interior.shape[0]), int(loss.boundary.shape[0])
    itemsize = loss.dtype.size

    def block_bytes(k: int, chunk: int) -> int:
        return autodiff_block_bytes(widths, n_interior, n_boundary, k, itemsize)

    if method == "reverse-over-reverse":
        plan = plan_blocks(what, block_bytes, 1, n_interior, dense, budget, chunkable=False)
    else:
        plan = plan_blocks(what, block_bytes, loss.n_params, n_interior, dense, budget, chunkable=False)

    variable = tf.Variable(theta, dtype=loss.dtype)
    n_params = loss.n_params
    terms = _term_functions(loss, split_terms)
    matrices = {}
    for index, (name, function) in enumerate(terms):
        columns = VariableHessianColumns(lambda function=function: function(variable), [variable])

        def term_progress(done: int, total: int, index=index) -> None:
            report(index * n_params + done, len(terms) * n_params)

        if method == "reverse-over-reverse":
            matrices[name] = columns.reverse_over_reverse(term_progress)
        else:
            matrices[name] = fill_blocks(n_params, plan.block_size, columns.jacobian_rows, term_progress)
    return _assemble(loss, matrices, method, plan.block_size if method != "reverse-over-reverse" else 1, plan.total_bytes, budget, len(terms))


def _tf_hessians(loss, theta, what, dense, budget, split_terms, report) -> HessianResult:
    widths = loss.layout.widths
    n_interior, n_boundary = int(loss.interior.shape[0]), int(loss.boundary.shape[0])

    def block_bytes(k: int, chunk: int) -> int:
        return autodiff_block_bytes(widths, n_interior, n_boundary, k, loss.dtype.size)

    plan = plan_blocks(what, block_bytes, 1, n_interior, dense, budget, chunkable=False)
    theta_tensor = tf.constant(theta, dtype=loss.dtype)
    terms = _term_functions(loss, split_terms)
    matrices = {}
    report(0, loss.n_params)
    for index, (name, function) in enumerate(terms):
        # tf.hessians works only in graph mode, and only on one flat tensor gives the
        # cross-layer blocks.
        compiled = tf.function(lambda t, function=function: tf.hessians(function(t), t)[0])
        matrices[name] = compiled(theta_tensor).numpy().astype(np.float64)
    report(loss.n_params, loss.n_params)
    return _assemble(loss, matrices, "tf-hessians", 1, plan.total_bytes, budget, len(terms))


def _assemble(loss, matrices, method, block_size, estimate, budget, n_terms) -> HessianResult:
    """Check the term matrices, sum them, measure the total's asymmetry, then symmetrise everything."""
    # Before symmetrisation, row c holds only the gradient entry c's own computation.
    term_names = {"total": "total loss", "pde": "PDE term", "boundary": "boundary term"}
    for name, matrix in matrices.items():
        _reject_non_finite(
            matrix, term_names[name], loss, method, lambda column: _column_block(method, column, block_size, loss.n_params)
        )
    if "total" in matrices:
        total, pde, boundary = matrices["total"], None, None
    else:
        pde, boundary = matrices["pde"], matrices["boundary"]
        total = pde + boundary
    asymmetry = symmetrize(total)
    for part in (pde, boundary):
        if part is not None:
            symmetrize(part)
    record = HessianRecord(
        method=method,
        dtype=loss.dtype.name,
        n_params=loss.n_params,
        block_size=block_size,
        chunk_points=None,
        seconds=0.0,
        n_products=n_terms * loss.n_params,
        asymmetry=asymmetry,
        asymmetry_scope="all entries",
        approximation=False,
        memory_estimate_bytes=estimate,
        memory_budget_bytes=budget,
    )
    return HessianResult(total, pde, boundary, record)


def _gauss_newton(loss, theta, memory_budget_gib, split_terms, report) -> HessianResult:
    result = gauss_newton_matrix(loss, theta, memory_budget_gib, progress=report)
    for term, matrix in (("PDE term", result.pde), ("boundary term", result.boundary)):
        if matrix is not None:
            _reject_non_finite(matrix, term, loss, "gauss-newton", lambda column: f"from column {column} of the residual Jacobian")
    record = HessianRecord(
        method="gauss-newton",
        dtype=loss.dtype.name,
        n_params=loss.n_params,
        block_size=0,
        chunk_points=None,
        seconds=result.seconds,
        n_products=result.n_jacobian_rows,
        asymmetry=result.asymmetry,
        asymmetry_scope="the PDE and boundary parts JᵀJ, from one matrix product each",
        approximation=True,
        memory_estimate_bytes=gauss_newton_bytes(loss, split_terms),
        memory_budget_bytes=budget_bytes(memory_budget_gib),
        note="Gauss-Newton approximation 2·JᵀJ/N, not the Hessian; H − G is the residual-curvature term",
    )
    if split_terms:
        return HessianResult(result.matrix, result.pde, result.boundary, record)
    return HessianResult(result.matrix, None, None, record)
