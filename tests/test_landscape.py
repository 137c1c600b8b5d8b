"""Loss landscape slices and surfaces on a small network, against direct loss evaluations."""

import numpy as np
import pytest

from hessian_core.hvp import HessianVectorProduct
from hessian_core.landscape import (
    cache_key,
    check_surface_memory,
    landscape_parameters,
    line_slices,
    random_direction,
    slice_coordinates,
    surface,
)
from hessian_core.loss import PoissonLoss
from hessian_core.memory import MemoryBudgetError
from hessian_core.network import NetworkLayout, glorot_uniform_theta
from hessian_core.problem import CollocationPoints, source_term

LAYOUT = NetworkLayout.from_widths((2, 6, 5, 1))


def make_loss():
    rng = np.random.default_rng(21)
    interior = rng.uniform(-1, 1, size=(30, 2))
    boundary = np.stack([rng.uniform(-1, 1, 16), np.repeat([-1.0, 1.0], 8)], axis=1)
    points = CollocationPoints(interior=interior, boundary=boundary, source=source_term(interior))
    return PoissonLoss(LAYOUT, "tanh", points, 1.0, 2.0, "float64")


LOSS = make_loss()
THETA = glorot_uniform_theta(LAYOUT, seed=4)


def dense_hessian(term="total"):
    hvp = HessianVectorProduct(LOSS, THETA, term=term)
    matrix = hvp.matmat(np.eye(LAYOUT.n_params))
    return (matrix + matrix.T) / 2


@pytest.fixture(scope="module")
def eigenpairs():
    values, vectors = np.linalg.eigh(dense_hessian())
    # Top two and the most negative.
    return values[[-1, -2, 0]], vectors[:, [-1, -2, 0]]


STEP = 5e-3


@pytest.fixture(scope="module")
def slices(eigenpairs):
    # α = −2h, −h, 0, h, 2h with h = STEP: small enough for finite differences.
    values, vectors = eigenpairs
    return line_slices(LOSS, THETA, vectors, 2 * STEP, 5, eigenvalues=values)


def test_slice_at_zero_equals_loss_exactly(slices):
    reference = LOSS.evaluate(THETA)
    middle = 2
    assert slices.alphas[middle] == 0.0
    assert np.all(slices.total[:, middle] == reference.total)
    assert np.all(slices.pde[:, middle] == reference.pde)
    assert np.all(slices.boundary[:, middle] == reference.boundary)
    assert slices.loss_at_theta[0] == reference.total


def test_slice_second_derivative_is_eigenvalue(slices, eigenpairs):
    values, _ = eigenpairs
    total = slices.total
    # Central difference with step h: truncation error about h² · |fourth derivative| / 12.
    second = (total[:, 1] - 2 * total[:, 2] + total[:, 3]) / STEP**2
    np.testing.assert_allclose(second, values, rtol=1e-3, atol=1e-4)
    # Richardson extrapolation of steps h and 2h cancels the h² term.
    wide = (total[:, 0] - 2 * total[:, 2] + total[:, 4]) / (2 * STEP) ** 2
    np.testing.assert_allclose((4 * second - wide) / 3, values, rtol=1e-6, atol=1e-6)


