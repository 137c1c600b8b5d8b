"""Pieces shared by every peer-benchmark worker, with no framework imported.

A worker loads the exported problem (:func:`load_problem`), builds one Hessian routine, and
times it. Blocked routines fill the Hessian block of rows by block of rows through
:func:`fill_by_blocks`, which reports each block to a :class:`BlockClock`. The clock stops a
run that would overrun its time allowance and leaves the timing of the blocks done so far,
from which the worker extrapolates an estimate of the full run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

logger = logging.getLogger(__name__)

DTYPES = ("float32", "float64")

# Relative tolerance of the check against our default method: max|H - H_ours| / max|H_ours|.
CHECK_TOLERANCE = {"float32": 1e-4, "float64": 1e-10}


@dataclass(frozen=True)
class Problem:
    """The benchmark problem as plain arrays, in the dtype of one run.

    Attributes
    ----------
    widths : tuple of int
        Layer widths, input and output included, for example (2, 50, 50, 50, 1).
    interior : ndarray, shape (N_pde, 2)
    source : ndarray, shape (N_pde,)
        The right-hand side f of Δu = f at the interior points.
    boundary : ndarray, shape (N_bc, 2)
    theta : ndarray, shape (P,)
        Flat parameters in Keras layout: per layer, the kernel of shape (fan_in, fan_out)
        row-major, then the bias.
    activation : str
        Hidden activation; only ``tanh`` is exported.
    pde_weight, boundary_weight : float
    dtype : str
    """

    widths: tuple[int, ...]
    interior: np.ndarray
    source: np.ndarray
    boundary: np.ndarray
    theta: np.ndarray
    activation: str
    pde_weight: float
    boundary_weight: float
    dtype: str

    @property
    def n_params(self) -> int:
        return int(self.theta.shape[0])

    def layer_slices(self) -> list[tuple[slice, tuple[int, int], slice]]:
        """Return, per layer, the kernel's slice of θ, the kernel's shape and the bias's slice."""
        slices = []
        offset = 0
        for fan_in, fan_out in zip(self.widths[:-1], self.widths[1:]):
            kernel = slice(offset, offset + fan_in * fan_out)
            offset = kernel.stop
            bias = slice(offset, offset + fan_out)
            offset = bias.stop
            slices.append((kernel, (fan_in, fan_out), bias))
        return slices


