"""Training the PINN: Adam, then optionally L-BFGS-B from SciPy, on the flat θ."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.optimize
import tensorflow as tf

from .checks import check_finite_theta, format_value
from .loss import PoissonLoss, relative_l2_error
from .memory import GIB, MemoryBudgetError
from .network import NetworkLayout, glorot_uniform_theta
from .problem import CollocationPoints, collocation_points, test_grid
from .settings import Settings

logger = logging.getLogger(__name__)

# Adam's moment decay rates and denominator offset, as in Kingma and Ba (2015).
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-8


# Arrays of shape (points, width) alive per hidden layer during one compiled value-and-gradient:
# the four stacked streams of an interior point, their pre-activations, activation
# derivatives and the reverse sweep's copies; a boundary point carries the value stream only.
TRAINING_ARRAYS_PER_INTERIOR_POINT = 20
TRAINING_ARRAYS_PER_BOUNDARY_POINT = 4
# Graph tracing and TensorFlow's per-function buffers, measured at about 350 MiB above the
# post-import baseline for a 3 x 256 float32 network with 20,000 interior points.
TRAINING_FIXED_BYTES = 400 * 1024**2

# Adam steps run in one compiled call. Measured at the default size on 2 cores: 26 ms a
# step with one step per call, 18 ms with ten.
ADAM_STEPS_PER_CALL = 10

# Training counts as diverged once the loss exceeds this factor times its scale at the
# start: the larger of the first step's loss and the loss of the zero network (u ≡ 0).
# NOTE: a heuristic from a few runs, not a bound. With Adam on 2 × 6 and 3 × 20 tanh
# networks (float32 and float64, 300 steps), learning rates up to 0.1 stayed below 11
# times the first loss, and rate 10 crossed the limit at step 2. A finite loss below the
# limit is never flagged, however poor the fit.
DIVERGENCE_LOSS_FACTOR = 1e4


def estimate_training_bytes(settings: Settings) -> int:
    """Estimate the peak memory of training above TensorFlow's baseline, in bytes.

    The estimate is itemsize · width · hidden_layers · (20·N_pde + 4·N_bc) plus a fixed
    400 MiB, which bounded the peak resident memory measured for 3 × 256 and 6 × 128 networks
    with 20,000 points of each kind (``tests/test_memory_guard.py`` checks it).
    """
    itemsize = 4 if settings.dtype == "float32" else 8
    per_layer = (
        TRAINING_ARRAYS_PER_INTERIOR_POINT * settings.n_interior
        + TRAINING_ARRAYS_PER_BOUNDARY_POINT * settings.n_boundary
    )
    optimizer_state = 6 * settings.n_params * 8
    return itemsize * settings.width * settings.hidden_layers * per_layer + optimizer_state + TRAINING_FIXED_BYTES


def check_training_memory(settings: Settings) -> int:
    """Raise MemoryBudgetError if training ``settings`` would exceed the memory budget; return the estimate."""
    needed = estimate_training_bytes(settings)
    budget = int(settings.memory_budget_gib * GIB)
    if needed > budget:
        raise MemoryBudgetError(
            f"training {settings.n_interior} interior points through {settings.hidden_layers} hidden layers of "
            f"width {settings.width}",
            needed,
            budget,
            "use fewer interior points, a narrower network or float32, or raise the memory budget",
        )
    return needed


class TrainingDivergedError(RuntimeError):
    """The loss or its gradient became NaN or infinite during training.

    It stays a ``RuntimeError``, unlike ``hessian_core.checks.NonFiniteError`` (a
    ``ValueError``), because the command line reports a failed run with exit status 1 and a
    rejected input with status 2.

    Attributes
    ----------
    phase : str
        ``"adam"`` or ``"lbfgs"``.
    step : int
        The step (Adam) or evaluation (L-BFGS) at which the value stopped being finite.
    value : float
        The non-finite loss; for the gradient, NaN or ±inf standing for its non-finite entries.
    learning_rate : float
        Adam's learning rate in the run.
    quantity : str
        ``"loss"`` or ``"gradient"``.
    limit : float or None
        For a finite loss that grew too large, the limit it exceeded; None for a
        non-finite value.
    """

    def __init__(
        self, phase: str, step: int, value: float, learning_rate: float, quantity: str = "loss", limit: float | None = None
    ) -> None:
        if phase == "adam":
            advice = f"lower the learning rate (now {learning_rate:g}), for example to {learning_rate / 10:g}"
        else:
            advice = "train longer with Adam first, or lower the learning rate"
        if limit is None:
            description = f"the {quantity} became {format_value(value)} at {phase} step {step}"
        else:
            description = (
                f"the {quantity} grew to {value:.3g} at {phase} step {step}, above the limit {limit:.3g} "
                f"({DIVERGENCE_LOSS_FACTOR:g} times its scale at the start)"
            )
        super().__init__(f"training diverged: {description}; {advice}")
        self.phase = phase
        self.step = step
        self.value = float(value)
        self.learning_rate = learning_rate
        self.quantity = quantity
        self.limit = limit


@dataclass(frozen=True)
class TrainingStep:
    """Progress record passed to the callback after every step."""

    phase: str
    step: int
    total_steps: int
    loss: float
    pde_loss: float
    boundary_loss: float
    seconds: float


@dataclass
class TrainingResult:
    """A trained θ with its history and final figures.

    Attributes
    ----------
    theta : ndarray, shape (P,)
        Final parameters, in the dtype of the settings.
    history : list of TrainingStep
        One entry per Adam step and per L-BFGS iteration.
    relative_l2_error : float
        ‖u − u_exact‖₂ / ‖u_exact‖₂ on a ``test_grid`` × ``test_grid`` grid.
    """

    settings: Settings
    layout: NetworkLayout
    theta: np.ndarray
    history: list[TrainingStep]
    loss: float
    pde_loss: float
    boundary_loss: float
    relative_l2_error: float
    seconds: float
    lbfgs_message: str = ""
    initial_theta: np.ndarray = field(default=None, repr=False)

    def metrics(self) -> dict:
        return {
            "loss": self.loss,
            "pde_loss": self.pde_loss,
            "boundary_loss": self.boundary_loss,
            "relative_l2_error": self.relative_l2_error,
            "training_seconds": self.seconds,
            "adam_steps": self.settings.adam_steps,
            "lbfgs_iterations": sum(1 for s in self.history if s.phase == "lbfgs"),
            "lbfgs_message": self.lbfgs_message,
            "n_params": self.layout.n_params,
            "boundary_sampling": self.settings.boundary,
        }


ProgressCallback = Callable[[TrainingStep], None]


def train(
    settings: Settings,
    callback: ProgressCallback | None = None,
    points: CollocationPoints | None = None,
    initial_theta: np.ndarray | None = None,
) -> TrainingResult:
    """Train the PINN for ``settings``: ``adam_steps`` of Adam, then ``lbfgs_steps`` of L-BFGS-B.

    Parameters
    ----------
    settings : Settings
    callback : callable, optional
        Called with a :class:`TrainingStep` after every Adam step and L-BFGS iteration.
    points : CollocationPoints, optional
        Defaults to ``collocation_points(settings)``.
    initial_theta : ndarray, optional
        Defaults to the seeded Glorot-uniform θ.

    Raises
    ------
    MemoryBudgetError
        If the estimated training memory exceeds ``settings.memory_budget_gib``; checked
        before anything is allocated.
    NonFiniteError
        If ``initial_theta``, converted to the settings' dtype, contains NaN or ±inf; the
        message names the first such index and its parameter.
    TrainingDivergedError
        If the loss or its gradient becomes NaN or infinite, or the loss exceeds
        ``DIVERGENCE_LOSS_FACTOR`` times its scale at the start; the message names the step.
    """
    check_training_memory(settings)
    loss = PoissonLoss.from_settings(settings, points)
    layout = loss.layout
    if initial_theta is None:
        initial_theta = glorot_uniform_theta(layout, settings.seed, settings.dtype)
    with np.errstate(over="ignore"):
        initial_theta = np.asarray(initial_theta, dtype=settings.dtype)
    if initial_theta.shape != (layout.n_params,):
        raise ValueError(f"initial θ must have shape ({layout.n_params},), got {initial_theta.shape}")
    check_finite_theta(initial_theta, layout, f"initial θ for training in {settings.dtype}")

    history: list[TrainingStep] = []
    start = time.perf_counter()
    total_steps = settings.adam_steps + settings.lbfgs_steps
    # θ = 0 gives u ≡ 0, whose loss is the PDE weight times the mean of f²: the loss scale of a
    # model that has learned nothing, which does not depend on the initial θ.
    zero_network_loss = loss.evaluate(np.zeros(layout.n_params, dtype=settings.dtype)).total
    divergence_limit = math.inf

    def record(phase: str, step: int, values) -> None:
        nonlocal divergence_limit
        total, pde, boundary = (float(v) for v in values)
        if not math.isfinite(total):
            raise TrainingDivergedError(phase, step, total, settings.learning_rate)
        if not history:
            divergence_limit = DIVERGENCE_LOSS_FACTOR * max(total, zero_network_loss)
        elif total > divergence_limit:
            raise TrainingDivergedError(phase, step, total, settings.learning_rate, limit=divergence_limit)
        entry = TrainingStep(phase, step, total_steps, total, pde, boundary, time.perf_counter() - start)
        history.append(entry)
        if callback is not None:
            callback(entry)

    theta = _run_adam(loss, initial_theta, settings, record)
    lbfgs_message = ""
    if settings.lbfgs_steps > 0:
        theta, lbfgs_message = _run_lbfgs(loss, theta, settings, record)

    final = loss.evaluate(theta)
    if not math.isfinite(final.total):
        raise TrainingDivergedError("lbfgs", len(history), final.total, settings.learning_rate)
    seconds = time.perf_counter() - start
    error = relative_l2_error(loss, theta, test_grid(settings.test_grid))
    logger.info("trained %d parameters in %.1f s: loss %.3e, relative L2 error %.3e", layout.n_params, seconds, final.total, error)
    return TrainingResult(
        settings=settings,
        layout=layout,
        theta=np.asarray(theta, dtype=settings.dtype),
        history=history,
        loss=final.total,
        pde_loss=final.pde,
        boundary_loss=final.boundary,
        relative_l2_error=error,
        seconds=seconds,
        lbfgs_message=lbfgs_message,
        initial_theta=initial_theta,
    )


def _run_adam(loss: PoissonLoss, theta0: np.ndarray, settings: Settings, record) -> np.ndarray:
    if settings.adam_steps == 0:
        return theta0
    dtype = loss.dtype
    theta = tf.Variable(theta0, dtype=dtype)
    first_moment = tf.Variable(tf.zeros_like(theta))
    second_moment = tf.Variable(tf.zeros_like(theta))
    learning_rate = tf.constant(settings.learning_rate, dtype=dtype)
    beta1, beta2 = tf.constant(ADAM_BETA1, dtype), tf.constant(ADAM_BETA2, dtype)

    def adam_step(step):
        # Loss terms are those at θ before the update, as the gradient is.
        total, pde, boundary, gradient = loss._value_and_gradient_eager(theta)
        first_moment.assign(beta1 * first_moment + (1 - beta1) * gradient)
        second_moment.assign(beta2 * second_moment + (1 - beta2) * tf.square(gradient))
        t = tf.cast(step, dtype)
        corrected_rate = learning_rate * tf.sqrt(1 - beta2**t) / (1 - beta1**t)
        theta.assign_sub(corrected_rate * first_moment / (tf.sqrt(second_moment) + ADAM_EPSILON))
        # The sum of the gradient's non-finite entries: 0 when there are none, else NaN or ±inf.
        non_finite_gradient = tf.reduce_sum(tf.where(tf.math.is_finite(gradient), tf.zeros_like(gradient), gradient))
        return tf.stack([total, pde, boundary, non_finite_gradient])

    @tf.function
    def adam_steps(first_step, count):
        # Several steps per call: one Python round trip per step cost about a third of
        # the step's time at the default size.
        rows = tf.TensorArray(dtype, size=count)
        for i in tf.range(count):
            rows = rows.write(i, adam_step(first_step + tf.cast(i, tf.int64)))
        return rows.stack()

    for first in range(1, settings.adam_steps + 1, ADAM_STEPS_PER_CALL):
        count = min(ADAM_STEPS_PER_CALL, settings.adam_steps + 1 - first)
        chunk = adam_steps(tf.constant(first, dtype=tf.int64), tf.constant(count, dtype=tf.int32)).numpy()
        for step, values in enumerate(chunk, start=first):
            record("adam", step, values[:3])
            # A finite loss with a non-finite gradient would turn θ into NaN at this step.
            if not math.isfinite(float(values[3])):
                raise TrainingDivergedError("adam", step, float(values[3]), settings.learning_rate, "gradient")
    return theta.numpy()


def _run_lbfgs(loss: PoissonLoss, theta0: np.ndarray, settings: Settings, record) -> tuple[np.ndarray, str]:
    cache: dict[str, np.ndarray] = {}

    def value_and_gradient(x: np.ndarray):
        total, pde, boundary, gradient = loss.value_and_gradient(x.astype(settings.dtype))
        cache["x"] = x.copy()
        cache["terms"] = np.array([float(total), float(pde), float(boundary)])
        value = float(total)
        if not math.isfinite(value):
            raise TrainingDivergedError("lbfgs", len(iterations) + 1, value, settings.learning_rate)
        # L-BFGS-B works in float64 whatever the network's dtype.
        gradient = gradient.numpy().astype(np.float64)
        finite = np.isfinite(gradient)
        if not finite.all():
            first_bad = gradient[~finite][0]
            raise TrainingDivergedError("lbfgs", len(iterations) + 1, first_bad, settings.learning_rate, "gradient")
        return value, gradient

    iterations: list[int] = []

    def on_iteration(intermediate_result) -> None:
        iterations.append(1)
        # The last evaluation is usually the accepted point; otherwise evaluate it again.
        if not np.array_equal(cache.get("x"), intermediate_result.x):
            value_and_gradient(intermediate_result.x)
        record("lbfgs", len(iterations), cache["terms"])

    result = scipy.optimize.minimize(
        value_and_gradient,
        np.asarray(theta0, dtype=np.float64),
        jac=True,
        method="L-BFGS-B",
        callback=on_iteration,
        options={
            "maxiter": settings.lbfgs_steps,
            "maxfun": int(settings.lbfgs_steps * 1.25) + 20,
            "maxcor": 50,
            # Stop on the iteration budget, not on SciPy's default relative tolerances,
            # which end PINN training long before the error stops falling.
            "ftol": 1e-16 if settings.dtype == "float64" else 1e-12,
            "gtol": 1e-12,
        },
    )
    logger.info("L-BFGS-B stopped after %d iterations: %s", result.nit, result.message)
    return result.x.astype(settings.dtype), str(result.message)
