"""PINN Hessian Lab core: a Poisson PINN as a function of one flat θ, and the curvature of its loss.

Nothing here imports Streamlit; the app only draws what these modules compute.
"""

import os

# TensorFlow's C++ start-up messages would bury the command line's one-line errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .settings import Settings, SettingsError  # noqa: E402

__all__ = ["Settings", "SettingsError"]
