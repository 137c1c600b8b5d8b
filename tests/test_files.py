"""Atomic writes and safe loading of θ files."""

import io
import pickle

import numpy as np
import pytest

from hessian_core.files import load_theta, write_atomic, write_npy_atomic
from hessian_core.network import NetworkLayout

LAYOUT = NetworkLayout.from_widths((2, 3, 1))  # 13 parameters


def test_write_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "out.json"
    write_atomic(path, "first")
    write_atomic(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "theta.npy"
    write_npy_atomic(path, np.arange(3.0))

    # np.save fails part-way through an object array when pickles are not allowed.
    with pytest.raises(ValueError, match="pickle"):
        write_npy_atomic(path, np.array([{"a": 1}, None], dtype=object))
    assert np.array_equal(np.load(path), np.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["theta.npy"]


def test_load_theta_accepts_matching_array(tmp_path):
    path = tmp_path / "theta.npy"
    np.save(path, np.linspace(-1, 1, 13).astype(np.float32))
    theta = load_theta(path, LAYOUT, "float64")
    assert theta.dtype == np.float64
    assert theta.shape == (13,)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(12), r"shape \(13,\)"),
        (np.zeros((13, 1)), r"shape \(13,\)"),
        (np.arange(13), "floating-point"),
        (np.array([np.nan] + [0.0] * 12), "NaN"),
    ],
)
def test_load_theta_rejects_bad_arrays(tmp_path, array, message):
    path = tmp_path / "theta.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=message):
        load_theta(path, LAYOUT)


def test_load_theta_never_unpickles(tmp_path):
    path = tmp_path / "theta.npy"
    np.save(path, np.array([{"payload": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled objects are never loaded"):
        load_theta(path, LAYOUT)
    raw = io.BytesIO(pickle.dumps(np.zeros(13)))
    with pytest.raises(ValueError, match="pickled objects are never loaded"):
        load_theta(raw, LAYOUT)


def test_load_theta_rejects_npz_archive(tmp_path):
    path = tmp_path / "theta.npz"
    np.savez(path, theta=np.zeros(13))
    with pytest.raises(ValueError, match="npz"):
        load_theta(path, LAYOUT)


def test_load_theta_names_missing_file(tmp_path):
    missing = tmp_path / "missing.npy"
    with pytest.raises(ValueError, match="not found") as caught:
        load_theta(missing, LAYOUT)
    assert str(missing) in str(caught.value)
