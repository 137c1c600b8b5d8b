"""Dense Hessians of any scalar TensorFlow loss of a list of variables, block by block.

``hessian(loss_fn, variables)`` flattens the variables in the order given (each one
row-major) into one vector θ and returns the P × P matrix ∂²loss/∂θ∂θ. ``loss_fn()`` may
read the variables in any way, including nested ``GradientTape``\\ s over the inputs, and
Keras 3 variables are accepted as they come from ``model.trainable_variables``.

Methods
-------
``forward-over-reverse``
    k columns per call: ``tf.vectorized_map`` over k basis tangents of a
    ``ForwardAccumulator`` wrapped around the tape of the gradient. P/k compiled calls.
``reverse-over-reverse``
    One reverse sweep of a persistent tape per gradient entry, eagerly; P sweeps.
``jacobian-pfor``
    ``GradientTape.jacobian`` (pfor) of k gradient entries at a time; P/k compiled calls.

``tf.hessians`` applied to a list of variables returns only the diagonal block of each
variable, so it is offered only on one flat tensor, by :mod:`hessian_core.hessian_methods`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from .memory import MemoryBudgetError, budget_bytes, dense_matrix_bytes, format_bytes

logger = logging.getLogger(__name__)

GENERIC_METHODS = ("forward-over-reverse", "reverse-over-reverse", "jacobian-pfor")

# reverse-over-reverse runs one eager reverse sweep per row, measured at 50-110 ms a row
# for the 2-W-W-W-1 PINN on 2 CPU cores, so 1,000 rows already take one to two minutes
# and P = 5,301 about ten. Above this size it runs only when forced.
REVERSE_OVER_REVERSE_MAX_PARAMS = 1000

# Columns per block of the tape-based methods when no budget estimate is given.
DEFAULT_BLOCK_SIZE = 64

Progress = Callable[[int, int], None]


@dataclass
class GenericHessianRecord:
    """Provenance of a generic Hessian: method, dtype, size, timing and asymmetry."""

    method: str
    dtype: str
    n_params: int
    block_size: int
    seconds: float
    n_products: int
    asymmetry: float
    variable_shapes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GenericHessian:
    """A dense Hessian over flattened variables.

    Attributes
    ----------
    matrix : ndarray, shape (P, P), float64
        The Hessian, symmetrised as (H + Hᵀ)/2 after ``record.asymmetry`` was measured.
    record : GenericHessianRecord
    """

    matrix: np.ndarray
    record: GenericHessianRecord


def as_tf_variable(variable) -> tf.Variable:
    """Return the ``tf.Variable`` behind a TensorFlow or Keras 3 variable."""
    if isinstance(variable, tf.Variable):
        return variable
    inner = getattr(variable, "value", None)
    if isinstance(inner, tf.Variable):
        return inner
    raise TypeError(
        f"expected a tf.Variable or a Keras variable, got {type(variable).__name__}; "
        "pass model.trainable_variables or a list of tf.Variable"
    )


def _flat(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], 0)


class VariableHessianColumns:
    """Columns of the Hessian of ``loss_fn()`` over flattened ``variables``, k at a time."""

    def __init__(self, loss_fn: Callable[[], tf.Tensor], variables: Sequence) -> None:
        self.loss_fn = loss_fn
        self.variables = [as_tf_variable(v) for v in variables]
        if not self.variables:
            raise ValueError("variables is empty; pass at least one variable")
        dtypes = {v.dtype for v in self.variables}
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating:
            raise ValueError(f"variables must share one floating-point dtype, got {sorted(d.name for d in dtypes)}")
        self.dtype = self.variables[0].dtype
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.n_params = sum(self.sizes)
        self._forward_over_reverse = tf.function(self._forward_over_reverse_eager, reduce_retracing=True)
        self._jacobian_rows = tf.function(self._jacobian_rows_eager, reduce_retracing=True)

    def _gradient(self) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(self.variables)
            value = self.loss_fn()
        return tape.gradient(value, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def _forward_over_reverse_eager(self, tangents: tf.Tensor) -> tf.Tensor:
        # tangents has shape (k, P); row i of the result is H · tangents[i].
        def product(tangent):
            pieces = [tf.reshape(p, s) for p, s in zip(tf.split(tangent, self.sizes), self.shapes)]
            with tf.autodiff.ForwardAccumulator(self.variables, pieces) as accumulator:
                gradient = self._gradient()
            return _flat(accumulator.jvp(gradient, unconnected_gradients=tf.UnconnectedGradients.ZERO))

        return tf.vectorized_map(product, tangents)

    def _jacobian_rows_eager(self, indices: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as outer:
            outer.watch(self.variables)
            entries = tf.gather(_flat(self._gradient()), indices)
        blocks = outer.jacobian(
            entries, self.variables, experimental_use_pfor=True, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        k = tf.shape(indices)[0]
        return tf.concat([tf.reshape(b, [k, -1]) for b in blocks], 1)

    def forward_over_reverse(self, columns: np.ndarray) -> np.ndarray:
        """Return H[:, columns]ᵀ, shape (k, P), by k batched Hessian-vector products."""
        tangents = np.zeros((len(columns), self.n_params), dtype=self.dtype.as_numpy_dtype)
        tangents[np.arange(len(columns)), columns] = 1.0
        return self._forward_over_reverse(tf.constant(tangents)).numpy()

    def jacobian_rows(self, rows: np.ndarray) -> np.ndarray:
        """Return H[rows, :], shape (k, P), as the pfor Jacobian of those gradient entries."""
        return self._jacobian_rows(tf.constant(rows, tf.int32)).numpy()

    def reverse_over_reverse(self, progress: Progress | None = None) -> np.ndarray:
        """Return H row by row: one reverse sweep of a persistent tape per gradient entry."""
        matrix = np.empty((self.n_params, self.n_params), dtype=np.float64)
        with tf.GradientTape(persistent=True) as outer:
            outer.watch(self.variables)
            entries = tf.unstack(_flat(self._gradient()))
        for row, entry in enumerate(entries):
            gradients = outer.gradient(entry, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            matrix[row] = _flat(gradients).numpy()
            if progress is not None:
                progress(row + 1, self.n_params)
        del outer
        return matrix


def check_reverse_over_reverse_size(n_params: int, force: bool) -> None:
    """Reject reverse-over-reverse above ``REVERSE_OVER_REVERSE_MAX_PARAMS`` unless forced."""
    if n_params > REVERSE_OVER_REVERSE_MAX_PARAMS and not force:
        raise ValueError(
            f"reverse-over-reverse with {n_params:,} parameters would run {n_params:,} eager reverse sweeps "
            f"(about 50-110 ms each on 2 CPU cores); it is allowed up to {REVERSE_OVER_REVERSE_MAX_PARAMS:,} "
            "parameters. Use forward-over-reverse, which computes the same matrix, or pass force=True"
        )


def fill_blocks(
    n_params: int, block_size: int, compute: Callable[[np.ndarray], np.ndarray], progress: Progress | None = None
) -> np.ndarray:
    """Fill a P × P float64 matrix k rows at a time from ``compute(indices) -> (k, P)``.

    The last block is padded to k indices by repeating its last index, so every call has
    the same shape and the compiled function is traced once.
    """
    matrix = np.empty((n_params, n_params), dtype=np.float64)
    for start in range(0, n_params, block_size):
        indices = np.arange(start, min(start + block_size, n_params))
        padded = np.pad(indices, (0, block_size - len(indices)), mode="edge")
        matrix[indices] = compute(padded)[: len(indices)]
        if progress is not None:
            progress(int(indices[-1]) + 1, n_params)
    return matrix


def symmetrize(matrix: np.ndarray, block: int = 1024) -> float:
    """Replace ``matrix`` in place by (H + Hᵀ)/2 and return max|H − Hᵀ| / max|H| before it.

    Works on square tiles, so it needs no second P × P array. The result is exactly
    symmetric because IEEE addition is commutative.
    """
    n = matrix.shape[0]
    largest = 0.0
    asymmetry = 0.0
    for i in range(0, n, block):
        for j in range(i, n, block):
            upper = matrix[i : i + block, j : j + block]
            lower = matrix[j : j + block, i : i + block].T
            largest = max(largest, float(np.abs(upper).max()), float(np.abs(lower).max()))
            asymmetry = max(asymmetry, float(np.abs(upper - lower).max()))
            average = (upper + lower) / 2
            matrix[i : i + block, j : j + block] = average
            matrix[j : j + block, i : i + block] = average.T
    return asymmetry / largest if largest > 0 else 0.0


def hessian(
    loss_fn: Callable[[], tf.Tensor],
    variables: Sequence,
    method: str = "forward-over-reverse",
    block_size: int = DEFAULT_BLOCK_SIZE,
    memory_budget_gib: float = 2.0,
    progress: Progress | None = None,
    force: bool = False,
) -> GenericHessian:
    """Compute the dense Hessian of a scalar ``loss_fn()`` over a list of variables.

    .. math:: H_{ij} = \\partial^2 \\mathrm{loss} / \\partial\\theta_i \\partial\\theta_j,
              \\quad \\theta = (\\mathrm{vec}\\, v_1, \\dots, \\mathrm{vec}\\, v_m)

    Parameters
    ----------
    loss_fn : callable
        Takes no arguments and returns a scalar tensor computed from ``variables``.
    variables : sequence of tf.Variable or Keras variables
        All of one floating-point dtype. Each is flattened row-major, in the order given.
    method : {"forward-over-reverse", "reverse-over-reverse", "jacobian-pfor"}
    block_size : int
        Columns (or rows) per compiled call, k; working memory grows linearly with k.
    memory_budget_gib : float
        The P × P float64 result must fit in it, or :class:`MemoryBudgetError` is raised
        before anything is allocated.
    progress : callable, optional
        ``progress(done, total)`` after every block (every row for reverse-over-reverse).
    force : bool
        Run reverse-over-reverse above ``REVERSE_OVER_REVERSE_MAX_PARAMS`` parameters.

    Returns
    -------
    GenericHessian
        ``.matrix`` (P, P) float64, exactly symmetric, and ``.record``.

    Examples
    --------
    >>> import numpy as np, tensorflow as tf
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> x = tf.Variable([0.5, -1.0], dtype=tf.float64)
    >>> result = hessian(lambda: 0.5 * tf.tensordot(x, tf.linalg.matvec(A, x), 1), [x])
    >>> bool(np.allclose(result.matrix, A))
    True
    """
    if method not in GENERIC_METHODS:
        extra = ""
        if method == "tf-hessians":
            extra = " (tf.hessians on a list of variables returns only the per-variable diagonal blocks)"
        raise ValueError(f"method must be one of {', '.join(GENERIC_METHODS)}, got {method!r}{extra}")
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    columns = VariableHessianColumns(loss_fn, variables)
    budget = budget_bytes(memory_budget_gib)
    dense = dense_matrix_bytes(columns.n_params)
    if dense > budget:
        raise MemoryBudgetError(
            f"the {columns.n_params:,} × {columns.n_params:,} Hessian",
            dense,
            budget,
            "raise memory_budget_gib or use Hessian-vector products (matrix-free) instead of the dense matrix",
        )
    if method == "reverse-over-reverse":
        check_reverse_over_reverse_size(columns.n_params, force)

    logger.info("generic %s Hessian of %d parameters (dense %s)", method, columns.n_params, format_bytes(dense))
    start = time.perf_counter()
    block_size = min(block_size, columns.n_params)
    if method == "forward-over-reverse":
        matrix = fill_blocks(columns.n_params, block_size, columns.forward_over_reverse, progress)
        products = columns.n_params
    elif method == "jacobian-pfor":
        matrix = fill_blocks(columns.n_params, block_size, columns.jacobian_rows, progress)
        products = columns.n_params
    else:
        matrix = columns.reverse_over_reverse(progress)
        products = columns.n_params
        block_size = 1
    asymmetry = symmetrize(matrix)
    record = GenericHessianRecord(
        method=method,
        dtype=columns.dtype.name,
        n_params=columns.n_params,
        block_size=block_size,
        seconds=time.perf_counter() - start,
        n_products=products,
        asymmetry=asymmetry,
        variable_shapes=[list(s) for s in columns.shapes],
    )
    return GenericHessian(matrix, record)
