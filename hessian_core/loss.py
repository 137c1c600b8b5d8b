"""The PINN loss of the Poisson problem as a function of the flat parameter vector θ.

.. math::

    L(\\theta) = w_{pde}\\,\\frac{1}{N_{pde}} \\sum_i (\\Delta u_\\theta(x_i) - f(x_i))^2
               + w_{bc}\\,\\frac{1}{N_{bc}} \\sum_j u_\\theta(x_j)^2 .

Both terms are available separately, weights included, so that their Hessians add up
to the Hessian of L.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .laplacian import forward_laplacian
from .network import NetworkLayout, network_output, split_parameters
from .problem import CollocationPoints, collocation_points, exact_solution
from .settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LossTerms:
    """Loss values at one θ, as Python floats; ``pde`` and ``boundary`` include their weights."""

    total: float
    pde: float
    boundary: float


class PoissonLoss:
    """The weighted PINN loss L(θ) = w_pde·mean((Δu − f)²) + w_bc·mean(u²).

    Parameters
    ----------
    layout : NetworkLayout
        Widths and parameter blocks of the MLP.
    activation : str
        Hidden activation: tanh, sin, softplus or gelu.
    points : CollocationPoints
        Interior points with f, and boundary points.
    pde_weight, boundary_weight : float
        Weights w_pde and w_bc of the two terms.
    dtype : str
        ``float32`` or ``float64``; θ passed to the methods must have this dtype.

    Notes
    -----
    Every method takes θ as a 1-D tensor of length ``layout.n_params``. The methods that
    take points default to the stored collocation points; passing a subset lets callers
    evaluate the loss in chunks (a chunk's mean weighted by its share of the points).
    """

    def __init__(
        self,
        layout: NetworkLayout,
        activation: str,
        points: CollocationPoints,
        pde_weight: float = 1.0,
        boundary_weight: float = 1.0,
        dtype: str = "float64",
    ) -> None:
        self.layout = layout
        self.activation = activation
        self.dtype = tf.as_dtype(dtype)
        self.points = points
        self.interior = tf.constant(points.interior, dtype=self.dtype)
        self.source = tf.constant(points.source, dtype=self.dtype)
        self.boundary = tf.constant(points.boundary, dtype=self.dtype)
        self.pde_weight = float(pde_weight)
        self.boundary_weight = float(boundary_weight)
        self._value_and_gradient = tf.function(self._value_and_gradient_eager, reduce_retracing=True)
        self._terms_compiled = tf.function(self.terms, reduce_retracing=True)

    @classmethod
    def from_settings(cls, settings: Settings, points: CollocationPoints | None = None) -> "PoissonLoss":
        """Build the loss for ``settings``, drawing its collocation points unless given."""
        return cls(
            NetworkLayout.from_settings(settings),
            settings.activation,
            points if points is not None else collocation_points(settings),
            settings.pde_weight,
            settings.boundary_weight,
            settings.dtype,
        )

    @property
    def n_params(self) -> int:
        return self.layout.n_params

    def parameters(self, theta: tf.Tensor) -> list[tuple[tf.Tensor, tf.Tensor]]:
        return split_parameters(theta, self.layout)

    def pde_residual(self, theta: tf.Tensor, interior=None, source=None) -> tf.Tensor:
        """Return Δu(x_i) − f(x_i) at the interior points, shape (N_pde,)."""
        interior = self.interior if interior is None else interior
        source = self.source if source is None else source
        _, laplacian = forward_laplacian(self.parameters(theta), interior, self.activation)
        return laplacian - source

    def boundary_residual(self, theta: tf.Tensor, boundary=None) -> tf.Tensor:
        """Return u(x_j) at the boundary points, shape (N_bc,)."""
        boundary = self.boundary if boundary is None else boundary
        return network_output(self.parameters(theta), boundary, self.activation)

    def pde_loss(self, theta: tf.Tensor, interior=None, source=None) -> tf.Tensor:
        """Return w_pde · mean((Δu − f)²) over the given interior points."""
        residual = self.pde_residual(theta, interior, source)
        return self.pde_weight * tf.reduce_mean(tf.square(residual))

    def boundary_loss(self, theta: tf.Tensor, boundary=None) -> tf.Tensor:
        """Return w_bc · mean(u²) over the given boundary points."""
        return self.boundary_weight * tf.reduce_mean(tf.square(self.boundary_residual(theta, boundary)))

    def terms(self, theta: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Return the weighted PDE and boundary terms as scalar tensors."""
        return self.pde_loss(theta), self.boundary_loss(theta)

    def __call__(self, theta: tf.Tensor) -> tf.Tensor:
        pde, boundary = self.terms(theta)
        return pde + boundary

    def _value_and_gradient_eager(self, theta: tf.Tensor):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            pde, boundary = self.terms(theta)
            total = pde + boundary
        return total, pde, boundary, tape.gradient(total, theta)

    def value_and_gradient(self, theta) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Return (L, PDE term, boundary term, ∇L) at θ, compiled with ``tf.function``."""
        return self._value_and_gradient(tf.convert_to_tensor(theta, dtype=self.dtype))

    def evaluate(self, theta) -> LossTerms:
        """Return the loss terms at θ as Python floats."""
        pde, boundary = self._terms_compiled(tf.convert_to_tensor(theta, dtype=self.dtype))
        pde, boundary = float(pde), float(boundary)
        return LossTerms(pde + boundary, pde, boundary)

    def predict(self, theta, points: np.ndarray) -> np.ndarray:
        """Evaluate u at points of shape (N, 2) as a NumPy array of shape (N,)."""
        params = self.parameters(tf.convert_to_tensor(theta, dtype=self.dtype))
        return network_output(params, tf.constant(points, dtype=self.dtype), self.activation).numpy()

    def residual_field(self, theta, points: np.ndarray) -> np.ndarray:
        """Evaluate the PDE residual Δu − f at arbitrary points of shape (N, 2)."""
        from .problem import source_term

        points_tensor = tf.constant(points, dtype=self.dtype)
        source = tf.constant(source_term(points), dtype=self.dtype)
        return self.pde_residual(tf.convert_to_tensor(theta, dtype=self.dtype), points_tensor, source).numpy()


def relative_l2_error(loss: PoissonLoss, theta, grid: np.ndarray) -> float:
    """Return ‖u_θ − u_exact‖₂ / ‖u_exact‖₂ over the points of ``grid``."""
    predicted = loss.predict(theta, grid).astype(np.float64)
    exact = exact_solution(grid)
    return float(np.linalg.norm(predicted - exact) / np.linalg.norm(exact))
