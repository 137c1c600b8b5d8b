"""View computations for the dashboard: pooling, symmetric-log scaling, labels and result keys.

Everything here is plain NumPy (plus the loss for solution grids) and never imports
Streamlit, so the tests check what the pages draw without a browser. The pages only turn
these arrays into Plotly figures.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .network import NetworkLayout
from .problem import exact_solution, test_grid
from .settings import Settings

logger = logging.getLogger(__name__)

# The largest heatmap side sent to the browser. A 5,301 x 5,301 Hessian as JSON is
# hundreds of megabytes; 600 x 600 cells is a few megabytes and still shows the blocks.
MAX_HEATMAP_CELLS = 600

# Settings that change the trained θ. ``test_grid`` is missing on purpose: it changes only
# the reported error and the solution maps, not θ, so it does not invalidate the Hessian.
MODEL_FIELDS: tuple[str, ...] = (
    "hidden_layers",
    "width",
    "activation",
    "dtype",
    "n_interior",
    "n_boundary",
    "boundary",
    "sampling",
    "seed",
    "adam_steps",
    "learning_rate",
    "lbfgs_steps",
    "pde_weight",
    "boundary_weight",
)

# For each kind of result, every setting that changes its values. The memory budget is
# absent throughout: it decides how the work is split into blocks and whether a dense
# matrix may be formed at all, not the values. The landscape inherits the spectrum's
# fields because its directions are the spectrum's eigenvectors.
RESULT_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "training": MODEL_FIELDS + ("test_grid",),
    "hessian": MODEL_FIELDS + ("hessian_method",),
    "cross_check": MODEL_FIELDS + ("hessian_method",),
    "gauss_newton": MODEL_FIELDS,
    "spectrum": MODEL_FIELDS + ("hessian_method", "spectrum", "top_k"),
    "landscape": MODEL_FIELDS + ("hessian_method", "spectrum", "top_k", "landscape_range", "landscape_points"),
}

_all_fields = {f.name for f in dataclasses.fields(Settings)}
for _kind, _fields in RESULT_DEPENDENCIES.items():
    _unknown = set(_fields) - _all_fields
    assert not _unknown, f"{_kind} depends on unknown settings {sorted(_unknown)}"


def result_key(kind: str, settings: Settings) -> tuple[Any, ...]:
    """Return a hashable key made of ``kind`` and every setting the result depends on.

    Two settings objects give the same key exactly when a result of ``kind`` computed
    for one is valid for the other.

    Raises
    ------
    KeyError
        If ``kind`` is not one of ``RESULT_DEPENDENCIES``.
    """
    if kind not in RESULT_DEPENDENCIES:
        raise KeyError(f"unknown result kind {kind!r}; use one of {', '.join(RESULT_DEPENDENCIES)}")
    return (kind,) + tuple((name, getattr(settings, name)) for name in RESULT_DEPENDENCIES[kind])


def changed_settings(kind: str, computed_with: Settings, current: Settings) -> list[str]:
    """List the settings that ``kind`` depends on and that differ between the two objects."""
    return [
        name
        for name in RESULT_DEPENDENCIES[kind]
        if getattr(computed_with, name) != getattr(current, name)
    ]


def describe_changes(kind: str, computed_with: Settings, current: Settings) -> str:
    """Describe the changed settings as ``"width 8 → 16, seed 0 → 1"`` for a stale note."""
    return ", ".join(
        f"{name} {getattr(computed_with, name)} → {getattr(current, name)}"
        for name in changed_settings(kind, computed_with, current)
    )


# --- Settings summary -----------------------------------------------------------------------

BOUNDARY_DESCRIPTIONS = {
    "edges": "all four edges, uniform along the perimeter",
    "top-edge": "top edge only (x in [0, 1], y = 1); the other three edges are unconstrained",
}


def settings_summary(settings: Settings) -> dict[str, str]:
    """Return the run's settings as short labelled lines, boundary sampling included."""
    widths = "-".join(str(w) for w in settings.layer_widths)
    return {
        "network": f"{widths} {settings.activation}, {settings.n_params:,} parameters, {settings.dtype}",
        "interior points": f"{settings.n_interior:,} ({settings.sampling})",
        "boundary points": f"{settings.n_boundary:,} on {settings.boundary}: {BOUNDARY_DESCRIPTIONS[settings.boundary]}",
        "training": (
            f"{settings.adam_steps:,} Adam steps at learning rate {settings.learning_rate:g}, "
            f"then {settings.lbfgs_steps:,} L-BFGS-B iterations"
        ),
        "loss weights": f"PDE {settings.pde_weight:g}, boundary {settings.boundary_weight:g}",
        "seed": str(settings.seed),
    }


