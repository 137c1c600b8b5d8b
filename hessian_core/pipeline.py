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

    Returns the Hessian result, or None for ``hessian_method="matrix-free"``.
    """
    raise NotImplementedError("the Hessian stage is being built")


def spectrum_stage(settings: Settings, result, hessian, out: Path, report: Report) -> None:
    """Compute the spectrum and the loss landscape and write their files."""
    raise NotImplementedError("the spectrum stage is being built")
