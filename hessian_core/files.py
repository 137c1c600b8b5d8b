"""Atomic output files and safe loading of parameter vectors."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .network import NetworkLayout


def _write_through_temporary(path: Path, write) -> None:
    """Call ``write(stream)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A reader, or a run killed halfway, sees either the old file or the whole new one,
    never a truncated file.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write text or bytes to ``path`` atomically."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    _write_through_temporary(path, lambda stream: stream.write(payload))


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Save one array in ``.npy`` format atomically, streaming it without an in-memory copy."""
    _write_through_temporary(path, lambda stream: np.save(stream, np.asarray(array), allow_pickle=False))


def write_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Save named arrays in ``.npz`` format atomically."""
    _write_through_temporary(path, lambda stream: np.savez(stream, **{name: np.asarray(value) for name, value in arrays.items()}))


def load_theta(source, layout: "NetworkLayout", dtype: str = "float64") -> np.ndarray:
    """Load θ from a ``.npy`` file (or file object) and check it against ``layout``.

    Pickled objects are never loaded. The array must be 1-D with ``layout.n_params``
    finite floating-point entries; it is returned in ``dtype``.

    Raises
    ------
    ValueError
        If the file is not a plain ``.npy`` array, or its shape, dtype or values do not fit.
    """
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
        raise ValueError(f"θ file {source} not found; pass the path of a .npy file saved with numpy.save")
    try:
        array = np.load(source, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        # NumPy's own message suggests allow_pickle=True, which is exactly what must not happen.
        raise ValueError(
            "θ file is not a plain .npy array (pickled objects are never loaded); save θ with numpy.save(path, theta)"
        ) from None
    if isinstance(array, np.lib.npyio.NpzFile):
        raise ValueError("θ file is an .npz archive; save θ alone with numpy.save as a .npy file")
    if array.dtype.kind != "f":
        raise ValueError(f"θ must contain floating-point numbers, got dtype {array.dtype}")
    if array.shape != (layout.n_params,):
        raise ValueError(
            f"θ must have shape ({layout.n_params},) for layer widths {list(layout.widths)}, got {array.shape}; "
            "match the network settings to the file"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError("θ contains NaN or infinite values")
    return array.astype(dtype)
