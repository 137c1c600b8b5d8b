"""Analysis stages after training, shared by the CLI: Hessian, then spectrum and landscape."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from .settings import Settings

logger = logging.getLogger(__name__)

Report = Callable[[str], None]


def run_stages(settings: Settings, result, out: Path, report: Report) -> None:
    """Run every analysis stage for a trained ``result`` and write its files into ``out``."""
    hessian = hessian_stage(settings, result, out, report)
    spectrum_stage(settings, result, hessian, out, report)


def hessian_stage(settings: Settings, result, out: Path, report: Report):
    """Compute the dense Hessian (unless the method is matrix-free) and write its files.

    Writes ``hessian.npy`` (total), ``hessian_pde.npy``, ``hessian_boundary.npy`` (float64,
    P × P) and ``hessian.json`` (the :class:`~hessian_core.hessian_methods.HessianRecord`:
    method, dtype, seconds, block size, products, asymmetry before symmetrisation and the
    block layout). Returns the :class:`~hessian_core.hessian_methods.HessianResult`, or
    None for ``hessian_method="matrix-free"``, which writes nothing.

    Raises
    ------
    MemoryBudgetError
        Before any large allocation, when the three dense matrices and one block of work
        do not fit in ``settings.memory_budget_gib``.
    """
    import json

    from .files import write_atomic, write_npy_atomic
    from .hessian_methods import compute_hessian
    from .loss import PoissonLoss

    if settings.hessian_method == "matrix-free":
        report("[hessian] matrix-free: no dense Hessian; the spectrum uses Hessian-vector products")
        return None

    # The seed in the settings draws the same collocation points that training used.
    loss = PoissonLoss.from_settings(settings)
    n = loss.n_params
    report(f"[hessian] {settings.hessian_method}, {n:,} × {n:,} in {settings.dtype}, budget {settings.memory_budget_gib:g} GiB")
    last_tenth = [-1]

    def on_progress(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth > last_tenth[0]:
            last_tenth[0] = tenth
            report(f"[hessian] {done:,} of {total:,} columns")

    hessian = compute_hessian(
        loss,
        result.theta,
        method=settings.hessian_method,
        memory_budget_gib=settings.memory_budget_gib,
        split_terms=True,
        progress=on_progress,
    )
    write_npy_atomic(out / "hessian.npy", hessian.matrix)
    write_npy_atomic(out / "hessian_pde.npy", hessian.pde)
    write_npy_atomic(out / "hessian_boundary.npy", hessian.boundary)
    write_atomic(out / "hessian.json", json.dumps(hessian.record.to_dict(), indent=2) + "\n")
    report(
        f"[hessian] done in {hessian.record.seconds:.1f} s, block of {hessian.record.block_size} columns, "
        f"asymmetry {hessian.record.asymmetry:.2e} before symmetrisation"
    )
    return hessian


def spectrum_stage(settings: Settings, result, hessian, out: Path, report: Report) -> None:
    """Compute the spectrum and the loss landscape and write their files.

    Writes ``eigenvalues.npy``, ``spectrum.json`` and ``landscape.npz`` (described in
    :mod:`hessian_core.spectrum_files`). The dense path (``eigh``) runs when ``hessian``
    is a dense result and ``settings.spectrum == "dense"``; otherwise Lanczos runs on
    Hessian-vector products, so ``hessian=None`` (``hessian_method="matrix-free"``) works
    at any size. The loss is rebuilt from ``settings``, whose seed fixes the collocation
    points that training used.
    """
    from .loss import PoissonLoss
    from .spectrum_files import write_spectrum_files

    loss = PoissonLoss.from_settings(settings)
    write_spectrum_files(settings, loss, result.theta, hessian, out, report)
