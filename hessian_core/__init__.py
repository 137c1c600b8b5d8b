"""PINN Hessian Lab core: a Poisson PINN as a function of one flat θ, and the curvature of its loss.

Nothing here imports Streamlit; the app only draws what these modules compute.
"""

import os

# TensorFlow's C++ start-up messages would bury the command line's one-line errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .settings import Settings, SettingsError  # noqa: E402

__all__ = ["MemoryBudgetError", "Settings", "SettingsError", "compute_hessian", "hessian"]

# Exported lazily, so that importing the package for its settings does not import TensorFlow.
_LAZY_EXPORTS = {
    "hessian": ".generic_hessian",
    "compute_hessian": ".hessian_methods",
    "MemoryBudgetError": ".memory",
}


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        import importlib

        return getattr(importlib.import_module(_LAZY_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
