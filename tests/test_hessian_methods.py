"""Dense Hessians of the PINN loss: every method against the others, finite differences and structure."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from hessian_core.gauss_newton import gauss_newton_matrix
from hessian_core.generic_hessian import hessian
from hessian_core.hessian_methods import DENSE_METHODS, compute_hessian
from hessian_core.loss import PoissonLoss
from hessian_core.memory import TENSORFLOW_WORKSPACE_BYTES, MemoryBudgetError
from hessian_core.network import glorot_uniform_theta
from hessian_core.pipeline import hessian_stage
from hessian_core.settings import Settings
from hessian_core.structured_hessian import StructuredPinnHessian, activation_derivatives

EXACT_METHODS = ("forward-over-reverse", "jacobian-pfor", "tf-hessians", "reverse-over-reverse")

# Two float64 problems: the question's 2-10-10-10-1 tanh network, and a 2-6-6-1 sin network
# with unequal loss weights. Few points keep the slow reference methods fast.
SHAPES = {
    "width10": Settings(width=10, n_interior=48, n_boundary=32, adam_steps=0, lbfgs_steps=0),
    "sin2x6": Settings(
        width=6, hidden_layers=2, activation="sin", n_interior=40, n_boundary=24, pde_weight=2.0, boundary_weight=0.5
    ),
}


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def perturbed_theta(loss: PoissonLoss, seed: int = 0) -> np.ndarray:
    """Glorot θ plus noise, so that biases are non-zero and every path is exercised."""
    theta = glorot_uniform_theta(loss.layout, seed, loss.dtype.name)
    noise = np.random.default_rng(seed).normal(scale=0.1, size=theta.shape)
    return (theta + noise).astype(loss.dtype.as_numpy_dtype)


@pytest.fixture(scope="module")
def problems():
    """Loss, θ and each method's result per shape, computed once for the module."""
    built = {}
    for name, settings in SHAPES.items():
        loss = PoissonLoss.from_settings(settings)
        theta = perturbed_theta(loss)
        results = {}
        for method in EXACT_METHODS + ("gauss-newton",):
            # reverse-over-reverse runs one eager sweep per row. On the larger shape it runs
            # for the total only, which halves the module's slowest step.
            split = not (method == "reverse-over-reverse" and name == "width10")
            results[method] = compute_hessian(loss, theta, method, split_terms=split)
        built[name] = SimpleNamespace(loss=loss, theta=theta, results=results)
    return built