def load_problem(path: str | Path, dtype: str) -> Problem:
    """Read a problem written by ``problem_export.py`` and cast its arrays to ``dtype``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"problem file {path} not found; write it with "
            "`python benchmarks/peers/problem_export.py --width W --out FILE`"
        )
    with np.load(path) as data:
        problem = Problem(
            widths=tuple(int(w) for w in data["widths"]),
            interior=data["interior"].astype(dtype),
            source=data["source"].astype(dtype),
            boundary=data["boundary"].astype(dtype),
            theta=data["theta"].astype(dtype),
            activation=str(data["activation"]),
            pde_weight=float(data["pde_weight"]),
            boundary_weight=float(data["boundary_weight"]),
            dtype=dtype,
        )
    if problem.activation != "tanh":
        raise ValueError(f"the peer entries implement tanh only, but {path} uses {problem.activation!r}")
    expected = sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(problem.widths[:-1], problem.widths[1:]))
    if problem.n_params != expected:
        raise ValueError(f"θ in {path} has {problem.n_params} entries, but widths {problem.widths} need {expected}")
    return problem


class StopSampling(Exception):
    """Raised by :class:`BlockClock` to end a run whose projected time exceeds its allowance."""


@dataclass
class BlockClock:
    """Times the blocks of one Hessian and stops a run projected to overrun its allowance.

    Parameters
    ----------
    allowance_seconds : float or None
        Time one call may take. None never stops the run.
    sample_seconds : float
        The earliest point at which the projection is trusted: the clock decides only once
        this much time has passed.

    Attributes
    ----------
    block_seconds : list of float
        Seconds of every finished block, in order; the first one includes compilation.
    block_cpu_seconds : list of float
        CPU seconds of this process (all threads) for the same blocks.
    block_rows : list of int
        Number of Hessian rows each block produced (rows and columns are the same, since
        H is symmetric).
    total_rows : int
        Rows of the whole Hessian, once the first block has been reported.
    """

    allowance_seconds: float | None = None
    sample_seconds: float = 20.0
    block_seconds: list[float] = field(default_factory=list)
    block_cpu_seconds: list[float] = field(default_factory=list)
    block_rows: list[int] = field(default_factory=list)
    total_rows: int = 0
    _start: float = 0.0
    _last: float = 0.0
    _last_cpu: float = 0.0
    _done: int = 0

    def start(self) -> None:
        self.block_seconds.clear()
        self.block_cpu_seconds.clear()
        self.block_rows.clear()
        self._done = 0
        self._start = self._last = time.perf_counter()
        self._last_cpu = time.process_time()

    def tick(self, done: int, total: int) -> None:
        """Record that ``done`` of ``total`` rows are finished, and raise StopSampling to stop the run."""
        now = time.perf_counter()
        now_cpu = time.process_time()
        self.block_seconds.append(now - self._last)
        self.block_cpu_seconds.append(now_cpu - self._last_cpu)
        self._last_cpu = now_cpu
        self.block_rows.append(done - self._done)
        self._done = done
        self.total_rows = total
        self._last = now
        if self.allowance_seconds is None or done >= total or done == 0:
            return
        if now - self._start < min(self.sample_seconds, self.allowance_seconds):
            return
        projected = self.projected_first_call_seconds()
        if projected > self.allowance_seconds:
            raise StopSampling(f"first call projected at {projected:.0f} s after {done} of {total} rows")

    @property
    def done_rows(self) -> int:
        return self._done

    def projected_steady_seconds(self, cpu: bool = False) -> float:
        """Estimate a compiled call's full wall (or CPU) time from the blocks done.

        The first block carries compilation, so it is left out when later blocks exist. With
        one block only, the estimate includes that overhead and errs high.
        """
        seconds = self.block_cpu_seconds if cpu else self.block_seconds
        first = 1 if sum(self.block_rows[1:]) > 0 else 0
        rows = sum(self.block_rows[first:])
        if rows == 0:
            raise ValueError("no Hessian row has finished, so nothing can be extrapolated")
        return sum(seconds[first:]) / rows * self.total_rows

    def projected_first_call_seconds(self) -> float:
        """Estimate the whole first call: the first block as measured, the rest at the later blocks' rate."""
        steady = self.projected_steady_seconds()
        if sum(self.block_rows[1:]) == 0:
            return steady
        return self.block_seconds[0] + steady * (1 - self.block_rows[0] / self.total_rows)


def allocate_hessian(n_params: int, dtype: str) -> np.ndarray:
    """Allocate the P × P result and touch every page, so its memory counts from the start.

    ``np.empty`` only reserves address space; without the fill, a run stopped early would
    report a peak that leaves out most of the dense matrix.
    """
    out = np.empty((n_params, n_params), dtype=dtype)
    out.fill(0)
    return out


def fill_by_blocks(
    compute_rows: Callable[[np.ndarray], np.ndarray],
    n_params: int,
    block_size: int,
    clock: BlockClock | None,
    out: np.ndarray,
) -> np.ndarray:
    """Fill ``out`` (P × P) with Hessian rows, ``block_size`` rows per call.

    ``compute_rows(indices)`` returns H[indices, :], of shape (k, P): the products H·e_i
    for the basis vectors e_i, which are rows as well as columns because H is symmetric.
    Every block has the same size, so a compiled block is traced once: the last block
    starts at P - k and recomputes a few rows instead of being shorter. A
    :class:`StopSampling` from the clock propagates with ``out`` attached as its
    ``partial_rows``, of which rows 0 to ``clock.done_rows - 1`` are finished.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size}")
    block_size = min(block_size, n_params)
    if clock is not None:
        clock.start()
    for start in range(0, n_params, block_size):
        first = min(start, n_params - block_size)
        indices = np.arange(first, first + block_size)
        out[first : first + block_size] = compute_rows(indices)
        if clock is not None:
            try:
                clock.tick(min(start + block_size, n_params), n_params)
            except StopSampling as stop:
                stop.partial_rows = out
                raise
    return out
