"""NaN and infinite values: θ, dense Hessians, products, spectra, Lanczos and training.

Every check raises ``NonFiniteError`` (or ``TrainingDivergedError`` in training) and names
where the value appeared. The expected index, column or product number comes from an
independent reference: the θ entry the test poisoned, a nested-tape Hessian, or an operator
that counts its own products.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from hessian_core import spectrum as spectrum_module
from hessian_core.checks import NonFiniteError
from hessian_core.density import slq_density
from hessian_core.hessian_methods import DENSE_METHODS, compute_hessian
from hessian_core.hvp import HessianVectorProduct
from hessian_core.lanczos import lanczos_eigenpairs
from hessian_core.loss import PoissonLoss
from hessian_core.network import glorot_uniform_theta
from hessian_core.settings import Settings
from hessian_core.spectrum import dense_spectrum, spectrum_statistics, term_statistics
from hessian_core.trace import hutchinson_trace
from hessian_core.training import TrainingDivergedError, train

# 2-4-4-1 tanh network, P = 37, float64 unless a test sets another dtype.
SMALL = dict(hidden_layers=2, width=4, n_interior=40, n_boundary=24, adam_steps=0, lbfgs_steps=0)
OVERFLOWING_UNIT = 3
OUTPUT_WEIGHT = 1e160


@pytest.fixture(scope="module")
def small_loss() -> PoissonLoss:
    return PoissonLoss.from_settings(Settings(**SMALL))


@pytest.fixture(scope="module")
def overflowing_theta(small_loss) -> np.ndarray:
    """A finite float64 θ whose Hessian overflows away from the first columns.

    Hidden unit k of layer 2 gets zero incoming weights and bias, so its output tanh(0) = 0
    keeps u finite, and an outgoing weight of 1e160. The derivatives of u with respect to
    that unit's incoming weights then reach about 1e160, so their Gauss-Newton block JᵀJ
    (about 1e320) overflows float64, while every column of layer 1 stays finite.
    """
    layout = small_loss.layout
    theta = glorot_uniform_theta(layout, 0)
    theta += np.random.default_rng(0).normal(scale=0.1, size=theta.shape)
    kernel_2, bias_2, kernel_3 = layout.blocks[2], layout.blocks[3], layout.blocks[4]
    assert (kernel_2.name, bias_2.name, kernel_3.name) == ("layer 2 kernel", "layer 2 bias", "layer 3 kernel")
    unit = OVERFLOWING_UNIT
    theta[kernel_2.offset : kernel_2.stop].reshape(kernel_2.shape)[:, unit] = 0.0
    theta[bias_2.offset + unit] = 0.0
    theta[kernel_3.offset + unit] = OUTPUT_WEIGHT
    assert np.all(np.isfinite(theta))
    return theta


@pytest.fixture(scope="module")
def nested_tape_first_bad_columns(small_loss, overflowing_theta) -> dict[str, int | None]:
    """First column with NaN or inf of the PDE and boundary Hessians, from nested GradientTapes.

    This is the textbook Hessian (``tape.jacobian`` of ``tape.gradient``), independent of
    every method in ``hessian_methods``. Its row c, the derivative of gradient entry c, is
    column c of the symmetric Hessian. Overflowing intermediates break that symmetry, so
    the rows are searched, as each method computes column c on its own.
    """
    theta = tf.constant(overflowing_theta)
    first_bad = {}
    for term, function in (("PDE term", small_loss.pde_loss), ("boundary term", small_loss.boundary_loss)):
        with tf.GradientTape(persistent=True) as outer:
            outer.watch(theta)
            with tf.GradientTape() as inner:
                inner.watch(theta)
                value = function(theta)
            gradient = inner.gradient(value, theta)
        matrix = outer.jacobian(gradient, theta, experimental_use_pfor=False).numpy()
        bad_columns = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
        first_bad[term] = int(bad_columns[0]) if bad_columns.size else None
    return first_bad


class PoisonedOperator:
    """Diagonal operator diag(1, ..., P) whose products from number ``first_bad`` on contain NaN.

    It counts its own products (1-based, column by column), so the expected product number
    does not come from the code under test.
    """

    def __init__(self, dimension: int, first_bad: int) -> None:
        self.shape = (dimension, dimension)
        self.diagonal = np.arange(1.0, dimension + 1.0)
        self.first_bad = first_bad
        self.products = 0

    def matmat(self, vectors: np.ndarray) -> np.ndarray:
        result = self.diagonal[:, None] * vectors
        for column in range(vectors.shape[1]):
            self.products += 1
            if self.products >= self.first_bad:
                result[3, column] = np.nan
        return result


# --- θ with NaN or inf ------------------------------------------------------------------------


def test_error_type_is_value_and_floating_point():
    assert issubclass(NonFiniteError, FloatingPointError)
    assert issubclass(NonFiniteError, ValueError)


@pytest.mark.parametrize("method", DENSE_METHODS)
def test_hessian_nan_theta_named_before_start(small_loss, method):
    theta = glorot_uniform_theta(small_loss.layout, 0)
    theta[20] = np.nan
    progress_calls = []
    with pytest.raises(NonFiniteError) as caught:
        compute_hessian(small_loss, theta, method, progress=lambda done, total: progress_calls.append(done))
    error = caught.value
    assert error.index == 20
    assert error.parameter == small_loss.layout.describe_index(20)
    assert f"index 20 ({small_loss.layout.describe_index(20)})" in str(error)
    assert "θ file" in str(error)
    # Rejected before the first column: no progress was reported.
    assert progress_calls == []


def test_hessian_float32_cast_overflow_named():
    loss = PoissonLoss.from_settings(Settings(**SMALL, dtype="float32"))
    theta = glorot_uniform_theta(loss.layout, 0).astype(np.float64)
    # Finite in float64, but above float32's maximum of about 3.4e38.
    theta[5] = 1e39
    with pytest.raises(NonFiniteError) as caught:
        compute_hessian(loss, theta)
    assert caught.value.index == 5
    assert caught.value.value == np.inf
    assert "in float32" in str(caught.value)


def test_hvp_rejects_nan_theta(small_loss):
    theta = glorot_uniform_theta(small_loss.layout, 0)
    theta[-1] = np.inf
    with pytest.raises(NonFiniteError) as caught:
        HessianVectorProduct(small_loss, theta)
    assert caught.value.index == small_loss.n_params - 1
    assert caught.value.parameter == "layer 3 bias [0]"


def test_training_rejects_nan_initial_theta():
    settings = Settings(**{**SMALL, "adam_steps": 3})
    theta = glorot_uniform_theta(PoissonLoss.from_settings(settings).layout, 0)
    theta[7] = np.nan
    with pytest.raises(NonFiniteError) as caught:
        train(settings, initial_theta=theta)
    assert caught.value.index == 7
    assert "initial θ" in str(caught.value)


# --- Dense Hessians that overflow ---------------------------------------------------------------


def test_reference_hessian_overflows(small_loss, nested_tape_first_bad_columns):
    # The premise of the tests below: the textbook Hessian at this θ is not finite, and its
    # first bad column lies past layer 1, so a wrong index of 0 cannot pass.
    first_bad = nested_tape_first_bad_columns["PDE term"]
    assert first_bad is not None
    assert first_bad >= small_loss.layout.layer_slice(2).start


@pytest.mark.parametrize("method", DENSE_METHODS)
def test_hessian_overflow_names_column_and_block(small_loss, overflowing_theta, nested_tape_first_bad_columns, method):
    with pytest.raises(NonFiniteError) as caught:
        compute_hessian(small_loss, overflowing_theta, method)
    error = caught.value
    message = str(error)
    # Every method computes the PDE term first and checks it first.
    expected = nested_tape_first_bad_columns["PDE term"]
    assert error.index == expected
    assert error.parameter == small_loss.layout.describe_index(expected)
    assert f"column {expected} ({error.parameter}) of the PDE term" in message
    assert np.isnan(error.value) or np.isinf(error.value)
    assert "smaller learning rate" in message
    if method == "forward-over-reverse":
        layer = small_loss.layout.block_of(expected).layer
        assert "in the block of columns" in message
        assert f"of layer {layer}" in message
    elif method == "jacobian-pfor":
        assert "in the block of columns" in message
    elif method == "tf-hessians":
        assert "single tf.hessians call" in message
    elif method == "reverse-over-reverse":
        assert "by its own reverse sweep" in message
    else:
        assert f"column {expected} of the residual Jacobian" in message


def test_hessian_overflow_without_split_terms(small_loss, overflowing_theta, nested_tape_first_bad_columns):
    with pytest.raises(NonFiniteError) as caught:
        compute_hessian(small_loss, overflowing_theta, split_terms=False)
    candidates = [c for c in nested_tape_first_bad_columns.values() if c is not None]
    assert caught.value.index == min(candidates)
    assert "of the total loss" in str(caught.value)


# --- Products in the matrix-free estimators -------------------------------------------------------


def test_lanczos_nan_product_named():
    operator = PoisonedOperator(30, first_bad=5)
    with pytest.raises(NonFiniteError) as caught:
        lanczos_eigenpairs(operator, k=2, which="LA")
    assert caught.value.product == 5
    assert caught.value.index == 3
    assert "Operator product 5 of Lanczos (LA) contains NaN in row 3" in str(caught.value)
    assert operator.products == 5


def test_slq_nan_product_named():
    operator = PoisonedOperator(30, first_bad=5)
    # Two runs advance together, so Lanczos step 3 computes products 5 and 6.
    with pytest.raises(NonFiniteError) as caught:
        slq_density(operator, n_runs=2, n_steps=10)
    assert caught.value.product == 5
    assert "product 5 of stochastic Lanczos quadrature" in str(caught.value)
    assert operator.products == 6


def test_hutchinson_nan_product_named():
    operator = PoisonedOperator(30, first_bad=5)
    with pytest.raises(NonFiniteError) as caught:
        hutchinson_trace(operator, n_probes=8, block_size=8)
    assert caught.value.product == 5
    assert "product 5 of Hutchinson's trace estimator" in str(caught.value)


def test_lanczos_overflowing_hvp_names_parameter(small_loss, overflowing_theta):
    operator = HessianVectorProduct(small_loss, overflowing_theta)
    with pytest.raises(NonFiniteError) as caught:
        lanczos_eigenpairs(operator, k=2, which="LA")
    error = caught.value
    assert error.product == 1
    assert error.parameter == small_loss.layout.describe_index(error.index)
    assert f"Hessian-vector product 1 of Lanczos (LA)" in str(error)
    assert f"in row {error.index} ({error.parameter})" in str(error)


# --- Dense spectrum -------------------------------------------------------------------------------


def test_dense_spectrum_inf_matrix_named():
    matrix = np.diag([1.0, 2.0, 3.0, 4.0])
    matrix[2, 1] = matrix[1, 2] = np.inf
    with pytest.raises(NonFiniteError) as caught:
        dense_spectrum(matrix, top_k=1)
    assert caught.value.index == 1
    assert caught.value.value == np.inf
    assert "The matrix contains inf in column 1" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_term_statistics_names_term():
    with pytest.raises(NonFiniteError, match="The boundary Hessian contains NaN in column 0"):
        term_statistics(np.eye(3), np.full((3, 3), np.nan))


def test_statistics_reject_infinite_eigenvalue():
    with pytest.raises(NonFiniteError) as caught:
        spectrum_statistics([1.0, -np.inf, 2.0])
    # Sorted ascending, -inf comes first.
    assert caught.value.index == 0
    assert caught.value.value == -np.inf


def test_dense_spectrum_checks_returned_eigenvectors(monkeypatch):
    from hessian_core import tridiagonal

    real_apply_q = tridiagonal.TridiagonalForm.apply_q

    def apply_q_with_nan(self, vectors):
        result = real_apply_q(self, vectors)
        result[0, :] = np.nan
        return result

    monkeypatch.setattr(tridiagonal.TridiagonalForm, "apply_q", apply_q_with_nan)
    with pytest.raises(NonFiniteError, match="top eigenpair 0 contains NaN"):
        dense_spectrum(np.diag([1.0, 2.0, 3.0]), top_k=1, bottom_k=0)


# --- Eigensolver that does not converge --------------------------------------------------------------


def clustered_matrix() -> np.ndarray:
    """Symmetric 103 × 103 matrix with 40 eigenvalues within 0.04 of 1 and three outliers."""
    eigenvalues = np.concatenate([1.0 + 1e-3 * np.arange(40), np.linspace(2.0, 3.0, 60), [10.0, 10.5, 11.0]])
    q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((eigenvalues.size, eigenvalues.size)))
    matrix = (q * eigenvalues) @ q.T
    return (matrix + matrix.T) / 2


def test_unconverged_lanczos_reports_budget_and_honest_residuals():
    matrix = clustered_matrix()
    max_products = 60
    result = lanczos_eigenpairs(matrix, k=8, which="LA", tol=1e-14, ncv=20, max_products=max_products, seed=0)
    assert not result.converged
    # Some but not all pairs converged, so the residual checks below are not empty.
    assert 1 <= result.eigenvalues.size < 8
    # The message names the products ARPACK spent (the residual products came after it).
    spent = result.n_products - result.eigenvalues.size
    assert f"after {spent} products" in result.message
    assert f"max_products={max_products}" in result.message
    assert "raise max_products or ncv (now 20)" in result.message
    # Each returned pair's residual is the true one, recomputed here in float64.
    for value, vector, reported in zip(result.eigenvalues, result.eigenvectors.T, result.residual_norms):
        true_residual = np.linalg.norm(matrix @ vector - value * vector)
        assert reported == pytest.approx(true_residual, rel=1e-9, abs=1e-13)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-10)


# --- Training --------------------------------------------------------------------------------------


def test_learning_rate_10_diverges_with_step():
    settings = Settings(**{**SMALL, "adam_steps": 200, "learning_rate": 10.0})
    loss = PoissonLoss.from_settings(settings)
    # The limit's scale, computed here: the first step's loss is the loss at the initial θ,
    # and the zero network's loss is w_pde · mean(f²) because u ≡ 0 on every point.
    first_loss = loss.evaluate(glorot_uniform_theta(loss.layout, settings.seed)).total
    zero_network_loss = settings.pde_weight * float(np.mean(np.square(loss.points.source)))
    expected_limit = 1e4 * max(first_loss, zero_network_loss)

    seen = []
    with pytest.raises(TrainingDivergedError) as caught:
        train(settings, callback=seen.append)
    error = caught.value
    assert error.phase == "adam"
    assert error.step == len(seen) + 1
    assert f"adam step {error.step}" in str(error)
    assert "lower the learning rate (now 10)" in str(error)
    assert error.limit == pytest.approx(expected_limit, rel=1e-10)
    assert error.value > error.limit
    # Every step before it stayed below the limit.
    assert all(step.loss <= error.limit for step in seen)


def test_moderate_learning_rate_not_flagged():
    result = train(Settings(**{**SMALL, "adam_steps": 100, "learning_rate": 0.1}))
    assert len(result.history) == 100
    assert result.loss < result.history[0].loss