# (shape, method) pairs that computed the PDE and boundary parts.
SPLIT_CASES = [
    (shape, method)
    for shape in SHAPES
    for method in EXACT_METHODS + ("gauss-newton",)
    if not (method == "reverse-over-reverse" and shape == "width10")
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", EXACT_METHODS[1:])
def test_exact_methods_agree(problems, shape, method):
    problem = problems[shape]
    reference = problem.results["forward-over-reverse"]
    other = problem.results[method]
    assert relative_difference(other.matrix, reference.matrix) <= 1e-10
    if other.pde is not None:
        assert relative_difference(other.pde, reference.pde) <= 1e-10
        assert relative_difference(other.boundary, reference.boundary) <= 1e-10


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("method", EXACT_METHODS)
def test_symmetric_before_symmetrisation(problems, shape, method):
    result = problems[shape].results[method]
    assert 0.0 <= result.record.asymmetry <= 1e-12
    assert np.array_equal(result.matrix, result.matrix.T)


@pytest.mark.parametrize(("shape", "method"), SPLIT_CASES)
def test_parts_exactly_symmetric(problems, shape, method):
    result = problems[shape].results[method]
    assert np.array_equal(result.pde, result.pde.T)
    assert np.array_equal(result.boundary, result.boundary.T)


@pytest.mark.parametrize(("shape", "method"), SPLIT_CASES)
def test_parts_sum_to_total(problems, shape, method):
    result = problems[shape].results[method]
    assert relative_difference(result.pde + result.boundary, result.matrix) <= 1e-13


@pytest.mark.parametrize("shape", SHAPES)
def test_columns_match_finite_differences(problems, shape):
    # Central differences of the gradient: (∇L(θ + εv) − ∇L(θ − εv)) / 2ε = H v + O(ε²).
    problem = problems[shape]
    H = problem.results["forward-over-reverse"].matrix
    rng = np.random.default_rng(1)
    epsilon = 1e-5
    for _ in range(3):
        direction = rng.normal(size=problem.loss.n_params)
        plus = problem.loss.value_and_gradient(problem.theta + epsilon * direction)[3].numpy()
        minus = problem.loss.value_and_gradient(problem.theta - epsilon * direction)[3].numpy()
        finite_difference = (plus - minus) / (2 * epsilon)
        assert relative_difference(H @ direction, finite_difference) <= 1e-6


@pytest.mark.parametrize("shape", SHAPES)
def test_generic_entry_point_matches(problems, shape):
    problem = problems[shape]
    variable = tf.Variable(problem.theta)
    generic = hessian(lambda: problem.loss(variable), [variable], method="forward-over-reverse", block_size=131)
    reference = problem.results["forward-over-reverse"].matrix
    assert relative_difference(generic.matrix, reference) <= 1e-10
    assert generic.record.asymmetry <= 1e-12


@pytest.mark.parametrize("shape", SHAPES)
def test_gauss_newton_output_block_equals_hessian(problems, shape):
    # Both residuals are linear in the output layer's kernel and bias, so their second
    # derivatives vanish there and H and G agree on that block up to rounding.
    problem = problems[shape]
    output = problem.loss.layout.layer_slice(problem.loss.layout.n_layers)
    exact = problem.results["forward-over-reverse"].matrix[output, output]
    gauss_newton = problem.results["gauss-newton"].matrix[output, output]
    assert relative_difference(gauss_newton, exact) <= 1e-12


@pytest.mark.parametrize("shape", SHAPES)
def test_gauss_newton_is_positive_semidefinite(problems, shape):
    problem = problems[shape]
    result = problem.results["gauss-newton"]
    for matrix in (result.matrix, result.pde, result.boundary):
        eigenvalues = np.linalg.eigvalsh(matrix)
        assert eigenvalues.min() >= -1e-12 * eigenvalues.max()
    assert result.record.approximation is True
    assert "approximation" in result.record.note


def test_gauss_newton_differs_from_hessian(problems):
    # The residual-curvature term H − G is not zero at a generic θ (the Hessian is indefinite).
    problem = problems["width10"]
    exact = problem.results["forward-over-reverse"].matrix
    gauss_newton = gauss_newton_matrix(problem.loss, problem.theta).matrix
    assert relative_difference(gauss_newton, exact) > 1e-3
    assert np.linalg.eigvalsh(exact).min() < 0


def test_chunked_structured_matches_single_batch(problems):
    problem = problems["width10"]
    single = StructuredPinnHessian(problem.loss, problem.theta)
    chunked = StructuredPinnHessian(problem.loss, problem.theta, chunk_points=20)
    layer = 2
    indices = np.arange(0, 110, 9)
    for one, many in zip(single.block_rows(layer, indices), chunked.block_rows(layer, indices)):
        assert relative_difference(many, one) <= 1e-12


def test_structured_gradient_matches_tape(problems):
    problem = problems["sin2x6"]
    pde, boundary = StructuredPinnHessian(problem.loss, problem.theta).gradient()
    _, _, _, gradient = problem.loss.value_and_gradient(problem.theta)
    assert relative_difference(pde + boundary, gradient.numpy()) <= 1e-13


@pytest.mark.parametrize("activation", ["tanh", "sin", "softplus", "gelu"])
def test_activation_derivatives_match_autodiff(activation):
    a = tf.constant(np.linspace(-3.0, 3.0, 41))
    with tf.GradientTape() as t3:
        t3.watch(a)
        with tf.GradientTape() as t2:
            t2.watch(a)
            with tf.GradientTape() as t1:
                t1.watch(a)
                values = activation_derivatives(activation, a)
            first = t1.gradient(values[0], a)
        second = t2.gradient(first, a)
    third = t3.gradient(second, a)
    _, d1, d2, d3, _ = values
    np.testing.assert_allclose(d1.numpy(), first.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(d2.numpy(), second.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(d3.numpy(), third.numpy(), rtol=0, atol=1e-12)
    with tf.GradientTape() as t4:
        t4.watch(a)
        d3_again = activation_derivatives(activation, a)[3]
    np.testing.assert_allclose(values[4].numpy(), t4.gradient(d3_again, a).numpy(), rtol=0, atol=1e-12)


def test_forward_over_reverse_other_activations():
    for activation in ("softplus", "gelu"):
        settings = Settings(width=5, hidden_layers=2, activation=activation, n_interior=20, n_boundary=12)
        loss = PoissonLoss.from_settings(settings)
        theta = perturbed_theta(loss, seed=3)
        structured = compute_hessian(loss, theta, "forward-over-reverse", split_terms=False)
        reference = compute_hessian(loss, theta, "tf-hessians", split_terms=False)
        assert relative_difference(structured.matrix, reference.matrix) <= 1e-10, activation


def test_float32_asymmetry_reported_and_matrix_symmetric():
    settings = Settings(width=10, dtype="float32", n_interior=48, n_boundary=32)
    loss = PoissonLoss.from_settings(settings)
    theta = perturbed_theta(loss)
    result = compute_hessian(loss, theta)
    assert result.record.dtype == "float32"
    assert result.matrix.dtype == np.float64
    # float32 rounding leaves a small but measurable asymmetry in the diagonal blocks.
    assert 0.0 < result.record.asymmetry < 1e-4
    assert np.array_equal(result.matrix, result.matrix.T)
    reference = compute_hessian(PoissonLoss.from_settings(settings.replace(dtype="float64")), theta.astype(np.float64))
    assert relative_difference(result.matrix, reference.matrix) <= 1e-4


def test_progress_reaches_all_columns(problems):
    problem = problems["sin2x6"]
    calls = []
    compute_hessian(problem.loss, problem.theta, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (problem.loss.n_params, problem.loss.n_params)
    done = [d for d, _ in calls]
    assert done == sorted(done)


def test_without_split_terms_parts_are_none(problems):
    problem = problems["sin2x6"]
    result = compute_hessian(problem.loss, problem.theta, split_terms=False)
    assert result.pde is None
    assert result.boundary is None
    assert relative_difference(result.matrix, problem.results["forward-over-reverse"].matrix) <= 1e-13


def test_record_fields(problems):
    record = problems["width10"].results["forward-over-reverse"].record.to_dict()
    assert record["method"] == "forward-over-reverse"
    assert record["dtype"] == "float64"
    assert record["n_products"] == problems["width10"].loss.n_params
    assert record["block_size"] >= 1
    assert record["seconds"] > 0
    assert record["approximation"] is False
    assert record["layout"]["widths"] == [2, 10, 10, 10, 1]
    json.dumps(record)


def test_dense_result_over_budget_rejected():
    loss = PoissonLoss.from_settings(Settings(width=50, n_interior=16, n_boundary=16))
    theta = glorot_uniform_theta(loss.layout, 0)
    with pytest.raises(MemoryBudgetError) as caught:
        compute_hessian(loss, theta, memory_budget_gib=0.1)
    message = str(caught.value)
    assert f"{3 * 8 * 5301**2 + TENSORFLOW_WORKSPACE_BYTES:,} bytes" in message
    assert "memory budget of 102.4 MiB" in message
    assert "--hessian-method matrix-free" in message


def test_matrix_free_rejected(problems):
    problem = problems["sin2x6"]
    with pytest.raises(ValueError, match="HessianVectorProduct"):
        compute_hessian(problem.loss, problem.theta, "matrix-free")


def test_unknown_method_rejected(problems):
    problem = problems["sin2x6"]
    with pytest.raises(ValueError, match="must be one of"):
        compute_hessian(problem.loss, problem.theta, "finite-differences")


def test_wrong_theta_shape_rejected(problems):
    problem = problems["sin2x6"]
    with pytest.raises(ValueError, match=r"θ must have shape"):
        compute_hessian(problem.loss, problem.theta[:-1])


def test_reverse_over_reverse_rejected_above_limit():
    loss = PoissonLoss.from_settings(Settings(width=30, n_interior=8, n_boundary=8))
    theta = glorot_uniform_theta(loss.layout, 0)
    with pytest.raises(ValueError, match="force=True"):
        compute_hessian(loss, theta, "reverse-over-reverse")


def test_dense_methods_listed():
    assert set(DENSE_METHODS) == {"forward-over-reverse", "reverse-over-reverse", "jacobian-pfor", "tf-hessians", "gauss-newton"}


def test_pipeline_writes_hessian_files(tmp_path):
    settings = Settings(width=4, hidden_layers=2, n_interior=16, n_boundary=8, dtype="float32")
    loss = PoissonLoss.from_settings(settings)
    theta = perturbed_theta(loss)
    messages = []
    returned = hessian_stage(settings, SimpleNamespace(theta=theta), tmp_path, messages.append)
    total = np.load(tmp_path / "hessian.npy")
    pde = np.load(tmp_path / "hessian_pde.npy")
    boundary = np.load(tmp_path / "hessian_boundary.npy")
    record = json.loads((tmp_path / "hessian.json").read_text())
    assert total.shape == (loss.n_params, loss.n_params)
    assert np.array_equal(total, returned.matrix)
    assert np.allclose(pde + boundary, total, rtol=0, atol=1e-12 * np.abs(total).max())
    assert record["dtype"] == "float32"
    assert record["method"] == "forward-over-reverse"
    for key in ("asymmetry", "block_size", "seconds", "n_products"):
        assert key in record, key
    assert [b["name"] for b in record["layout"]["blocks"]][:2] == ["layer 1 kernel", "layer 1 bias"]
    assert any("done" in m for m in messages)


def test_pipeline_matrix_free_writes_nothing(tmp_path):
    settings = Settings(width=4, hidden_layers=2, n_interior=16, n_boundary=8, hessian_method="matrix-free")
    assert hessian_stage(settings, SimpleNamespace(theta=None), tmp_path, lambda text: None) is None
    assert list(tmp_path.iterdir()) == []
