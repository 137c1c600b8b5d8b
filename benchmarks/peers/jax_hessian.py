"""The benchmark Hessian written in JAX, as a JAX user would write it.

Two entries:

``jax-hessian``
    The one-liner ``jax.jit(jax.hessian(loss))``. ``jax.hessian`` is forward over reverse
    (``jacfwd`` of ``jacrev``), vectorised over all P basis vectors at once, so its working
    memory is P times the activations of one gradient.
``jax-hvp-blocked``
    The Hessian-vector product ``jax.jvp`` of ``jax.grad``, vmapped over a block of basis
    vectors and compiled once with ``jax.jit``; the Hessian is filled block by block.

Both use the same loss: the network's value, input gradient and Laplacian travel forward
through the layers together (no nested differentiation in x), exactly as
``hessian_core.laplacian.forward_laplacian`` does.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from common import BlockClock, Problem, allocate_hessian, fill_by_blocks

logger = logging.getLogger(__name__)

# Basis vectors per vmapped block; the working memory grows linearly with it.
# NOTE: 128 was not tuned on an idle machine; 64 to 256 are the sensible range.
BLOCK_SIZE = 128


def _import_jax(dtype: str):
    import jax

    # JAX disables float64 by default and would downcast float64 inputs to float32.
    jax.config.update("jax_enable_x64", dtype == "float64")
    jax.config.update("jax_platforms", "cpu")
    return jax


def make_loss(problem: Problem) -> Callable:
    """Build L(θ) = w_pde·mean((Δu − f)²) + w_bc·mean(u²) as a pure JAX function of flat θ."""
    jax = _import_jax(problem.dtype)
    jnp = jax.numpy

    interior = jnp.asarray(problem.interior)
    source = jnp.asarray(problem.source)
    boundary = jnp.asarray(problem.boundary)
    layer_slices = problem.layer_slices()
    n_interior = problem.interior.shape[0]

    def unflatten(theta):
        return [(theta[kernel].reshape(shape), theta[bias]) for kernel, shape, bias in layer_slices]

    def laplacian(params, points):
        # The streams are the value z, ∂z/∂x, ∂z/∂y and Δz. For tanh, σ' = 1 − t² and σ'' = −2 t σ'.
        kernel, bias = params[0]
        a = points @ kernel + bias
        t = jnp.tanh(a)
        d1 = 1.0 - t * t
        d2 = -2.0 * t * d1
        z, dz_dx, dz_dy = t, d1 * kernel[0], d1 * kernel[1]
        lap_z = d2 * (kernel[0] * kernel[0] + kernel[1] * kernel[1])

        for kernel, bias in params[1:-1]:
            stacked = jnp.concatenate([z, dz_dx, dz_dy, lap_z], axis=0) @ kernel
            a = stacked[:n_interior] + bias
            da_dx = stacked[n_interior : 2 * n_interior]
            da_dy = stacked[2 * n_interior : 3 * n_interior]
            lap_a = stacked[3 * n_interior :]
            t = jnp.tanh(a)
            d1 = 1.0 - t * t
            d2 = -2.0 * t * d1
            z, dz_dx, dz_dy = t, d1 * da_dx, d1 * da_dy
            lap_z = d2 * (da_dx * da_dx + da_dy * da_dy) + d1 * lap_a

        kernel, _ = params[-1]
        return (lap_z @ kernel)[:, 0]

    def output(params, points):
        z = points
        for kernel, bias in params[:-1]:
            z = jnp.tanh(z @ kernel + bias)
        kernel, bias = params[-1]
        return (z @ kernel + bias)[:, 0]

    def loss(theta):
        params = unflatten(theta)
        residual = laplacian(params, interior) - source
        return problem.pde_weight * jnp.mean(residual**2) + problem.boundary_weight * jnp.mean(
            output(params, boundary) ** 2
        )

    return loss


def make_one_liner(problem: Problem) -> Callable[[BlockClock | None], np.ndarray]:
    """Return a routine computing the Hessian with ``jax.jit(jax.hessian(loss))``."""
    jax = _import_jax(problem.dtype)
    hessian = jax.jit(jax.hessian(make_loss(problem)))
    theta = jax.numpy.asarray(problem.theta)

    def compute(clock: BlockClock | None) -> np.ndarray:
        return np.asarray(hessian(theta))

    return compute


def make_blocked(problem: Problem, block_size: int = BLOCK_SIZE) -> Callable[[BlockClock | None], np.ndarray]:
    """Return a routine filling the Hessian by vmapped ``jvp``-of-``grad`` blocks.

    Each compiled call takes the indices of k basis vectors and returns H[indices, :].
    """
    jax = _import_jax(problem.dtype)
    jnp = jax.numpy
    loss = make_loss(problem)
    gradient = jax.grad(loss)
    theta = jnp.asarray(problem.theta)
    n_params = problem.n_params

    @jax.jit
    def rows(theta, indices):
        basis = jax.nn.one_hot(indices, n_params, dtype=theta.dtype)

        def hvp(vector):
            return jax.jvp(gradient, (theta,), (vector,))[1]

        return jax.vmap(hvp)(basis)

    def compute(clock: BlockClock | None) -> np.ndarray:
        out = allocate_hessian(n_params, problem.dtype)
        return fill_by_blocks(lambda indices: np.asarray(rows(theta, indices)), n_params, block_size, clock, out)

    return compute


ENTRIES = {
    "jax-hessian": make_one_liner,
    "jax-hvp-blocked": make_blocked,
}


def framework_version() -> str:
    import jax

    return f"JAX {jax.__version__}"
