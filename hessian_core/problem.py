"""The 2D Poisson problem on [-1, 1]^2 and its collocation points.

.. math::

    \\Delta u = f, \\quad f(x, y) = -\\tfrac{\\pi^2}{2}\\,\\sin\\tfrac{\\pi(x+1)}{2}\\,\\sin\\tfrac{\\pi(y+1)}{2},
    \\qquad u = 0 \\text{ on the boundary},

with exact solution :math:`u(x, y) = \\sin(\\pi(x+1)/2)\\,\\sin(\\pi(y+1)/2)`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import qmc

from .settings import Settings

DOMAIN = (-1.0, 1.0)


def exact_solution(points: np.ndarray) -> np.ndarray:
    """Evaluate the exact solution u at points of shape (N, 2); returns shape (N,)."""
    x, y = points[:, 0], points[:, 1]
    return np.sin(np.pi * (x + 1) / 2) * np.sin(np.pi * (y + 1) / 2)


def source_term(points: np.ndarray) -> np.ndarray:
    """Evaluate the right-hand side f = Δu at points of shape (N, 2); returns shape (N,)."""
    return -(np.pi**2 / 2) * exact_solution(points)


@dataclass(frozen=True)
class CollocationPoints:
    """Interior and boundary points of one run, in the dtype of the analysis.

    Attributes
    ----------
    interior : ndarray, shape (N_pde, 2)
    boundary : ndarray, shape (N_bc, 2)
    source : ndarray, shape (N_pde,)
        f at the interior points.
    """

    interior: np.ndarray
    boundary: np.ndarray
    source: np.ndarray


def sample_interior(n: int, method: str, rng: np.random.Generator) -> np.ndarray:
    """Draw n points in the open square (-1, 1)^2 by ``uniform``, ``sobol`` or ``lhs``."""
    if method == "uniform":
        unit = rng.uniform(0.0, 1.0, size=(n, 2))
    elif method == "sobol":
        sampler = qmc.Sobol(d=2, scramble=True, seed=rng)
        with warnings.catch_warnings():
            # Sobol balance properties need a power of two; other counts are still valid points.
            warnings.simplefilter("ignore", UserWarning)
            unit = sampler.random(n)
    elif method == "lhs":
        unit = qmc.LatinHypercube(d=2, seed=rng).random(n)
    else:
        raise ValueError(f"unknown interior sampling {method!r}; use uniform, sobol or lhs")
    return DOMAIN[0] + (DOMAIN[1] - DOMAIN[0]) * unit


def sample_boundary(n: int, method: str, rng: np.random.Generator) -> np.ndarray:
    """Draw n boundary points.

    ``edges`` spreads them uniformly over the whole perimeter (all four edges).
    ``top-edge`` reproduces the reference question's sampling: x uniform in [0, 1] and
    y = 1 only, which leaves the other three edges unconstrained.
    """
    if method == "edges":
        # A uniform position along the perimeter of length 8, walked edge by edge.
        s = rng.uniform(0.0, 8.0, size=n)
        edge = np.minimum((s // 2).astype(int), 3)
        t = s - 2.0 * edge - 1.0
        x = np.select([edge == 0, edge == 1, edge == 2], [t, np.ones(n), -t], -np.ones(n))
        y = np.select([edge == 0, edge == 1, edge == 2], [-np.ones(n), t, np.ones(n)], -t)
        return np.stack([x, y], axis=1)
    if method == "top-edge":
        return np.stack([rng.uniform(0.0, 1.0, size=n), np.ones(n)], axis=1)
    raise ValueError(f"unknown boundary sampling {method!r}; use edges or top-edge")


def collocation_points(settings: Settings) -> CollocationPoints:
    """Draw the seeded interior and boundary points for ``settings``.

    Interior and boundary points come from independent streams spawned from
    ``settings.seed``, so changing one count leaves the other set unchanged.
    """
    interior_rng, boundary_rng = np.random.default_rng(settings.seed).spawn(2)
    interior = sample_interior(settings.n_interior, settings.sampling, interior_rng)
    boundary = sample_boundary(settings.n_boundary, settings.boundary, boundary_rng)
    dtype = np.dtype(settings.dtype)
    return CollocationPoints(
        interior=interior.astype(dtype),
        boundary=boundary.astype(dtype),
        source=source_term(interior).astype(dtype),
    )


def test_grid(points_per_side: int) -> np.ndarray:
    """Return a uniform grid over [-1, 1]^2, boundary included, as shape (n*n, 2), x fastest."""
    axis = np.linspace(DOMAIN[0], DOMAIN[1], points_per_side)
    xx, yy = np.meshgrid(axis, axis)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


# pytest would otherwise collect test_grid as a test when a test module imports it.
test_grid.__test__ = False
