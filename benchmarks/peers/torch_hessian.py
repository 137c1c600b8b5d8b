"""The benchmark Hessian written in PyTorch with ``torch.func``, as a PyTorch user would write it.

Entries:

``torch-hessian``
    The one-liner ``torch.func.hessian(loss)(θ)``, which is ``jacfwd`` of ``jacrev``
    vectorised over all P basis vectors at once.
``torch-hvp-blocked``
    Hessian-vector products ``torch.func.jvp`` of ``torch.func.grad`` (forward over
    reverse), vmapped over a block of basis vectors; the Hessian is filled block by block.
``torch-vjp-blocked``
    The same blocks by reverse over reverse: one ``torch.func.vjp`` of the gradient, whose
    pullback is vmapped over the basis vectors. H is symmetric, so vᵀH = (Hv)ᵀ.

The loss propagates the network's value, input gradient and Laplacian forward through the
layers, exactly as ``hessian_core.laplacian.forward_laplacian`` does.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from common import BlockClock, Problem, allocate_hessian, fill_by_blocks

logger = logging.getLogger(__name__)

# Basis vectors per vmapped block, the same as the JAX entry's. The working memory grows
# linearly with it.
BLOCK_SIZE = 128


def make_loss(problem: Problem) -> Callable:
    """Build L(θ) = w_pde·mean((Δu − f)²) + w_bc·mean(u²) as a PyTorch function of flat θ."""
    import torch

    interior = torch.from_numpy(problem.interior)
    source = torch.from_numpy(problem.source)
    boundary = torch.from_numpy(problem.boundary)
    layer_slices = problem.layer_slices()
    n_interior = problem.interior.shape[0]

    def unflatten(theta):
        return [(theta[kernel].reshape(shape), theta[bias]) for kernel, shape, bias in layer_slices]

    def laplacian(params, points):
        # The streams are the value z, ∂z/∂x, ∂z/∂y and Δz. For tanh, σ' = 1 − t² and σ'' = −2 t σ'.
        kernel, bias = params[0]
        t = torch.tanh(points @ kernel + bias)
        d1 = 1.0 - t * t
        d2 = -2.0 * t * d1
        z, dz_dx, dz_dy = t, d1 * kernel[0], d1 * kernel[1]
        lap_z = d2 * (kernel[0] * kernel[0] + kernel[1] * kernel[1])

        for kernel, bias in params[1:-1]:
            stacked = torch.cat([z, dz_dx, dz_dy, lap_z], dim=0) @ kernel
            a = stacked[:n_interior] + bias
            da_dx = stacked[n_interior : 2 * n_interior]
            da_dy = stacked[2 * n_interior : 3 * n_interior]
            lap_a = stacked[3 * n_interior :]
            t = torch.tanh(a)
            d1 = 1.0 - t * t
            d2 = -2.0 * t * d1
            z, dz_dx, dz_dy = t, d1 * da_dx, d1 * da_dy
            lap_z = d2 * (da_dx * da_dx + da_dy * da_dy) + d1 * lap_a

        kernel, _ = params[-1]
        return (lap_z @ kernel)[:, 0]

    def output(params, points):
        z = points
        for kernel, bias in params[:-1]:
            z = torch.tanh(z @ kernel + bias)
        kernel, bias = params[-1]
        return (z @ kernel + bias)[:, 0]

    def loss(theta):
        params = unflatten(theta)
        residual = laplacian(params, interior) - source
        return problem.pde_weight * torch.mean(residual**2) + problem.boundary_weight * torch.mean(
            output(params, boundary) ** 2
        )

    return loss


def make_one_liner(problem: Problem) -> Callable[[BlockClock | None], np.ndarray]:
    """Return a routine computing the Hessian with ``torch.func.hessian(loss)``."""
    import torch

    hessian = torch.func.hessian(make_loss(problem))
    theta = torch.from_numpy(problem.theta)

    def compute(clock: BlockClock | None) -> np.ndarray:
        with torch.no_grad():
            return hessian(theta).numpy()

    return compute


def make_blocked(
    problem: Problem, mode: str = "forward-over-reverse", block_size: int = BLOCK_SIZE
) -> Callable[[BlockClock | None], np.ndarray]:
    """Return a routine filling the Hessian by vmapped Hessian-vector products.

    ``mode`` is ``forward-over-reverse`` (``jvp`` of ``grad``) or ``reverse-over-reverse``
    (the pullback of ``grad``). PyTorch runs eagerly, so nothing is compiled and the first
    call costs about what later ones do.
    """
    import torch

    if mode not in ("forward-over-reverse", "reverse-over-reverse"):
        raise ValueError(f"mode must be forward-over-reverse or reverse-over-reverse, got {mode!r}")
    gradient = torch.func.grad(make_loss(problem))
    theta = torch.from_numpy(problem.theta)
    n_params = problem.n_params
    identity_rows = torch.eye(n_params, dtype=theta.dtype)

    def forward_over_reverse_rows(indices: np.ndarray) -> np.ndarray:
        def hvp(vector):
            return torch.func.jvp(gradient, (theta,), (vector,))[1]

        return torch.func.vmap(hvp)(identity_rows[indices]).numpy()

    def reverse_over_reverse_rows(indices: np.ndarray) -> np.ndarray:
        # The gradient's graph is built once per block; its pullback runs once per vector.
        _, pullback = torch.func.vjp(gradient, theta)
        return torch.func.vmap(pullback)(identity_rows[indices])[0].numpy()

    compute_rows = forward_over_reverse_rows if mode == "forward-over-reverse" else reverse_over_reverse_rows

    def compute(clock: BlockClock | None) -> np.ndarray:
        out = allocate_hessian(n_params, problem.dtype)
        with torch.no_grad():
            return fill_by_blocks(compute_rows, n_params, block_size, clock, out)

    return compute


def make_vjp_blocked(problem: Problem) -> Callable[[BlockClock | None], np.ndarray]:
    return make_blocked(problem, mode="reverse-over-reverse")


ENTRIES = {
    "torch-hessian": make_one_liner,
    "torch-hvp-blocked": make_blocked,
    "torch-vjp-blocked": make_vjp_blocked,
}


def framework_version() -> str:
    import torch

    return f"PyTorch {torch.__version__}"
