"""The MLP as a function of one flat parameter vector θ, and its block layout.

θ concatenates, layer by layer, the kernel (Keras layout: shape ``(fan_in, fan_out)``,
row-major) and then the bias, which is the order of a Keras ``Sequential`` model's
``trainable_variables``. A :class:`NetworkLayout` records where each block sits, so
Hessian plots can draw block boundaries and an index maps back to a named entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from .settings import ACTIVATIONS, Settings, SettingsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ParameterBlock:
    """One kernel or bias inside θ.

    Attributes
    ----------
    layer : int
        Layer index, 1-based: layer 1 maps the input, the last layer is the output.
    kind : str
        ``"kernel"`` or ``"bias"``.
    shape : tuple of int
        ``(fan_in, fan_out)`` for a kernel, ``(fan_out,)`` for a bias.
    offset : int
        Index of the block's first entry in θ.
    """

    layer: int
    kind: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def stop(self) -> int:
        return self.offset + self.size

    @property
    def name(self) -> str:
        return f"layer {self.layer} {self.kind}"


@dataclass(frozen=True)
class NetworkLayout:
    """Layer widths and the position of every parameter block in θ.

    Examples
    --------
    >>> layout = NetworkLayout.from_widths((2, 50, 50, 50, 1))
    >>> layout.n_params
    5301
    >>> layout.describe_index(2700)
    'layer 2 kernel [17, 0]'
    """

    widths: tuple[int, ...]
    blocks: tuple[ParameterBlock, ...]

    @classmethod
    def from_widths(cls, widths: tuple[int, ...] | list[int]) -> "NetworkLayout":
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"layer widths must be at least two positive integers, got {widths}")
        blocks = []
        offset = 0
        for layer in range(1, len(widths)):
            fan_in, fan_out = widths[layer - 1], widths[layer]
            blocks.append(ParameterBlock(layer, "kernel", (fan_in, fan_out), offset))
            offset += fan_in * fan_out
            blocks.append(ParameterBlock(layer, "bias", (fan_out,), offset))
            offset += fan_out
        return cls(widths, tuple(blocks))

    @classmethod
    def from_settings(cls, settings: Settings) -> "NetworkLayout":
        return cls.from_widths(settings.layer_widths)

    @property
    def n_params(self) -> int:
        return self.blocks[-1].stop

    @property
    def n_layers(self) -> int:
        """Number of dense layers, output layer included."""
        return len(self.widths) - 1

    @property
    def block_sizes(self) -> list[int]:
        return [block.size for block in self.blocks]

    def layer_slice(self, layer: int) -> slice:
        """Return the slice of θ that contains layer ``layer`` (1-based): kernel then bias."""
        kernel, bias = self.blocks[2 * (layer - 1)], self.blocks[2 * (layer - 1) + 1]
        return slice(kernel.offset, bias.stop)

    def block_of(self, index: int) -> ParameterBlock:
        """Return the block that contains θ[index]."""
        if not 0 <= index < self.n_params:
            raise IndexError(f"parameter index must be in [0, {self.n_params}), got {index}")
        offsets = [block.offset for block in self.blocks]
        return self.blocks[int(np.searchsorted(offsets, index, side="right")) - 1]

    def describe_index(self, index: int) -> str:
        """Name θ[index], for example ``"layer 2 kernel [17, 4]"``."""
        block = self.block_of(index)
        position = np.unravel_index(index - block.offset, block.shape)
        return f"{block.name} [{', '.join(str(int(p)) for p in position)}]"

    def to_dict(self) -> dict:
        return {
            "widths": list(self.widths),
            "n_params": self.n_params,
            "blocks": [
                {"name": b.name, "layer": b.layer, "kind": b.kind, "shape": list(b.shape), "offset": b.offset}
                for b in self.blocks
            ],
        }


def glorot_uniform_theta(layout: NetworkLayout, seed: int, dtype: str = "float64") -> np.ndarray:
    """Draw θ with Glorot-uniform kernels, U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), and zero biases."""
    rng = np.random.default_rng([seed, 1])
    theta = np.zeros(layout.n_params, dtype=np.float64)
    for block in layout.blocks:
        if block.kind == "kernel":
            limit = np.sqrt(6.0 / sum(block.shape))
            theta[block.offset : block.stop] = rng.uniform(-limit, limit, size=block.size)
    return theta.astype(dtype)


def split_parameters(theta: tf.Tensor, layout: NetworkLayout) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """Split flat θ into ``[(kernel, bias), ...]`` tensors, one pair per layer."""
    pieces = tf.split(theta, layout.block_sizes)
    return [
        (tf.reshape(pieces[2 * i], layout.blocks[2 * i].shape), pieces[2 * i + 1])
        for i in range(layout.n_layers)
    ]


def flatten_parameters(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenate kernels and biases, in the order given, into one flat array."""
    return np.concatenate([np.asarray(a).ravel() for a in arrays])


# --- activations: value, first and second derivative --------------------------------------

