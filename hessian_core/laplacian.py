"""The network's value and Laplacian in x, propagated forward without nested tapes.

For a hidden layer z' = σ(a), a = W z + b, the gradient and Laplacian in the input x obey

.. math::

    \\nabla z' = \\sigma'(a) \\odot (W \\nabla z), \\qquad
    \\Delta z' = \\sigma''(a) \\odot \\lVert W \\nabla z \\rVert^2 + \\sigma'(a) \\odot (W \\Delta z),

so the PDE residual is a plain first-order function of θ, and its derivatives in θ need
one tape level less than the nested-tape form. ``nested_tape_laplacian`` is the slow
reference that the tests compare against.
"""

from __future__ import annotations

import tensorflow as tf

from .network import ACTIVATION_FUNCTIONS, network_output


def forward_laplacian(
    params: list[tuple[tf.Tensor, tf.Tensor]], points: tf.Tensor, activation: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """Return u and Δu = u_xx + u_yy at points of shape (N, 2), each of shape (N,).

    Value, the two partial derivatives and the Laplacian travel stacked as one
    ``(4N, width)`` tensor, so each layer costs a single matrix product.
    """
    sigma, sigma_derivatives = ACTIVATION_FUNCTIONS[activation]
    n = tf.shape(points)[0]

    # The first layer's input derivatives are constant: ∇x = I, Δx = 0.
    kernel, bias = params[0]
    a = tf.matmul(points, kernel) + bias
    da_dx = tf.broadcast_to(kernel[0], tf.shape(a))
    da_dy = tf.broadcast_to(kernel[1], tf.shape(a))
    d1, d2 = sigma_derivatives(a)
    z = sigma(a)
    dz_dx, dz_dy = d1 * da_dx, d1 * da_dy
    lap_z = d2 * (da_dx * da_dx + da_dy * da_dy)

    for kernel, bias in params[1:-1]:
        stacked = tf.matmul(tf.concat([z, dz_dx, dz_dy, lap_z], axis=0), kernel)
        a, da_dx, da_dy, lap_a = stacked[:n] + bias, stacked[n : 2 * n], stacked[2 * n : 3 * n], stacked[3 * n :]
        d1, d2 = sigma_derivatives(a)
        z = sigma(a)
        dz_dx, dz_dy = d1 * da_dx, d1 * da_dy
        lap_z = d2 * (da_dx * da_dx + da_dy * da_dy) + d1 * lap_a

    kernel, bias = params[-1]
    stacked = tf.matmul(tf.concat([z, lap_z], axis=0), kernel)
    u = stacked[:n, 0] + bias[0]
    lap_u = stacked[n:, 0]
    return u, lap_u


def nested_tape_laplacian(
    params: list[tuple[tf.Tensor, tf.Tensor]], points: tf.Tensor, activation: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """Return u and Δu by two nested ``GradientTape``s, as most PINN code writes it."""
    points = tf.convert_to_tensor(points)
    with tf.GradientTape() as outer:
        outer.watch(points)
        with tf.GradientTape() as inner:
            inner.watch(points)
            u = network_output(params, points, activation)
        grad_u = inner.gradient(u, points)
    # Each u_i depends only on points[i], so the batch Jacobian's diagonal is the Hessian in x.
    hessian_x = outer.batch_jacobian(grad_u, points)
    return u, hessian_x[:, 0, 0] + hessian_x[:, 1, 1]