# --- Training progress ----------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingProgress:
    """Progress of a training run after one step.

    Attributes
    ----------
    done : int
        Steps finished, Adam steps and L-BFGS iterations together.
    total : int
        ``adam_steps + lbfgs_steps``; L-BFGS-B may stop before reaching it.
    fraction : float
        ``done / total`` clipped to [0, 1].
    remaining_seconds : float or None
        Estimate from the mean time per step so far; None before the first step.
    """

    done: int
    total: int
    fraction: float
    remaining_seconds: float | None


def training_progress(step, adam_steps: int) -> TrainingProgress:
    """Return the progress after ``step`` (a ``TrainingStep``) of a run with ``adam_steps``.

    The estimate assumes that every remaining step costs the mean of the steps so far.
    An L-BFGS iteration usually costs more than an Adam step, so it is a rough estimate.
    """
    done = step.step if step.phase == "adam" else adam_steps + step.step
    total = max(step.total_steps, 1)
    remaining = None
    if done > 0 and step.seconds > 0:
        remaining = step.seconds / done * max(total - done, 0)
    return TrainingProgress(done, total, min(max(done / total, 0.0), 1.0), remaining)


def format_duration(seconds: float | None) -> str:
    """Format seconds as ``"42 s"`` or ``"3 min 05 s"``; None becomes ``"unknown"``."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


@dataclass(frozen=True)
class LossHistory:
    """Loss curves of a run, one entry per step, with steps counted across both phases."""

    steps: np.ndarray
    total: np.ndarray
    pde: np.ndarray
    boundary: np.ndarray
    adam_steps: int


def loss_history(history: Sequence, adam_steps: int) -> LossHistory:
    """Turn a list of ``TrainingStep`` records into arrays; L-BFGS steps continue after Adam's."""
    steps = np.array(
        [s.step if s.phase == "adam" else adam_steps + s.step for s in history], dtype=np.int64
    )
    return LossHistory(
        steps=steps,
        total=np.array([s.loss for s in history], dtype=np.float64),
        pde=np.array([s.pde_loss for s in history], dtype=np.float64),
        boundary=np.array([s.boundary_loss for s in history], dtype=np.float64),
        adam_steps=adam_steps,
    )


# --- Solution maps --------------------------------------------------------------------------


@dataclass(frozen=True)
class SolutionGrids:
    """Predicted and exact u on a square grid; arrays have shape (n, n) with x along columns."""

    axis: np.ndarray
    predicted: np.ndarray
    exact: np.ndarray

    @property
    def error(self) -> np.ndarray:
        """Pointwise error u_θ − u_exact."""
        return self.predicted - self.exact


def solution_grids(loss, theta: np.ndarray, points_per_side: int) -> SolutionGrids:
    """Evaluate u_θ and the exact u on a ``points_per_side``² grid over [-1, 1]²."""
    points = test_grid(points_per_side)
    shape = (points_per_side, points_per_side)
    predicted = loss.predict(theta, points).astype(np.float64).reshape(shape)
    exact = exact_solution(points).reshape(shape)
    return SolutionGrids(np.unique(points[:, 0]), predicted, exact)


def relative_l2(grids: SolutionGrids) -> float:
    """Return ‖u_θ − u_exact‖₂ / ‖u_exact‖₂ over the grid points."""
    return float(np.linalg.norm(grids.error) / np.linalg.norm(grids.exact))


def shifted_fields(loss, theta: np.ndarray, direction: np.ndarray, alpha: float, points_per_side: int):
    """Evaluate u and the PDE residual Δu − f at θ + α·d on a square grid.

    Returns
    -------
    axis : ndarray, shape (n,)
    u : ndarray, shape (n, n)
    residual : ndarray, shape (n, n)
    """
    shifted = np.asarray(theta, dtype=np.float64) + alpha * np.asarray(direction, dtype=np.float64)
    shifted = shifted.astype(np.asarray(theta).dtype)
    points = test_grid(points_per_side)
    shape = (points_per_side, points_per_side)
    u = loss.predict(shifted, points).astype(np.float64).reshape(shape)
    residual = loss.residual_field(shifted, points).astype(np.float64).reshape(shape)
    return np.unique(points[:, 0]), u, residual


