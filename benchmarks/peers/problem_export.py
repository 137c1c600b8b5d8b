"""Write the benchmark problem to an .npz file that every framework reads.

The collocation points come from ``hessian_core.problem.collocation_points`` and θ from
``hessian_core.network.glorot_uniform_theta``, both with the same seed as a default run of
the project, all in float64. Workers cast them to their dtype, so the JAX, PyTorch and
TensorFlow entries differentiate the same loss at the same θ.

Usage: ``python benchmarks/peers/problem_export.py --width 50 --out problem-w50.npz``
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hessian_core.network import NetworkLayout, glorot_uniform_theta  # noqa: E402
from hessian_core.problem import collocation_points  # noqa: E402
from hessian_core.settings import Settings  # noqa: E402

logger = logging.getLogger(__name__)


def export_problem(width: int, path: Path, seed: int = 0, n_interior: int = 1000, n_boundary: int = 1000) -> Path:
    """Write points, source, θ and layer widths for a 2-W-W-W-1 tanh network to ``path``."""
    settings = Settings(width=width, seed=seed, n_interior=n_interior, n_boundary=n_boundary, dtype="float64")
    layout = NetworkLayout.from_settings(settings)
    points = collocation_points(settings)
    theta = glorot_uniform_theta(layout, settings.seed, "float64")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        widths=np.asarray(layout.widths),
        interior=points.interior,
        source=points.source,
        boundary=points.boundary,
        theta=theta,
        activation=np.asarray(settings.activation),
        pde_weight=np.asarray(settings.pde_weight),
        boundary_weight=np.asarray(settings.boundary_weight),
        seed=np.asarray(seed),
    )
    logger.info("wrote width %d (%d parameters) to %s", width, layout.n_params, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, required=True, help="neurons per hidden layer (3 hidden layers)")
    parser.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the points and of θ (default 0)")
    parser.add_argument("--n-interior", type=int, default=1000, help="interior collocation points (default 1000)")
    parser.add_argument("--n-boundary", type=int, default=1000, help="boundary collocation points (default 1000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    export_problem(args.width, args.out, args.seed, args.n_interior, args.n_boundary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