# NOTE: tf.nn.gelu (TF 2.21), which Keras's "gelu" calls, differs from the exact erf form by
# up to about 5e-9 in float64, so a Keras gelu model and this network differ by that much.
_INV_SQRT_2 = float(1.0 / np.sqrt(2.0))
_INV_SQRT_2PI = float(1.0 / np.sqrt(2.0 * np.pi))


def _gelu(a):
    return 0.5 * a * (1.0 + tf.math.erf(a * _INV_SQRT_2))


def _gelu_derivatives(a):
    pdf = _INV_SQRT_2PI * tf.exp(-0.5 * a * a)
    cdf = 0.5 * (1.0 + tf.math.erf(a * _INV_SQRT_2))
    return cdf + a * pdf, pdf * (2.0 - a * a)


def _tanh_derivatives(a):
    t = tf.tanh(a)
    d1 = 1.0 - t * t
    return d1, -2.0 * t * d1


def _softplus_derivatives(a):
    s = tf.sigmoid(a)
    return s, s * (1.0 - s)


def _sin_derivatives(a):
    return tf.cos(a), -tf.sin(a)


# name -> (sigma, (sigma', sigma'')). gelu is the exact, erf-based form (Keras 3's default).
ACTIVATION_FUNCTIONS: dict[str, tuple[Callable, Callable]] = {
    "tanh": (tf.tanh, _tanh_derivatives),
    "sin": (tf.sin, _sin_derivatives),
    "softplus": (tf.nn.softplus, _softplus_derivatives),
    "gelu": (_gelu, _gelu_derivatives),
}
assert set(ACTIVATION_FUNCTIONS) == set(ACTIVATIONS)


def network_output(params: list[tuple[tf.Tensor, tf.Tensor]], points: tf.Tensor, activation: str) -> tf.Tensor:
    """Evaluate u at points of shape (N, 2); returns shape (N,)."""
    sigma = ACTIVATION_FUNCTIONS[activation][0]
    z = points
    for kernel, bias in params[:-1]:
        z = sigma(tf.matmul(z, kernel) + bias)
    kernel, bias = params[-1]
    return tf.squeeze(tf.matmul(z, kernel) + bias, axis=1)


# --- Keras conversion ----------------------------------------------------------------------


def to_keras(theta: np.ndarray, layout: NetworkLayout, activation: str = "tanh"):
    """Build a Keras ``Sequential`` of ``Dense`` layers holding θ exactly.

    The hidden layers use ``activation``; the output layer is linear. The model's dtype is
    θ's dtype.
    """
    import keras

    theta = np.asarray(theta)
    dtype = theta.dtype.name
    keras_activation = {"sin": tf.sin}.get(activation, activation)
    model = keras.Sequential([keras.Input(shape=(layout.widths[0],), dtype=dtype)])
    for layer in range(1, layout.n_layers + 1):
        is_output = layer == layout.n_layers
        model.add(
            keras.layers.Dense(
                layout.widths[layer],
                activation=None if is_output else keras_activation,
                dtype=dtype,
                name=f"dense_{layer}",
            )
        )
    weights = []
    for block in layout.blocks:
        weights.append(theta[block.offset : block.stop].reshape(block.shape))
    model.set_weights(weights)
    return model


def from_keras(model) -> tuple[np.ndarray, NetworkLayout, str]:
    """Read θ, the layout and the hidden activation from a Keras ``Sequential`` of ``Dense`` layers.

    Raises
    ------
    ValueError
        If a layer is not ``Dense``, has no bias, the hidden layers do not share one
        supported activation, or the output layer is not linear with one unit.
    """
    import keras

    dense_layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in dense_layers:
        if not isinstance(layer, keras.layers.Dense):
            raise ValueError(
                f"layer {layer.name!r} is a {type(layer).__name__}; only Dense layers can be converted"
            )
        if not layer.use_bias:
            raise ValueError(f"layer {layer.name!r} has use_bias=False; rebuild it with use_bias=True")
    if not dense_layers:
        raise ValueError("the model has no Dense layers")

    names = [_activation_name(layer.activation) for layer in dense_layers]
    hidden = set(names[:-1]) or {"tanh"}
    if len(hidden) != 1:
        raise ValueError(f"hidden layers use several activations {sorted(hidden)}; one is supported")
    activation = hidden.pop()
    if activation not in ACTIVATIONS:
        raise SettingsError(
            "activation",
            activation,
            f"the hidden activation {activation!r} is not supported; use one of {', '.join(ACTIVATIONS)}",
        )
    if names[-1] != "linear" or dense_layers[-1].units != 1:
        raise ValueError("the output layer must be Dense(1) with a linear activation")

    widths = [int(dense_layers[0].kernel.shape[0])] + [int(layer.units) for layer in dense_layers]
    layout = NetworkLayout.from_widths(widths)
    arrays = []
    for layer in dense_layers:
        arrays += [np.asarray(layer.kernel.numpy()), np.asarray(layer.bias.numpy())]
    return flatten_parameters(arrays), layout, activation


def _activation_name(function) -> str:
    if function is tf.sin or getattr(function, "__name__", "") == "sin":
        return "sin"
    return getattr(function, "__name__", str(function))
