"""Forward Laplacian propagation against nested GradientTapes, in float64."""

import numpy as np
import pytest
import tensorflow as tf

from hessian_core.laplacian import forward_laplacian, nested_tape_laplacian
from hessian_core.network import NetworkLayout, glorot_uniform_theta, split_parameters

RELATIVE_TOLERANCE = 1e-12  # float64


@pytest.mark.parametrize("activation", ["tanh", "sin", "softplus", "gelu"])
@pytest.mark.parametrize("widths", [(2, 10, 1), (2, 10, 10, 10, 1), (2, 50, 50, 50, 1), (2, 7, 13, 1)])
def test_forward_laplacian_matches_nested_tapes(activation, widths):
    layout = NetworkLayout.from_widths(widths)
    rng = np.random.default_rng(3)
    # Nonzero biases, so every activation is evaluated away from its symmetric point.
    theta = glorot_uniform_theta(layout, seed=1) + 0.1 * rng.standard_normal(layout.n_params)
    params = split_parameters(tf.constant(theta, dtype=tf.float64), layout)
    points = tf.constant(rng.uniform(-1, 1, size=(64, 2)), dtype=tf.float64)

    u_forward, laplacian_forward = forward_laplacian(params, points, activation)
    u_reference, laplacian_reference = nested_tape_laplacian(params, points, activation)

    scale = max(np.abs(laplacian_reference.numpy()).max(), 1e-300)
    assert laplacian_forward.dtype == tf.float64
    assert np.abs(u_forward.numpy() - u_reference.numpy()).max() <= RELATIVE_TOLERANCE * np.abs(u_reference.numpy()).max()
    assert np.abs(laplacian_forward.numpy() - laplacian_reference.numpy()).max() <= RELATIVE_TOLERANCE * scale
