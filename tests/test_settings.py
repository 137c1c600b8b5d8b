"""Validation of every settings field: the error names the field, the value and the range."""

import dataclasses
import json
import math

import pytest

from hessian_core.settings import CHOICES, RANGES, IntRange, Settings, SettingsError


def test_defaults_reproduce_reference_network():
    settings = Settings()
    assert settings.layer_widths == (2, 50, 50, 50, 1)
    assert settings.n_params == 5301
    assert (settings.n_interior, settings.n_boundary) == (1000, 1000)
    assert settings.activation == "tanh"
    assert settings.dtype == "float64"
    assert settings.boundary == "edges"


def bad_values(name):
    """Values just outside each end of a range, wrong types, NaN and huge numbers."""
    spec = RANGES[name]
    if isinstance(spec, IntRange):
        return [spec.low - 1, spec.high + 1, 2.5, "3", None, True, 10**30]
    below = spec.low if not spec.low_inclusive else spec.low - abs(spec.low) * 0.5 - 1e-3
    return [below, spec.high * 1.01 + 1, math.nan, math.inf, -math.inf, "0.1", None, 1e308]


@pytest.mark.parametrize(
    "name, value",
    [(name, value) for name in RANGES for value in bad_values(name)]
    + [(name, value) for name in CHOICES for value in ("", "unknown", None, 3)],
)
def test_bad_value_names_field_value_and_range(name, value):
    with pytest.raises(SettingsError) as caught:
        Settings(**{name: value})
    message = str(caught.value)
    assert caught.value.field == name
    assert name in message
    assert repr(value) in message or str(value) in message or f"{value:g}" in message


@pytest.mark.parametrize("name", sorted(RANGES))
def test_range_ends_are_accepted(name):
    spec = RANGES[name]
    ends = [spec.low, spec.high] if isinstance(spec, IntRange) or spec.low_inclusive else [spec.high]
    for value in ends:
        assert getattr(Settings(**{name: value}), name) == value


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_every_choice_is_accepted(name):
    for value in CHOICES[name]:
        assert getattr(Settings(**{name: value}), name) == value


@pytest.mark.parametrize("activation", ["relu", "ReLU", "leaky_relu", "elu"])
def test_piecewise_linear_activation_is_rejected_with_reason(activation):
    with pytest.raises(SettingsError) as caught:
        Settings(activation=activation)
    message = str(caught.value)
    assert "second derivative is zero almost everywhere" in message
    assert "tanh, sin, softplus or gelu" in message


def test_settings_round_trip_through_json():
    settings = Settings(width=12, boundary="top-edge", learning_rate=0.005, note="run A")
    restored = Settings.from_dict(json.loads(settings.to_json()))
    assert restored == settings
    assert restored.note == "run A"


def test_unknown_key_is_rejected_by_name():
    with pytest.raises(SettingsError, match="'widht'"):
        Settings.from_dict({"widht": 10})


def test_replace_validates_again():
    with pytest.raises(SettingsError, match="n_interior"):
        Settings().replace(n_interior=0)


def test_every_field_has_a_range_or_choices():
    names = {f.name for f in dataclasses.fields(Settings)} - {"note"}
    assert names == set(RANGES) | set(CHOICES)
