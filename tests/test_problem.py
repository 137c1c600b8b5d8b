"""Collocation points: domains, edges, seeds and sampling methods."""

import numpy as np
import pytest

from hessian_core.problem import collocation_points, sample_boundary, sample_interior, test_grid
from hessian_core.settings import Settings


@pytest.mark.parametrize("method", ["uniform", "sobol", "lhs"])
def test_interior_points_lie_in_square(method):
    points = sample_interior(500, method, np.random.default_rng(0))
    assert points.shape == (500, 2)
    assert points.min() >= -1.0
    assert points.max() <= 1.0
    # Each quadrant gets a fair share: a gross sampling bug would leave one nearly empty.
    for sx in (-1, 1):
        for sy in (-1, 1):
            share = np.mean((np.sign(points[:, 0]) == sx) & (np.sign(points[:, 1]) == sy))
            assert 0.18 < share < 0.32


def test_edges_sampling_covers_all_four_edges():
    points = sample_boundary(4000, "edges", np.random.default_rng(1))
    on_boundary = np.isclose(np.abs(points), 1.0).any(axis=1)
    assert on_boundary.all()
    for axis in (0, 1):
        for side in (-1.0, 1.0):
            share = np.mean(np.isclose(points[:, axis], side))
            assert 0.2 < share < 0.3


def test_top_edge_sampling_reproduces_reference_question():
    points = sample_boundary(300, "top-edge", np.random.default_rng(2))
    assert np.all(points[:, 1] == 1.0)
    assert points[:, 0].min() >= 0.0
    assert points[:, 0].max() <= 1.0


def test_points_are_seeded_and_independent_per_kind():
    base = collocation_points(Settings(n_interior=50, n_boundary=40, seed=7))
    again = collocation_points(Settings(n_interior=50, n_boundary=40, seed=7))
    more_boundary = collocation_points(Settings(n_interior=50, n_boundary=80, seed=7))
    other_seed = collocation_points(Settings(n_interior=50, n_boundary=40, seed=8))
    assert np.array_equal(base.interior, again.interior)
    assert np.array_equal(base.boundary, again.boundary)
    assert np.array_equal(base.interior, more_boundary.interior)
    assert not np.array_equal(base.interior, other_seed.interior)


def test_points_take_the_settings_dtype():
    points = collocation_points(Settings(n_interior=5, n_boundary=5, dtype="float32"))
    assert points.interior.dtype == np.float32
    assert points.source.dtype == np.float32


def test_grid_includes_the_corners():
    grid = test_grid(3)
    assert grid.shape == (9, 2)
    assert [-1.0, -1.0] in grid.tolist()
    assert [1.0, 1.0] in grid.tolist()