def test_term_curvatures_add_up_to_eigenvalue(slices, eigenpairs):
    values, vectors = eigenpairs
    np.testing.assert_allclose(slices.curvatures[1] + slices.curvatures[2], values, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(slices.curvatures[0], values)
    assert slices.n_products == 2 * vectors.shape[1]


def test_quadratic_model_is_second_order(slices, eigenpairs):
    _, vectors = eigenpairs
    gradient = LOSS.value_and_gradient(THETA)[3].numpy()
    np.testing.assert_allclose(slices.gradient_projections[0], gradient @ vectors, rtol=1e-10, atol=1e-14)
    for name in ("total", "pde", "boundary"):
        gap = np.abs(getattr(slices, name) - getattr(slices, f"quadratic_{name}"))
        # The model error is O(α³): at most a modest constant times |α|³ at every α.
        assert np.all(gap <= 50 * np.abs(slices.alphas) ** 3 + 1e-13)


def test_surface_matches_pointwise_loss(eigenpairs):
    _, vectors = eigenpairs
    result = surface(LOSS, THETA, vectors[:, 0], vectors[:, 1], 0.4, 5)
    for i, alpha in enumerate(result.alphas):
        for j, beta in enumerate(result.betas):
            expected = LOSS.evaluate(THETA + alpha * vectors[:, 0] + beta * vectors[:, 1])
            assert result.total[i, j] == pytest.approx(expected.total, rel=1e-12)
            assert result.pde[i, j] == pytest.approx(expected.pde, rel=1e-12)
    assert result.total[2, 2] == LOSS.evaluate(THETA).total


def test_surface_refuses_grid_over_budget():
    with pytest.raises(MemoryBudgetError, match="coarser grid of at most") as error:
        check_surface_memory(LOSS, 401, memory_budget_gib=0.004)
    suggested = int(str(error.value).split("at most ")[1].split()[0])
    assert check_surface_memory(LOSS, suggested, memory_budget_gib=0.004) >= 1


def test_random_direction_per_neuron_norms():
    theta = THETA + 0.1  # non-zero biases, so the bias entries matter
    for include_biases in (True, False):
        direction = random_direction(LAYOUT, theta, seed=7, include_biases=include_biases)
        for layer in range(1, LAYOUT.n_layers + 1):
            kernel, bias = LAYOUT.blocks[2 * layer - 2], LAYOUT.blocks[2 * layer - 1]
            d_kernel = direction[kernel.offset : kernel.stop].reshape(kernel.shape)
            t_kernel = theta[kernel.offset : kernel.stop].reshape(kernel.shape)
            d_bias, t_bias = direction[bias.offset : bias.stop], theta[bias.offset : bias.stop]
            for j in range(kernel.shape[1]):
                # Neuron j is column j of the (fan_in, fan_out) kernel, with bias j.
                if include_biases:
                    d_norm = np.hypot(np.linalg.norm(d_kernel[:, j]), d_bias[j])
                    t_norm = np.hypot(np.linalg.norm(t_kernel[:, j]), t_bias[j])
                else:
                    d_norm, t_norm = np.linalg.norm(d_kernel[:, j]), np.linalg.norm(t_kernel[:, j])
                assert d_norm == pytest.approx(t_norm, rel=1e-12)
            if not include_biases:
                assert np.all(d_bias == 0.0)


def test_random_direction_is_seeded():
    first = random_direction(LAYOUT, THETA, seed=1)
    assert np.array_equal(first, random_direction(LAYOUT, THETA, seed=1))
    assert not np.array_equal(first, random_direction(LAYOUT, THETA, seed=2))


def test_cache_key_changes_with_every_setting():
    directions = np.stack([random_direction(LAYOUT, THETA, seed=s) for s in (1, 2)], axis=1)
    base = dict(loss=LOSS, theta=THETA, directions=directions, landscape_range=0.5, points=5,
                direction_kind="random", direction_seed=1, include_biases=True)
    variants = {
        "range": dict(base, landscape_range=0.7),
        "points": dict(base, points=7),
        "directions": dict(base, directions=directions[:, ::-1]),
        "kind": dict(base, direction_kind="eigenvector"),
        "seed": dict(base, direction_seed=3),
        "biases": dict(base, include_biases=False),
        "theta": dict(base, theta=THETA + 1e-9),
        "loss": dict(base, loss=PoissonLoss(LAYOUT, "tanh", LOSS.points, 1.0, 3.0, "float64")),
    }
    base_key = cache_key(landscape_parameters(**base))
    keys = {name: cache_key(landscape_parameters(**values)) for name, values in variants.items()}
    assert base_key not in keys.values()
    assert len(set(keys.values())) == len(keys)
    assert base_key == cache_key(landscape_parameters(**dict(base, theta=THETA.copy())))


def test_recomputed_slices_follow_new_settings(slices, eigenpairs):
    values, vectors = eigenpairs
    wider = line_slices(LOSS, THETA, vectors, 0.8, 5, eigenvalues=values)
    assert slices.cache_key == cache_key(slices.parameters)
    assert wider.cache_key != slices.cache_key
    assert wider.parameters["landscape_range"] == 0.8
    np.testing.assert_array_equal(wider.alphas, slice_coordinates(0.8, 5))
    assert wider.total[0, 0] == pytest.approx(LOSS.evaluate(THETA - 0.8 * vectors[:, 0]).total, rel=1e-12)


def test_slice_coordinates_are_symmetric():
    alphas = slice_coordinates(2.0, 41)
    assert alphas[20] == 0.0
    assert alphas[0] == -2.0
    assert alphas[-1] == 2.0
    with pytest.raises(ValueError, match="landscape_range"):
        slice_coordinates(0.0, 5)