# --- Hessian heatmaps -----------------------------------------------------------------------


@dataclass(frozen=True)
class PooledMatrix:
    """A matrix reduced to tiles, each cell the largest-magnitude entry of its tile.

    Attributes
    ----------
    values : ndarray, shape (ceil(n_rows / tile), ceil(n_cols / tile))
        The kept entry of every tile, with its sign.
    tile : int
        Side of a tile in matrix entries; 1 means nothing was pooled.
    shape : tuple of int
        Shape of the original matrix.
    """

    values: np.ndarray
    tile: int
    shape: tuple[int, int]

    def starts(self, axis: int) -> np.ndarray:
        """First matrix index of every tile along ``axis`` (0 rows, 1 columns)."""
        return np.arange(0, self.shape[axis], self.tile)


def pool_max_magnitude(matrix: np.ndarray, max_cells: int = MAX_HEATMAP_CELLS) -> PooledMatrix:
    """Pool ``matrix`` into square tiles so neither side exceeds ``max_cells``.

    Each output cell is the entry of largest absolute value in its tile, sign kept, so a
    single large coupling stays visible where a mean would wash it out. The tile side is
    ``ceil(max(n_rows, n_cols) / max_cells)``; the last row and column of tiles may be
    partial. Works strip by strip, so the extra memory is one strip of tiles.

    Examples
    --------
    >>> pooled = pool_max_magnitude(np.array([[1.0, -5.0, 2.0], [0.5, 3.0, -9.0]]), max_cells=2)
    >>> pooled.tile, pooled.values.tolist()
    (2, [[-5.0, -9.0]])
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {matrix.shape}")
    if max_cells < 1:
        raise ValueError(f"max_cells must be a positive integer, got {max_cells}")
    n_rows, n_cols = matrix.shape
    tile = max(1, math.ceil(max(n_rows, n_cols) / max_cells))
    if tile == 1:
        return PooledMatrix(matrix.copy(), 1, (n_rows, n_cols))

    out_rows, out_cols = math.ceil(n_rows / tile), math.ceil(n_cols / tile)
    padded_cols = out_cols * tile
    pooled = np.empty((out_rows, out_cols), dtype=matrix.dtype)
    columns = np.arange(out_cols)
    for row in range(out_rows):
        strip = matrix[row * tile : (row + 1) * tile]
        # Zero padding never beats a real entry, and an all-zero tile stays zero.
        if padded_cols != n_cols:
            strip = np.pad(strip, ((0, 0), (0, padded_cols - n_cols)))
        height = strip.shape[0]
        tiles = strip.reshape(height, out_cols, tile).transpose(1, 0, 2).reshape(out_cols, height * tile)
        pooled[row] = tiles[columns, np.argmax(np.abs(tiles), axis=1)]
    return PooledMatrix(pooled, tile, (n_rows, n_cols))


def symlog(values: np.ndarray, linear_threshold: float) -> np.ndarray:
    """Map values by sign(x)·log10(1 + |x| / c), linear below c and logarithmic above.

    Zero maps to zero and the sign is kept, so a diverging colour scale centred on zero
    still separates positive from negative entries that differ by many decades.
    """
    if not linear_threshold > 0:
        raise ValueError(f"linear_threshold must be positive, got {linear_threshold}")
    values = np.asarray(values, dtype=np.float64)
    # log1p keeps full relative precision for |x| far below c, where 1 + |x|/c rounds to 1.
    return np.sign(values) * np.log1p(np.abs(values) / linear_threshold) / math.log(10.0)


def inverse_symlog(transformed: np.ndarray, linear_threshold: float) -> np.ndarray:
    """Undo :func:`symlog`."""
    transformed = np.asarray(transformed, dtype=np.float64)
    return np.sign(transformed) * linear_threshold * np.expm1(np.abs(transformed) * math.log(10.0))


def symlog_threshold(max_abs: float, decades: float) -> float:
    """Return the linear threshold c = max_abs · 10^(−decades), or 1 for an all-zero matrix."""
    if not max_abs > 0 or not math.isfinite(max_abs):
        return 1.0
    return float(max_abs) * 10.0 ** (-float(decades))


def symlog_ticks(max_abs: float, linear_threshold: float, per_side: int = 4) -> tuple[list[float], list[str]]:
    """Return tick positions in symlog space and their labels in original units.

    Ticks sit at 0 and at ±10^k for powers of ten between the threshold and ``max_abs``,
    thinned to at most ``per_side`` on each side.
    """
    positions, labels = [0.0], ["0"]
    if not max_abs > 0 or not math.isfinite(max_abs):
        return positions, labels
    low = math.ceil(math.log10(linear_threshold))
    high = math.floor(math.log10(max_abs))
    exponents = list(range(low, high + 1))
    if len(exponents) > per_side:
        stride = math.ceil(len(exponents) / per_side)
        exponents = exponents[::-1][::stride][::-1]
    for exponent in exponents:
        value = 10.0**exponent
        label = f"{value:g}"
        position = float(symlog(np.array(value), linear_threshold))
        positions = [-position] + positions + [position]
        labels = ["-" + label] + labels + [label]
    return positions, labels


def block_boundaries(layout: NetworkLayout) -> list[int]:
    """Return the θ indices where a new parameter block starts, the first block excluded."""
    return [block.offset for block in layout.blocks[1:]]


def spread_positions(centers: Sequence[float], min_gap: float, low: float, high: float) -> np.ndarray:
    """Move sorted label positions apart so neighbours are at least ``min_gap`` apart.

    A forward pass pushes labels up, a backward pass pulls them back below ``high``; a
    label stays at its centre wherever there is room. If the labels do not fit between
    ``low`` and ``high`` at all, the last ones are pushed past ``high``.
    """
    positions = np.asarray(centers, dtype=np.float64).copy()
    if positions.size == 0:
        return positions
    positions[0] = max(positions[0], low)
    for i in range(1, positions.size):
        positions[i] = max(positions[i], positions[i - 1] + min_gap)
    positions[-1] = min(positions[-1], high)
    for i in range(positions.size - 2, -1, -1):
        positions[i] = min(positions[i], positions[i + 1] - min_gap)
    # The backward pass may have crossed ``low``; a last forward pass restores the gaps.
    positions[0] = max(positions[0], low)
    for i in range(1, positions.size):
        positions[i] = max(positions[i], positions[i - 1] + min_gap)
    return positions


@dataclass(frozen=True)
class BlockLabels:
    """Positions of the block names along a Hessian axis, in θ-index units."""

    names: list[str]
    centers: np.ndarray
    positions: np.ndarray


def block_labels(
    layout: NetworkLayout, start: int = 0, stop: int | None = None, min_fraction: float = 0.03, high: float | None = None
) -> BlockLabels:
    """Place the names of the blocks that overlap ``[start, stop)`` along one axis.

    Labels start at their block's centre (clipped to the range) and are spread at least
    ``min_fraction`` of the range apart, so the names of small bias blocks do not overlap.
    No label goes past ``high``, which defaults to ``stop - 1``. A pooled axis ends at the
    start of its last tile, so the figure passes that position instead.
    """
    stop = layout.n_params if stop is None else stop
    high = stop - 1 if high is None else high
    names, centers = [], []
    for block in layout.blocks:
        first, last = max(block.offset, start), min(block.stop, stop)
        if first < last:
            names.append(block.name)
            centers.append((first + last - 1) / 2)
    gap = min_fraction * (stop - start)
    return BlockLabels(names, np.array(centers), spread_positions(centers, gap, start, high))


def block_frobenius_norms(matrix: np.ndarray, layout: NetworkLayout) -> np.ndarray:
    """Return ‖H[block i, block j]‖_F for every pair of blocks, shape (n_blocks, n_blocks)."""
    matrix = np.asarray(matrix)
    if matrix.shape != (layout.n_params, layout.n_params):
        raise ValueError(
            f"matrix must have shape ({layout.n_params}, {layout.n_params}) for this layout, got {matrix.shape}"
        )
    blocks = layout.blocks
    norms = np.empty((len(blocks), len(blocks)))
    for i, row in enumerate(blocks):
        for j, column in enumerate(blocks):
            norms[i, j] = np.linalg.norm(matrix[row.offset : row.stop, column.offset : column.stop])
    return norms


def block_range(layout: NetworkLayout, name: str) -> tuple[int, int]:
    """Return ``(start, stop)`` of the block called ``name``, such as ``"layer 2 kernel"``."""
    for block in layout.blocks:
        if block.name == name:
            return block.offset, block.stop
    known = ", ".join(block.name for block in layout.blocks)
    raise KeyError(f"no block named {name!r}; the blocks are {known}")


def clip_range(start: int, stop: int, n: int, max_size: int = MAX_HEATMAP_CELLS) -> tuple[int, int]:
    """Clip ``[start, stop)`` to ``[0, n)`` and to at most ``max_size`` entries from ``start``.

    Raises
    ------
    ValueError
        If the range is empty after clipping to ``[0, n)``.
    """
    start, stop = max(0, int(start)), min(n, int(stop))
    if start >= stop:
        raise ValueError(f"index range [{start}, {stop}) is empty; choose start < stop within [0, {n})")
    return start, min(stop, start + max_size)


# --- Spectra --------------------------------------------------------------------------------


def symlog_histogram(eigenvalues: np.ndarray, linear_threshold: float, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of eigenvalues on the symlog scale.

    Returns the bin edges in symlog units, shape (bins + 1,), and the fraction of
    eigenvalues in each bin, shape (bins,), which sums to 1. Equal-width bins in symlog
    units resolve the crowd of eigenvalues near zero and the few large ones together.
    """
    transformed = symlog(np.asarray(eigenvalues, dtype=np.float64), linear_threshold)
    counts, edges = np.histogram(transformed, bins=bins)
    return edges, counts / max(transformed.size, 1)


