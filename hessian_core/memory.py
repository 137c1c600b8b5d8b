"""Memory estimates for the dense Hessian methods, and the error raised when they cannot fit.

Every estimate is in bytes and counts only the large arrays of a step: the dense P × P
results and the working tensors of one block of Hessian-vector products. The interpreter
and TensorFlow's own baseline (about 0.6 GiB after import) are not part of a budget.
The constants below are estimates fitted to the peak resident memory of blocked runs, and
``tests/test_memory.py`` and ``tests/test_memory_estimates.py`` check them against the
peak of subprocesses.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from .settings import SettingsError

logger = logging.getLogger(__name__)

GIB = 1024**3
FLOAT64_BYTES = 8

# Working tensors of one block of the structured forward-over-reverse, counted in arrays of
# (k, streams × points, widest layer) values, divided by 4 below. Every hidden layer above a
# column's layer keeps its stream and pre-activation tangents for the reverse sweep, so the
# count grows with the number of hidden layers. The constants were fitted to peak resident
# memory at width 50, float64, 1,000 + 1,000 points: 16 columns measured 240-410 MiB against
# an estimate of 505 MiB, and 64 columns 1.49 GiB against 1.75 GiB.
STRUCTURED_ARRAYS_PER_HIDDEN_LAYER = 10
STRUCTURED_ARRAYS_FIXED = 24

# Generic blocked methods (vectorized_map over a tape, jacobian with pfor): working arrays
# per tangent, as a multiple of the activations that one gradient of the loss keeps.
AUTODIFF_ACTIVATION_COPIES = 12

# TensorFlow's own working memory beyond the import baseline while a block runs: traced
# graphs, executor and oneDNN scratch buffers. Measured at 50-150 MiB for the PINN blocks;
# reserved out of every budget.
TENSORFLOW_WORKSPACE_BYTES = 192 * 1024**2

# Largest block of Hessian columns computed in one call by the tape-based methods.
MAX_BLOCK_SIZE = 256

# Largest block of the structured forward-over-reverse. Its tangents of 16 columns
# (N × 16 × width values per stream) stay in cache: at width 50 with 1,000 + 1,000 points,
# 2 shared AMD EPYC cores measured 6.7 ms a column in float64 at k = 16 against 13.4, 16.3
# and 34.7 ms at k = 32, 64 and 128 (3.4 against 4.5, 3.5 and 8.7 ms in float32).
STRUCTURED_MAX_BLOCK_SIZE = 16


# Advice for a dense Hessian that does not fit, naming the option in the app and in the CLI.
MATRIX_FREE_ADVICE = (
    "use the matrix-free Hessian method (Hessian method 'matrix-free' in the app, "
    "--hessian-method matrix-free on the command line), which forms no dense matrix, or raise the memory budget"
)


class MemoryBudgetError(SettingsError):
    """A large step that would need more memory than its budget.

    It is a :class:`~hessian_core.settings.SettingsError` of the field
    ``memory_budget_gib``, so code that reports bad settings reports this one too.

    Attributes
    ----------
    needed_bytes : int
        Estimated bytes of the step's large arrays.
    budget_bytes : int
        The budget it was checked against.
    field : str
        Always ``"memory_budget_gib"``.
    value : float
        The budget in GiB.
    """

    def __init__(self, what: str, needed_bytes: int, budget_bytes: int, advice: str) -> None:
        message = (
            f"{what} needs about {format_bytes(needed_bytes)} ({needed_bytes:,} bytes), more than the "
            f"memory budget of {format_bytes(budget_bytes)}; {advice}"
        )
        super().__init__("memory_budget_gib", budget_bytes / GIB, message)
        self.needed_bytes = int(needed_bytes)
        self.budget_bytes = int(budget_bytes)


def format_bytes(count: float) -> str:
    """Format a byte count in GiB or MiB, for messages."""
    if count >= GIB / 4:
        return f"{count / GIB:.2f} GiB"
    return f"{count / 1024**2:.1f} MiB"


def budget_bytes(memory_budget_gib: float) -> int:
    """Convert a budget in GiB into bytes, rejecting values that are not positive and finite."""
    if not (isinstance(memory_budget_gib, (int, float)) and math.isfinite(memory_budget_gib)) or memory_budget_gib <= 0:
        raise ValueError(f"memory_budget_gib must be a positive number of GiB, got {memory_budget_gib!r}")
    return int(memory_budget_gib * GIB)


def dense_matrix_bytes(n_params: int, count: int = 1) -> int:
    """Bytes of ``count`` dense float64 matrices of shape P × P: 8·P²·count."""
    return FLOAT64_BYTES * n_params * n_params * count


def eigh_memory_bytes(n_params: int) -> int:
    """Estimate the bytes of a dense symmetric eigendecomposition of a P × P float64 matrix.

    LAPACK's ``syevd`` behind ``numpy.linalg.eigh`` works on a copy of the matrix and
    needs about 3·P² float64 values of workspace beside it, the eigenvectors included,
    so the estimate is 8·(P² + 3·P²) bytes: 0.84 GiB for P = 5,301.
    """
    return FLOAT64_BYTES * 4 * n_params * n_params


def structured_block_bytes(widths, n_interior: int, n_boundary: int, block_size: int, itemsize: int) -> int:
    """Estimate the working bytes of one block of the structured forward-over-reverse.

    Parameters
    ----------
    widths : sequence of int
        Layer widths, input and output included.
    n_interior, n_boundary : int
        Collocation points of each kind in one chunk.
    block_size : int
        Hessian columns (tangents) per block, k.
    itemsize : int
        4 for float32, 8 for float64.
    """
    hidden_layers = len(widths) - 2
    widest = max(widths[1:-1], default=1)
    arrays = STRUCTURED_ARRAYS_FIXED + STRUCTURED_ARRAYS_PER_HIDDEN_LAYER * hidden_layers
    # An interior point has four streams, a boundary point one.
    points = 4 * n_interior + n_boundary
    tangents = block_size * itemsize * widest * points * arrays / 4
    # Primal values and coefficients kept for the whole run: about 16 arrays per layer.
    primal = itemsize * widest * points * 16 * max(hidden_layers, 1)
    # The rows returned per block, and their float64 copies on the NumPy side.
    rows = block_size * sum((widths[i] + 1) * widths[i + 1] for i in range(len(widths) - 1)) * (itemsize + 16)
    return int(tangents + primal + rows)


def autodiff_block_bytes(widths, n_interior: int, n_boundary: int, block_size: int, itemsize: int) -> int:
    """Estimate the working bytes of one block of a tape-based method (vectorized_map or pfor).

    Those methods keep, per tangent, several copies of everything one gradient of the
    loss keeps: the activations of every layer for every stream of every point.
    """
    hidden = sum(widths[1:-1])
    activations = itemsize * (4 * n_interior + n_boundary) * hidden * 4
    n_params = sum((widths[i] + 1) * widths[i + 1] for i in range(len(widths) - 1))
    return int(block_size * (AUTODIFF_ACTIVATION_COPIES * activations + 3 * itemsize * n_params))


@dataclass(frozen=True)
class BlockPlan:
    """Block size and point chunk chosen for a budget, with the estimate behind them."""

    block_size: int
    chunk_points: int
    dense_bytes: int
    block_bytes: int
    budget_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.dense_bytes + self.block_bytes + TENSORFLOW_WORKSPACE_BYTES


def plan_blocks(
    what: str,
    block_bytes,
    n_columns: int,
    n_points: int,
    dense_bytes: int,
    budget: int,
    max_block_size: int = MAX_BLOCK_SIZE,
    chunkable: bool = True,
) -> BlockPlan:
    """Choose the largest block of columns, and then of points, whose estimate fits the budget.

    ``block_bytes(k, chunk_points)`` estimates one block. The dense results are checked
    first, so a matrix that cannot fit is rejected before anything is allocated. Methods
    that cannot split the collocation points pass ``chunkable=False``.

    Raises
    ------
    MemoryBudgetError
        If the dense results plus ``TENSORFLOW_WORKSPACE_BYTES``, or those plus a block of
        one column over a point chunk of 64 points, exceed the budget.
    """
    matrix_free = MATRIX_FREE_ADVICE
    if dense_bytes + TENSORFLOW_WORKSPACE_BYTES > budget:
        raise MemoryBudgetError(
            f"{what}, with {format_bytes(TENSORFLOW_WORKSPACE_BYTES)} of TensorFlow workspace,",
            dense_bytes + TENSORFLOW_WORKSPACE_BYTES,
            budget,
            matrix_free,
        )

    available = budget - dense_bytes - TENSORFLOW_WORKSPACE_BYTES
    chunk = n_points
    while True:
        # Largest k with block_bytes(k) <= available; the estimate grows with k.
        low, high = 0, max(1, min(max_block_size, n_columns))
        while low < high:
            middle = (low + high + 1) // 2
            if block_bytes(middle, chunk) <= available:
                low = middle
            else:
                high = middle - 1
        if low >= min(8, n_columns) or chunk <= 64 or not chunkable:
            break
        # Fewer points per chunk before fewer than 8 columns per block: both cut memory
        # linearly, but tiny blocks waste most of the time on per-call overhead.
        chunk = max(64, chunk // 2)
    if low == 0:
        needed = dense_bytes + TENSORFLOW_WORKSPACE_BYTES + block_bytes(1, chunk)
        raise MemoryBudgetError(
            f"{what} with one column per block", needed, budget, matrix_free + ", or use a smaller network"
        )
    plan = BlockPlan(low, chunk, dense_bytes, block_bytes(low, chunk), budget)
    logger.debug("%s: %d columns per block, %d points per chunk, estimate %s", what, low, chunk, format_bytes(plan.total_bytes))
    return plan
