"""The TensorFlow entries of the peer benchmark: the dense Hessian methods of ``hessian_core``.

``tf-ours``
    ``compute_hessian(..., method="forward-over-reverse")``, the project's default, with
    its default memory budget. Every other entry is compared with it.
``tf-reverse-over-reverse``
    One reverse sweep per gradient entry, as the question's first attempt (a loop of
    ``tape.gradient``); ``force=True`` lifts the library's size limit.
``tf-jacobian-pfor``
    ``GradientTape.jacobian`` of the gradient with pfor, in the library's memory-bounded
    blocks; the question's later attempts took the whole Jacobian at once.
``tf-hessians``
    ``tf.hessians`` of the flat θ inside ``tf.function``.

Each entry requests the total Hessian only (``split_terms=False``), as the JAX and
PyTorch entries compute it.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from common import BlockClock, Problem

logger = logging.getLogger(__name__)

METHODS = {
    "tf-ours": "forward-over-reverse",
    "tf-reverse-over-reverse": "reverse-over-reverse",
    "tf-jacobian-pfor": "jacobian-pfor",
    "tf-hessians": "tf-hessians",
}


def make_loss(problem: Problem):
    """Build the project's ``PoissonLoss`` on the exported points, in the problem's dtype."""
    from hessian_core.loss import PoissonLoss
    from hessian_core.network import NetworkLayout
    from hessian_core.problem import CollocationPoints

    points = CollocationPoints(interior=problem.interior, boundary=problem.boundary, source=problem.source)
    return PoissonLoss(
        NetworkLayout.from_widths(problem.widths),
        problem.activation,
        points,
        pde_weight=problem.pde_weight,
        boundary_weight=problem.boundary_weight,
        dtype=problem.dtype,
    )


def make_method(method: str) -> Callable[[Problem], Callable[[BlockClock | None], np.ndarray]]:
    """Return a builder for the entry running ``compute_hessian`` with ``method``."""

    def build(problem: Problem) -> Callable[[BlockClock | None], np.ndarray]:
        from hessian_core.hessian_methods import compute_hessian

        loss = make_loss(problem)

        def compute(clock: BlockClock | None) -> np.ndarray:
            # The library logs its own progress when given none; the clock replaces that.
            if clock is not None:
                clock.start()
            result = compute_hessian(
                loss,
                problem.theta,
                method=method,
                split_terms=False,
                progress=clock.tick if clock is not None else _ignore_progress,
                force=True,
            )
            return result.matrix

        return compute

    return build


def _ignore_progress(done: int, total: int) -> None:
    return None


ENTRIES = {entry: make_method(method) for entry, method in METHODS.items()}


def framework_version() -> str:
    import tensorflow as tf

    return f"TensorFlow {tf.__version__}"
