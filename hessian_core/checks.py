"""Finiteness checks and the one exception type for NaN or infinite values.

Public API
----------
``NonFiniteError``
    Raised where a NaN or ±inf appears in θ, a Hessian, a Hessian-vector product or an
    eigendecomposition. Its attributes name what contained the value and where (index,
    parameter name, step, iteration or product number). Its message also gives the fix.
``check_finite_theta(theta, layout, context)``
    Raise ``NonFiniteError`` naming the first non-finite entry of θ and its parameter.
``first_non_finite_row(matrix) -> int | None``
    The first row of a 2-D array that contains a NaN or ±inf, from one ``np.isfinite`` pass.
``overflow_advice(dtype) -> str``
    What to do when a computation from a finite θ overflowed.

``NonFiniteError`` subclasses both ``FloatingPointError`` and ``ValueError``: it is a
floating-point failure, and callers that already reject bad input as ``ValueError``
(the command line, the dashboard) keep catching it.
"""

from __future__ import annotations

import math

import numpy as np

THETA_ADVICE = "Load a finite θ (check the θ file) or retrain with a smaller learning rate"


def format_value(value: float) -> str:
    """Return ``"NaN"``, ``"inf"`` or ``"-inf"`` for a non-finite value, else the value in ``:g`` format."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:g}"


def overflow_advice(dtype: str) -> str:
    """Return what to do when a computation from a finite θ of ``dtype`` overflowed."""
    advice = "θ is probably too large, as after a diverged training: retrain with a smaller learning rate or check the θ file"
    if dtype != "float64":
        advice += ", or compute in float64"
    return advice


class NonFiniteError(FloatingPointError, ValueError):
    """A NaN or infinite value where a finite one is required.

    The message is ``"<quantity> contains <value> <where>. <advice>."``, for example
    "The Hessian contains NaN in column 12 (layer 1 kernel [0, 6]) of the PDE term, computed
    in the block of columns 8–15. θ is probably too large, ...".

    Attributes
    ----------
    quantity : str
        What contained the value: ``"θ"``, ``"The Hessian"``, ``"Hessian-vector product 17"``.
    value : float
        The first non-finite value found: NaN, inf or -inf.
    index : int or None
        Position in θ, or the first Hessian column or product row, that contains it.
    parameter : str or None
        Name of the parameter at ``index`` (``NetworkLayout.describe_index``), such as
        ``"layer 2 kernel [17, 4]"``; None when no layout is known.
    step, iteration, product : int or None
        Training step, solver iteration or 1-based product number at which it appeared.
    advice : str
        What to do next.
    """

    def __init__(
        self,
        quantity: str,
        value: float,
        where: str,
        advice: str,
        *,
        index: int | None = None,
        parameter: str | None = None,
        step: int | None = None,
        iteration: int | None = None,
        product: int | None = None,
    ) -> None:
        where = f" {where}" if where else ""
        super().__init__(f"{quantity} contains {format_value(value)}{where}. {advice}.")
        self.quantity = quantity
        self.value = float(value)
        self.index = index
        self.parameter = parameter
        self.step = step
        self.iteration = iteration
        self.product = product
        self.advice = advice


def first_non_finite_row(matrix: np.ndarray) -> int | None:
    """Return the index of the first row of a 2-D array containing NaN or ±inf, or None."""
    bad_rows = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    return int(bad_rows[0]) if bad_rows.size else None


def check_finite_eigenpairs(eigenvalues: np.ndarray, eigenvectors: np.ndarray, quantity: str, where: str, advice: str) -> None:
    """Raise ``NonFiniteError`` naming the first eigenpair that contains NaN or ±inf.

    ``quantity`` is the pairs' name, such as ``"The top eigenpair"``; the pair's index is
    appended to it.
    """
    finite = np.isfinite(eigenvalues) & np.isfinite(eigenvectors).all(axis=0)
    if finite.all():
        return
    pair = int(np.flatnonzero(~finite)[0])
    values = np.concatenate([eigenvalues[pair : pair + 1], eigenvectors[:, pair]])
    raise NonFiniteError(f"{quantity} {pair}", values[~np.isfinite(values)][0], where, advice, index=pair)


def describe_parameter(layout, index: int) -> str | None:
    """Return the name of θ[index] if ``layout`` is a ``NetworkLayout`` covering it, else None."""
    if layout is None or not 0 <= index < layout.n_params:
        return None
    return layout.describe_index(index)


def with_parameter(text: str, parameter: str | None) -> str:
    """Append `` (parameter)`` to ``text`` when a parameter name is known."""
    return f"{text} ({parameter})" if parameter else text


def check_finite_theta(theta: np.ndarray, layout=None, context: str = "") -> None:
    """Raise ``NonFiniteError`` if θ contains NaN or ±inf, naming the first such index.

    Parameters
    ----------
    theta : ndarray, shape (P,)
        Parameters, already in the dtype they will be used in, so that an entry that
        overflows on conversion (1e39 in float32) counts as infinite.
    layout : NetworkLayout, optional
        Names the parameter at the index.
    context : str
        What θ is for, appended to the location, such as ``"before the Hessian"``.
    """
    finite = np.isfinite(theta)
    if finite.all():
        return
    index = int(np.flatnonzero(~finite)[0])
    parameter = describe_parameter(layout, index)
    count = int(theta.size - np.count_nonzero(finite))
    where = with_parameter(f"at index {index}", parameter)
    where += f", {count} non-finite {'entry' if count == 1 else 'entries'} in all"
    if context:
        where += f" ({context})"
    raise NonFiniteError("θ", theta[index], where, THETA_ADVICE, index=index, parameter=parameter)
