"""Parameter layout, initialisation and the Keras round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from hessian_core.network import (
    NetworkLayout,
    from_keras,
    glorot_uniform_theta,
    network_output,
    split_parameters,
    to_keras,
)
from hessian_core.settings import Settings, SettingsError


def test_reference_layout_has_5301_parameters():
    layout = NetworkLayout.from_settings(Settings())
    assert layout.widths == (2, 50, 50, 50, 1)
    assert layout.n_params == 5301
    assert [b.name for b in layout.blocks[:2]] == ["layer 1 kernel", "layer 1 bias"]
    assert layout.blocks[-1].stop == layout.n_params


def test_describe_index_names_block_and_position():
    layout = NetworkLayout.from_widths((2, 50, 50, 50, 1))
    # Layer 2's kernel starts after layer 1 (2*50 + 50 = 150 entries); [17, 4] is 17*50 + 4 further.
    assert layout.describe_index(150 + 17 * 50 + 4) == "layer 2 kernel [17, 4]"
    assert layout.describe_index(100) == "layer 1 bias [0]"
    assert layout.describe_index(5300) == "layer 4 bias [0]"
    with pytest.raises(IndexError, match="5301"):
        layout.describe_index(5301)


def test_glorot_theta_is_seeded_with_zero_biases():
    layout = NetworkLayout.from_widths((2, 20, 20, 1))
    first = glorot_uniform_theta(layout, seed=5)
    assert np.array_equal(first, glorot_uniform_theta(layout, seed=5))
    assert not np.array_equal(first, glorot_uniform_theta(layout, seed=6))
    for block in layout.blocks:
        values = first[block.offset : block.stop]
        if block.kind == "bias":
            assert np.all(values == 0.0)
        else:
            assert np.abs(values).max() <= np.sqrt(6.0 / sum(block.shape))


@pytest.mark.parametrize("activation", ["tanh", "sin", "softplus", "gelu"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_round_trip_is_exact(activation, dtype):
    layout = NetworkLayout.from_widths((2, 6, 5, 1))
    theta = glorot_uniform_theta(layout, seed=2, dtype=dtype) + np.linspace(0, 0.1, layout.n_params).astype(dtype)

    model = to_keras(theta, layout, activation)
    theta_back, layout_back, activation_back = from_keras(model)

    assert layout_back == layout
    assert activation_back == activation
    assert theta_back.dtype == np.dtype(dtype)
    assert np.array_equal(theta_back, theta)

    points = np.random.default_rng(0).uniform(-1, 1, size=(16, 2)).astype(dtype)
    keras_u = model(points).numpy()[:, 0]
    ours = network_output(split_parameters(tf.constant(theta), layout), tf.constant(points), activation).numpy()
    tolerance = 1e-12 if dtype == "float64" else 1e-5
    if activation == "gelu" and dtype == "float64":
        # tf.nn.gelu, which Keras calls, is off the exact erf form by about 5e-9 in float64.
        tolerance = 1e-8
    assert np.abs(keras_u - ours).max() <= tolerance


def test_from_keras_reads_a_model_built_by_hand():
    model = keras.Sequential(
        [keras.Input(shape=(2,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)]
    )
    theta, layout, activation = from_keras(model)
    assert layout.widths == (2, 4, 1)
    assert activation == "tanh"
    assert np.array_equal(theta[:8], model.layers[0].kernel.numpy().ravel())


def test_from_keras_rejects_relu_hidden_layers():
    model = keras.Sequential(
        [keras.Input(shape=(2,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)]
    )
    with pytest.raises(SettingsError, match="relu"):
        from_keras(model)


def test_from_keras_rejects_non_dense_layers():
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(4), keras.layers.Dropout(0.1), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="Dropout"):
        from_keras(model)
