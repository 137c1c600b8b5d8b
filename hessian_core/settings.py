"""Validated settings shared by the library, the command line and the app.

Every field is checked when a :class:`Settings` is constructed. A bad value raises
:class:`SettingsError`, which names the field, the value, the accepted range and the fix,
so the CLI can print it as one line and the app can show it next to the control.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

ACTIVATIONS = ("tanh", "sin", "softplus", "gelu")
DTYPES = ("float32", "float64")
BOUNDARY_SAMPLINGS = ("edges", "top-edge")
INTERIOR_SAMPLINGS = ("uniform", "sobol", "lhs")
HESSIAN_METHODS = (
    "forward-over-reverse",
    "reverse-over-reverse",
    "jacobian-pfor",
    "tf-hessians",
    "gauss-newton",
    "matrix-free",
)
SPECTRUM_MODES = ("dense", "lanczos")

# Activations whose second derivative is zero almost everywhere: the Laplacian of such a
# network is zero except on a measure-zero set, so the PDE residual carries no information.
PIECEWISE_LINEAR_ACTIVATIONS = ("relu", "leaky_relu", "relu6", "elu", "linear", "identity", "none")


class SettingsError(ValueError):
    """A setting outside its accepted range.

    Attributes
    ----------
    field : str
        Name of the offending field, as in :class:`Settings`.
    value : object
        The rejected value.
    """

    def __init__(self, field_name: str, value: Any, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.value = value


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    unit: str = ""


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    unit: str = ""
    low_inclusive: bool = True


# Accepted ranges, one per numeric field. The app's widgets read their limits from here.
RANGES: dict[str, IntRange | FloatRange] = {
    "hidden_layers": IntRange(1, 8, "layers"),
    "width": IntRange(1, 512, "neurons per hidden layer"),
    "n_interior": IntRange(1, 100_000, "points"),
    "n_boundary": IntRange(1, 100_000, "points"),
    "seed": IntRange(0, 2**32 - 1),
    "adam_steps": IntRange(0, 200_000, "steps"),
    "learning_rate": FloatRange(0.0, 10.0, low_inclusive=False),
    "lbfgs_steps": IntRange(0, 200_000, "iterations"),
    "pde_weight": FloatRange(0.0, 1e6, low_inclusive=False),
    "boundary_weight": FloatRange(0.0, 1e6, low_inclusive=False),
    "test_grid": IntRange(2, 1001, "points per side"),
    "memory_budget_gib": FloatRange(0.0625, 1024.0, "GiB"),
    "top_k": IntRange(1, 200, "eigenpairs"),
    # The lower limit keeps the Landscape page's slider step (range / 20) above zero.
    "landscape_range": FloatRange(1e-6, 1e3),
    "landscape_points": IntRange(3, 401, "points per axis"),
}

CHOICES: dict[str, tuple[str, ...]] = {
    "activation": ACTIVATIONS,
    "dtype": DTYPES,
    "boundary": BOUNDARY_SAMPLINGS,
    "sampling": INTERIOR_SAMPLINGS,
    "hessian_method": HESSIAN_METHODS,
    "spectrum": SPECTRUM_MODES,
}


@dataclass(frozen=True)
class Settings:
    """Every setting of one run: network, data, training, Hessian, spectrum and landscape.

    The defaults reproduce the reference problem: a 2-50-50-50-1 tanh network (5,301
    parameters) in float64, 1,000 interior and 1,000 boundary points.

    Raises
    ------
    SettingsError
        On construction, for the first field outside its range (see ``RANGES`` and
        ``CHOICES``).
    """

    # Network.
    hidden_layers: int = 3
    width: int = 50
    activation: str = "tanh"
    dtype: str = "float64"
    # Collocation data.
    n_interior: int = 1000
    n_boundary: int = 1000
    boundary: str = "edges"
    sampling: str = "uniform"
    seed: int = 0
    # Training.
    adam_steps: int = 1000
    learning_rate: float = 1e-3
    lbfgs_steps: int = 500
    pde_weight: float = 1.0
    boundary_weight: float = 1.0
    test_grid: int = 101
    # Hessian.
    hessian_method: str = "forward-over-reverse"
    memory_budget_gib: float = 2.0
    # Spectrum and landscape.
    top_k: int = 20
    spectrum: str = "dense"
    landscape_range: float = 1.0
    landscape_points: int = 41
    # Free-form label, kept in exported settings.
    note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "note":
                continue
            value = getattr(self, f.name)
            if f.name in CHOICES:
                _check_choice(f.name, value, CHOICES[f.name])
            elif isinstance(RANGES[f.name], IntRange):
                _check_int(f.name, value, RANGES[f.name])
            else:
                # Store floats as plain Python floats so equality and JSON are stable.
                object.__setattr__(self, f.name, _check_float(f.name, value, RANGES[f.name]))

    @property
    def layer_widths(self) -> tuple[int, ...]:
        """Widths of every layer, input and output included: (2, width, ..., width, 1)."""
        return (2,) + (self.width,) * self.hidden_layers + (1,)

    @property
    def n_params(self) -> int:
        """Number of network parameters P."""
        widths = self.layer_widths
        return sum((widths[i] + 1) * widths[i + 1] for i in range(len(widths) - 1))

    def replace(self, **changes: Any) -> "Settings":
        """Return a copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Settings":
        """Build settings from a mapping, rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(
                unknown[0],
                values[unknown[0]],
                f"unknown setting {unknown[0]!r}; known settings are {', '.join(sorted(known))}",
            )
        return cls(**values)


def describe_range(name: str) -> str:
    """Return the accepted range of a field as text, for help strings and tooltips."""
    if name in CHOICES:
        return "one of " + ", ".join(CHOICES[name])
    spec = RANGES[name]
    opening = "[" if getattr(spec, "low_inclusive", True) else "("
    unit = f" {spec.unit}" if spec.unit else ""
    if isinstance(spec, IntRange):
        return f"[{spec.low}, {spec.high}]{unit}"
    return f"{opening}{spec.low:g}, {spec.high:g}]{unit}"


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if name == "activation" and isinstance(value, str) and value.lower() in PIECEWISE_LINEAR_ACTIVATIONS:
        raise SettingsError(
            name,
            value,
            f"activation {value!r} is piecewise linear, so its second derivative is zero almost "
            "everywhere and the network's Laplacian (the PDE residual) is meaningless; "
            "use tanh, sin, softplus or gelu",
        )
    if not isinstance(value, str) or value not in choices:
        raise SettingsError(
            name, value, f"{name} must be one of {', '.join(choices)}, got {value!r}; pick one of those"
        )


def _check_int(name: str, value: Any, spec: IntRange) -> None:
    # bool is an int subclass, and a float such as 3.0 would silently pass a range check.
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingsError(
            name,
            value,
            f"{name} must be an integer between {spec.low} and {spec.high}, got {value!r}; "
            "give a whole number in that range",
        )
    if not spec.low <= value <= spec.high:
        raise SettingsError(
            name,
            value,
            f"{name} must be between {spec.low} and {spec.high}, got {value}; "
            f"choose a value in that range",
        )


def _check_float(name: str, value: Any, spec: FloatRange) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(name, value, f"{name} must be a number in {describe_range(name)}, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise SettingsError(
            name, value, f"{name} must be a finite number in {describe_range(name)}, got {number}"
        )
    too_low = number < spec.low if spec.low_inclusive else number <= spec.low
    if too_low or number > spec.high:
        raise SettingsError(
            name,
            value,
            f"{name} must be in {describe_range(name)}, got {number!r}; choose a value in that range",
        )
    return number
