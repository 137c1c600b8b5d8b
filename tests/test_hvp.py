"""Batched Hessian-vector products: determinism, point chunking and agreement with the dense Hessian."""

from __future__ import annotations

import numpy as np
import pytest

from hessian_core.hessian_methods import compute_hessian
from hessian_core.hvp import HessianVectorProduct
from hessian_core.loss import PoissonLoss
from hessian_core.network import glorot_uniform_theta
from hessian_core.settings import Settings


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def problem():
    loss = PoissonLoss.from_settings(Settings(width=8, n_interior=40, n_boundary=24))
    theta = glorot_uniform_theta(loss.layout, 0) + np.random.default_rng(0).normal(scale=0.1, size=loss.n_params)
    vectors = np.random.default_rng(1).normal(size=(loss.n_params, 4))
    return loss, theta, vectors


@pytest.fixture(scope="module")
def operators(problem):
    """Return a function giving one HessianVectorProduct per (term, chunk_size), built once."""
    loss, theta, _ = problem
    built = {}

    def get(term: str, chunk_size: int | None = None) -> HessianVectorProduct:
        if (term, chunk_size) not in built:
            built[term, chunk_size] = HessianVectorProduct(loss, theta, term=term, chunk_size=chunk_size)
        return built[term, chunk_size]

    return get


@pytest.mark.parametrize("term", ["total", "pde", "boundary"])
def test_repeated_products_identical(problem, operators, term):
    _, _, vectors = problem
    product = operators(term)
    assert np.array_equal(product.matmat(vectors), product.matmat(vectors))


@pytest.mark.parametrize("term", ["total", "pde", "boundary"])
def test_chunked_products_match_single_batch(problem, operators, term):
    _, _, vectors = problem
    single = operators(term).matmat(vectors)
    # 40 interior points in chunks of 16 leave a last chunk of 8, weighted by its size.
    chunked = operators(term, 16).matmat(vectors)
    assert relative_difference(chunked, single) <= 1e-12


def test_products_match_dense_hessian(problem, operators):
    loss, theta, vectors = problem
    dense = compute_hessian(loss, theta, "tf-hessians")
    for term, matrix in (("total", dense.matrix), ("pde", dense.pde), ("boundary", dense.boundary)):
        products = operators(term).matmat(vectors)
        assert relative_difference(products, matrix @ vectors) <= 1e-10, term


def test_products_match_finite_differences(problem, operators):
    loss, theta, vectors = problem
    epsilon = 1e-5
    direction = vectors[:, 0]
    plus = loss.value_and_gradient(theta + epsilon * direction)[3].numpy()
    minus = loss.value_and_gradient(theta - epsilon * direction)[3].numpy()
    product = operators("total").matvec(direction)
    assert relative_difference(product, (plus - minus) / (2 * epsilon)) <= 1e-6


def test_operator_shape_and_product_count(problem):
    loss, theta, vectors = problem
    product = HessianVectorProduct(loss, theta)
    operator = product.as_linear_operator()
    assert product.shape == operator.shape == (loss.n_params, loss.n_params)
    result = operator.matmat(vectors)
    assert result.dtype == np.float64
    assert result.shape == vectors.shape
    assert operator.matvec(vectors[:, 0]).shape == (loss.n_params,)
    assert product.n_products == vectors.shape[1] + 1


def test_invalid_arguments_rejected(problem):
    loss, theta, _ = problem
    with pytest.raises(ValueError, match="term must be one of"):
        HessianVectorProduct(loss, theta, term="interior")
    with pytest.raises(ValueError, match="chunk_size"):
        HessianVectorProduct(loss, theta, chunk_size=0)
    with pytest.raises(ValueError, match="rows"):
        HessianVectorProduct(loss, theta).matmat(np.ones((3, 1)))