def symlog_histograms(spectra: dict[str, np.ndarray], linear_threshold: float, bins: int = 60) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Histogram several spectra on shared symlog bins, so overlaid bars line up.

    Returns ``{name: (edges, fractions)}`` with the same edges for every name; each
    spectrum's fractions sum to 1.
    """
    transformed = {name: symlog(np.asarray(values, dtype=np.float64), linear_threshold) for name, values in spectra.items()}
    low = min(float(values.min()) for values in transformed.values())
    high = max(float(values.max()) for values in transformed.values())
    edges = np.histogram_bin_edges(np.array([low, high]), bins=bins)
    return {name: (edges, np.histogram(values, bins=edges)[0] / max(values.size, 1)) for name, values in transformed.items()}


# --- Checks before a run --------------------------------------------------------------------

# The dense Hessian step keeps three P × P float64 matrices: the total, PDE and boundary parts.
DENSE_HESSIAN_MATRICES = 3


def dense_hessian_problem(settings: Settings) -> str:
    """Explain why the dense Hessian or the dense spectrum of ``settings`` cannot run, or return "".

    Checks only the large dense arrays against the memory budget, before anything is
    computed: the three Hessian matrices, and for ``spectrum="dense"`` the matrix plus
    LAPACK's workspace. The Hessian methods check their working blocks again when they run.
    """
    from .memory import budget_bytes, dense_matrix_bytes, eigh_memory_bytes, format_bytes

    n = settings.n_params
    if settings.hessian_method == "matrix-free":
        if settings.spectrum == "dense":
            return (
                "Eigensolver 'dense' needs the dense Hessian, but the Hessian method is matrix-free; "
                "choose eigensolver 'lanczos' for a matrix-free spectrum, or a dense Hessian method."
            )
        return ""
    budget = budget_bytes(settings.memory_budget_gib)
    hessian_bytes = dense_matrix_bytes(n, DENSE_HESSIAN_MATRICES)
    eigh_bytes = dense_matrix_bytes(n) + eigh_memory_bytes(n) if settings.spectrum == "dense" else 0
    needed = max(hessian_bytes, eigh_bytes)
    if needed <= budget:
        return ""
    if eigh_bytes > hessian_bytes:
        what = "its dense eigendecomposition needs"
    else:
        what = "its total, PDE and boundary matrices need"
    return (
        f"A dense {n:,} × {n:,} Hessian does not fit the memory budget: {what} about "
        f"{format_bytes(needed)}, more than {settings.memory_budget_gib:g} GiB. Choose Hessian method "
        f"'matrix-free' with eigensolver 'lanczos' (no dense matrix), raise the memory budget to at least "
        f"{math.ceil(needed / 2**30 * 4) / 4:g} GiB, or use a smaller network."
    )


@dataclass(frozen=True)
class SpectrumSummary:
    """The numbers of the Spectrum page's metrics row and top-k table, from either eigensolver.

    Attributes
    ----------
    mode : str
        ``"dense"`` (every eigenvalue known) or ``"lanczos"`` (matrix-free estimates).
    largest, smallest : float
        Largest and smallest algebraic eigenvalue; "top" is always the largest algebraic.
    n_negative : float
        Number of negative eigenvalues; an estimate from the SLQ weights in Lanczos mode.
    trace : float
        Exact sum of the eigenvalues, or Hutchinson's estimate in Lanczos mode.
    trace_standard_error : float or None
        Standard error of the Hutchinson estimate; None when the trace is exact.
    condition_number : float or None
        λ_max over the smallest positive eigenvalue above the tolerance; None when not
        every eigenvalue is known, ``inf`` when no eigenvalue is positive.
    top_eigenvalues, top_residuals : ndarray
        Largest algebraic eigenvalues, descending, with ‖Hv − λv‖ / |λ| of each pair.
    converged : bool
        False when the eigensolver did not converge every requested pair.
    """

    mode: str
    largest: float
    smallest: float
    n_negative: float
    trace: float
    trace_standard_error: float | None
    condition_number: float | None
    top_eigenvalues: np.ndarray
    top_residuals: np.ndarray
    converged: bool = True


def summarise_dense_spectrum(spectrum) -> SpectrumSummary:
    """Summarise a ``hessian_core.spectrum.DenseSpectrum``."""
    statistics = spectrum.statistics
    return SpectrumSummary(
        mode="dense",
        largest=statistics.largest,
        smallest=statistics.smallest,
        n_negative=float(statistics.n_negative),
        trace=statistics.trace,
        trace_standard_error=None,
        condition_number=statistics.condition_number_positive,
        top_eigenvalues=np.asarray(spectrum.top_eigenvalues),
        top_residuals=np.asarray(spectrum.top_residuals),
    )


def estimated_negative_count(density, n_params: int) -> float:
    """Estimate the number of negative eigenvalues as P times the SLQ weight on negative nodes.

    Each run's weights sum to 1 and approximate the spectral measure, so the mean weight on
    nodes below zero approximates the fraction of negative eigenvalues.
    """
    negative_weight = np.sum(np.where(density.nodes < 0, density.weights, 0.0), axis=1)
    return float(np.mean(negative_weight) * n_params)


def summarise_matrix_free_spectrum(top, bottom, density, trace, n_params: int) -> SpectrumSummary:
    """Summarise Lanczos top and bottom pairs, an SLQ density and a Hutchinson trace."""
    largest = float(top.eigenvalues[0]) if top.eigenvalues.size else float("nan")
    smallest = float(bottom.eigenvalues[0]) if bottom.eigenvalues.size else float("nan")
    return SpectrumSummary(
        mode="lanczos",
        largest=largest,
        smallest=smallest,
        n_negative=estimated_negative_count(density, n_params),
        trace=float(trace.estimate),
        trace_standard_error=float(trace.standard_error),
        condition_number=None,
        top_eigenvalues=np.asarray(top.eigenvalues),
        top_residuals=np.asarray(top.residuals),
        converged=bool(top.converged and bottom.converged),
    )


# The two loss terms whose Hessians add up to the total one, as the pages name them.
TERM_NAMES = ("PDE", "boundary")


@dataclass
class SpectrumResult:
    """What the Spectrum page stores, from the dense eigensolver or from Lanczos.

    Attributes
    ----------
    summary : SpectrumSummary
    top_eigenvalues : ndarray, shape (k,)
        Largest algebraic first.
    top_eigenvectors : ndarray, shape (P, k)
    bottom_eigenvalues, bottom_eigenvectors
        The most negative pair, shapes (1,) and (P, 1).
    spectra : dict of str to ndarray, or None
        Every eigenvalue of the total Hessian, and of the PDE and boundary Hessians once
        they are asked for (dense mode only).
    densities : dict of str to SpectralDensity, or None
        SLQ densities of the same three matrices (Lanczos mode only).
    seconds : float
    """

    summary: SpectrumSummary
    top_eigenvalues: np.ndarray
    top_eigenvectors: np.ndarray
    bottom_eigenvalues: np.ndarray
    bottom_eigenvectors: np.ndarray
    spectra: dict | None
    densities: dict | None
    seconds: float


def all_eigenvalues(matrix: np.ndarray, memory_budget_gib: float) -> np.ndarray:
    """Return every eigenvalue of a symmetric matrix, ascending, after checking the memory budget.

    Cost: one O(P³) tridiagonal reduction (``scipy.linalg.eigh`` with ``eigvals_only``).
    """
    import scipy.linalg

    from .spectrum import check_eigh_memory

    matrix = np.asarray(matrix, dtype=np.float64)
    check_eigh_memory(matrix.shape[0], memory_budget_gib)
    return scipy.linalg.eigh(matrix, eigvals_only=True, lower=True, check_finite=False)


def eigenvalue_table(summary: SpectrumSummary) -> dict[str, np.ndarray]:
    """Columns of the top-k table: rank, eigenvalue and relative residual."""
    count = summary.top_eigenvalues.size
    return {
        "rank": np.arange(1, count + 1),
        "eigenvalue": summary.top_eigenvalues,
        "residual ‖Hv − λv‖ / |λ|": summary.top_residuals,
    }


def eigenvalues_csv(result: SpectrumResult) -> str:
    """Write the eigenvalues as CSV: every eigenvalue per term (dense) or the pairs found (Lanczos)."""
    lines = []
    if result.spectra is not None:
        names = list(result.spectra)
        lines.append("index," + ",".join(names))
        columns = [np.asarray(result.spectra[name]) for name in names]
        for i in range(len(columns[0])):
            lines.append(f"{i}," + ",".join(repr(float(column[i])) for column in columns))
    else:
        lines.append("kind,rank,eigenvalue,relative_residual")
        for rank, (value, residual) in enumerate(zip(result.summary.top_eigenvalues, result.summary.top_residuals), 1):
            lines.append(f"top,{rank},{float(value)!r},{float(residual)!r}")
        for rank, value in enumerate(result.bottom_eigenvalues, 1):
            lines.append(f"most negative,{rank},{float(value)!r},")
    return "\n".join(lines) + "\n"


# --- Landscape ------------------------------------------------------------------------------

RANDOM_DIRECTIONS = 2


def unit_random_directions(layout: NetworkLayout, theta: np.ndarray, seed: int, count: int = RANDOM_DIRECTIONS) -> np.ndarray:
    """Draw ``count`` per-neuron-normalised random directions, each scaled to unit length.

    Per-neuron normalisation gives each neuron a share of the step that matches its part
    of θ; unit length then makes α mean the same step size as along a unit eigenvector,
    so the slices compare directly. Direction i uses seed ``seed + i``.

    Returns an array of shape (P, count), float64.
    """
    from .landscape import random_direction

    columns = []
    for i in range(count):
        direction = random_direction(layout, theta, seed + i)
        columns.append(direction / np.linalg.norm(direction))
    return np.stack(columns, axis=1)


def eigenvector_choices(result: "SpectrumResult") -> dict[str, tuple[str, int]]:
    """Name every eigenvector a slice can follow: ``"top 1"`` … ``"top k"`` and ``"most negative"``."""
    choices = {f"top {i + 1}": ("top", i) for i in range(result.top_eigenvalues.size)}
    if result.bottom_eigenvalues.size:
        choices["most negative"] = ("bottom", 0)
    return choices


def chosen_eigenvectors(result: "SpectrumResult", names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return the eigenvectors named in ``names`` as columns (P, m) and their eigenvalues (m,)."""
    choices = eigenvector_choices(result)
    vectors, values = [], []
    for name in names:
        kind, index = choices[name]
        if kind == "top":
            vectors.append(result.top_eigenvectors[:, index])
            values.append(result.top_eigenvalues[index])
        else:
            vectors.append(result.bottom_eigenvectors[:, index])
            values.append(result.bottom_eigenvalues[index])
    return np.stack(vectors, axis=1), np.array(values, dtype=np.float64)


def landscape_arrays(slices, surface) -> dict[str, np.ndarray]:
    """Collect a ``LineSlices`` and a ``Surface`` into named arrays for an ``.npz`` download."""
    arrays = {
        "surface_alphas": surface.alphas,
        "surface_betas": surface.betas,
        "surface_total": surface.total,
        "surface_pde": surface.pde,
        "surface_boundary": surface.boundary,
        "slice_alphas": slices.alphas,
        "slice_labels": np.array(slices.labels),
    }
    for name in ("total", "pde", "boundary", "quadratic_total", "curvatures", "gradient_projections"):
        arrays[f"slice_{name}"] = getattr(slices, name)
    return arrays


def slice_curves(slices, labels: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Pick the total loss and its quadratic model of the named directions from a ``LineSlices``."""
    rows = {label: index for index, label in enumerate(slices.labels)}
    curves = {label: slices.total[rows[label]] for label in labels}
    models = {label: slices.quadratic_total[rows[label]] for label in labels}
    return curves, models
