"""Exact Hessian of the PINN loss by a hand-written, layer-structured forward-over-reverse.

The loss is propagated explicitly through the MLP (:mod:`hessian_core.laplacian`): at an
interior point every layer carries four streams (value z, ∂z/∂x, ∂z/∂y, Laplacian q), at
a boundary point one. For a hidden layer the pre-activation streams A = (a, a_x, a_y, a_q)
map elementwise to

.. math::

    z' = \\sigma(a), \\quad g_x' = \\sigma'(a) a_x, \\quad g_y' = \\sigma'(a) a_y, \\quad
    q' = \\sigma''(a)(a_x^2 + a_y^2) + \\sigma'(a) a_q .

Write F for this map, J_F for its Jacobian and \\bar S for the adjoint of its outputs. The
reverse sweep (the gradient) is \\bar A = J_F^T \\bar S, and its forward-mode tangent
along a parameter direction is

.. math::

    \\dot{\\bar A} = J_F^T \\dot{\\bar S} + M \\dot A, \\qquad
    M = \\textstyle\\sum_o \\bar S_o \\nabla^2 F_o ,

a 4 × 4 symmetric matrix per point and unit, built once from the primal sweep. The
tangent of a kernel gradient is \\dot{\\bar W} = \\dot S^T \\bar A + S^T \\dot{\\bar A}.
Each Hessian column is \\dot{\\bar\\theta} for a basis direction, and k columns travel
together as a leading batch dimension.

Three structural savings make a column much cheaper than a generic Hessian-vector product:

* A direction in layer l changes nothing below layer l, so its forward tangent starts at
  layer l from the stored input streams of that layer.
* The tangent of layer l's pre-activation for kernel entry W[i, j] is zero except in unit j,
  where it equals the input stream i. Layer l's tangents are carried as one column per
  direction, and layer l + 1's tangent is an outer product, so layer l needs no matrix product.
* By symmetry, the columns of layer l only need the rows of layers ≥ l: the rows of lower
  layers are the transposed blocks already computed for those layers' columns. The tangent
  reverse sweep therefore stops at layer l.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from .loss import PoissonLoss

logger = logging.getLogger(__name__)


def activation_derivatives(name: str, a: tf.Tensor) -> tuple[tf.Tensor, ...]:
    """Return σ(a) and its first four derivatives σ', σ'', σ''', σ'''' elementwise."""
    if name == "tanh":
        t = tf.tanh(a)
        d1 = 1.0 - t * t
        d2 = -2.0 * t * d1
        d3 = -2.0 * d1 * d1 - 2.0 * t * d2
        d4 = -6.0 * d1 * d2 - 2.0 * t * d3
        return t, d1, d2, d3, d4
    if name == "sin":
        s, c = tf.sin(a), tf.cos(a)
        return s, c, -s, -c, s
    if name == "softplus":
        p = tf.sigmoid(a)
        d2 = p * (1.0 - p)
        d3 = d2 * (1.0 - 2.0 * p)
        d4 = d3 * (1.0 - 2.0 * p) - 2.0 * d2 * d2
        return tf.nn.softplus(a), p, d2, d3, d4
    if name == "gelu":
        # φ is the standard normal density; σ = a Φ(a), σ' = Φ + aφ, σ'' = φ(2 − a²),
        # σ''' = φ(a³ − 4a), σ'''' = φ(−a⁴ + 7a² − 4).
        pdf = tf.exp(-0.5 * a * a) / np.sqrt(2.0 * np.pi)
        cdf = 0.5 * (1.0 + tf.math.erf(a / np.sqrt(2.0)))
        a2 = a * a
        return a * cdf, cdf + a * pdf, pdf * (2.0 - a2), pdf * a * (a2 - 4.0), pdf * (-a2 * a2 + 7.0 * a2 - 4.0)
    raise ValueError(f"activation must be one of tanh, sin, softplus, gelu, got {name!r}")


def _sum_products(*pairs) -> tf.Tensor | None:
    """Return Σ coefficient·tangent over the pairs whose tangent is not None (a zero tangent)."""
    total = None
    for coefficient, tangent in pairs:
        if tangent is None:
            continue
        term = coefficient * tangent
        total = term if total is None else total + term
    return total


def _stream_matmul(tangent: tf.Tensor, matrix: tf.Tensor, transpose_b: bool = False) -> tf.Tensor:
    """Multiply a batch of stream tangents (N, k, n) by one matrix, as one 2-D product."""
    n_points, k = tf.shape(tangent)[0], tf.shape(tangent)[1]
    product = tf.matmul(tf.reshape(tangent, [n_points * k, tangent.shape[-1]]), matrix, transpose_b=transpose_b)
    return tf.reshape(product, [n_points, k, product.shape[-1]])


def _contract_points(tangent: tf.Tensor, adjoint: tf.Tensor) -> tf.Tensor:
    """Return Σ_n tangent[n, κ, p]·adjoint[n, q] for tangent (N, k, p) and adjoint (N, q): (k, p, q)."""
    k, p = tf.shape(tangent)[1], tangent.shape[-1]
    product = tf.matmul(tf.reshape(tangent, [-1, k * p]), adjoint, transpose_a=True)
    return tf.reshape(product, [k, p, adjoint.shape[-1]])


def _expand_coefficients(coefficients: dict) -> dict:
    """Insert the tangent axis: (N, n) arrays become (N, 1, n), to broadcast over (N, k, n)."""
    return {name: value[:, None, :] for name, value in coefficients.items()}


# Names of the per-unit coefficient arrays of a hidden layer, interior points. The first six
# are entries of J_F, the last five of M.
PDE_COEFFICIENTS = ("s1", "s2ax", "s2ay", "jq", "two_s2ax", "two_s2ay", "m_aa", "m_ax", "m_ay", "m_aq", "m_xx")
BOUNDARY_COEFFICIENTS = ("s1", "m_aa")


def _pde_forward_tangent(c, da, dax, day, daq):
    """Map pre-activation tangents to output-stream tangents of a hidden layer: J_F · dA."""
    dz = c["s1"] * da
    dgx = _sum_products((c["s2ax"], da), (c["s1"], dax))
    dgy = _sum_products((c["s2ay"], da), (c["s1"], day))
    dq = _sum_products((c["jq"], da), (c["two_s2ax"], dax), (c["two_s2ay"], day), (c["s1"], daq))
    return [dz, dgx, dgy, dq]


def _pde_reverse_tangent(c, adjoint_tangents, tangents):
    """Return the tangent of the pre-activation adjoint: J_Fᵀ · d(adjoint) + M · dA.

    Either argument may hold None for streams whose tangent is zero.
    """
    dbz, dbgx, dbgy, dbq = adjoint_tangents
    da, dax, day, daq = tangents if tangents is not None else (None,) * 4
    dba = _sum_products(
        (c["s1"], dbz), (c["s2ax"], dbgx), (c["s2ay"], dbgy), (c["jq"], dbq),
        (c["m_aa"], da), (c["m_ax"], dax), (c["m_ay"], day), (c["m_aq"], daq),
    )
    dbax = _sum_products((c["s1"], dbgx), (c["two_s2ax"], dbq), (c["m_ax"], da), (c["m_xx"], dax))
    dbay = _sum_products((c["s1"], dbgy), (c["two_s2ay"], dbq), (c["m_ay"], da), (c["m_xx"], day))
    dbaq = _sum_products((c["s1"], dbq), (c["m_aq"], da))
    return [dba, dbax, dbay, dbaq]


def _boundary_forward_tangent(c, da):
    return [c["s1"] * da]


def _boundary_reverse_tangent(c, adjoint_tangents, tangents):
    (dbz,) = adjoint_tangents
    da = tangents[0] if tangents is not None else None
    return [_sum_products((c["s1"], dbz), (c["m_aa"], da))]


@dataclass
class _PointSet:
    """Primal sweep of one chunk of points of one kind, kept for all Hessian blocks.

    ``streams[m]`` are the input streams of layer m + 1 (list of (N, n_m) tensors),
    ``streams_with_bias[m]`` the same with a bias column appended (1 in the value stream,
    0 elsewhere), ``coefficients[m]`` the J_F and M arrays of hidden layer m + 1,
    ``adjoints[m]`` the pre-activation adjoints Ā of layer m + 1, and ``output_adjoint`` the
    adjoint of the loss-carrying output (Δu at interior points, u at boundary points).
    """

    kind: str
    streams: list
    streams_with_bias: list
    coefficients: list
    adjoints: list
    output_adjoint: tf.Tensor
    output_stream: int
    tangent_scale: float

    def as_structure(self) -> dict:
        return {
            "streams": self.streams,
            "streams_with_bias": self.streams_with_bias,
            "coefficients": self.coefficients,
            "adjoints": self.adjoints,
            "output_adjoint": self.output_adjoint,
        }


class StructuredPinnHessian:
    """Blocks of exact Hessian columns of a :class:`PoissonLoss`, PDE and boundary terms apart.

    Parameters
    ----------
    loss : PoissonLoss
    theta : array_like, shape (P,)
    chunk_points : int, optional
        At most this many points of each kind per primal chunk; the rows of every chunk
        are summed, each chunk weighted through the full point count.
    jit_compile : bool
        Compile each block with XLA.

    Notes
    -----
    ``block_rows(layer, indices)`` costs, per column, one forward tangent sweep from layer
    ``layer`` up and one tangent reverse sweep back to it, with no matrix product in layer
    ``layer`` itself.
    """

    def __init__(self, loss: PoissonLoss, theta, chunk_points: int | None = None, jit_compile: bool = False) -> None:
        self.loss = loss
        self.layout = loss.layout
        self.dtype = loss.dtype
        theta = tf.constant(np.asarray(theta), dtype=self.dtype)
        if theta.shape != (loss.n_params,):
            raise ValueError(f"θ must have shape ({loss.n_params},), got {tuple(theta.shape)}")
        self.params = loss.parameters(theta)
        self.n_layers = self.layout.n_layers
        self.point_sets: list[_PointSet] = []
        n_interior = int(loss.interior.shape[0])
        n_boundary = int(loss.boundary.shape[0])
        for start, stop in _chunk_ranges(n_interior, chunk_points):
            self.point_sets.append(self._primal_pde(loss.interior[start:stop], loss.source[start:stop], n_interior))
        for start, stop in _chunk_ranges(n_boundary, chunk_points):
            self.point_sets.append(self._primal_boundary(loss.boundary[start:stop], n_boundary))
        self._block = tf.function(self._block_eager, jit_compile=jit_compile, reduce_retracing=True)
        self._products = tf.function(self._products_eager, jit_compile=jit_compile, reduce_retracing=True)

    # --- primal sweeps, once per chunk -------------------------------------------------

    def _primal_pde(self, points: tf.Tensor, source: tf.Tensor, n_total: int) -> _PointSet:
        n = tf.shape(points)[0]
        ones = tf.ones([n, 1], self.dtype)
        zeros = tf.zeros([n, 1], self.dtype)
        # Input streams: x itself, ∂x/∂x = e_x, ∂x/∂y = e_y, Δx = 0.
        streams = [[points, tf.concat([ones, zeros], 1), tf.concat([zeros, ones], 1), tf.zeros_like(points)]]
        pre_activations = []
        for kernel, bias in self.params[:-1]:
            a, ax, ay, aq = (tf.matmul(s, kernel) for s in streams[-1])
            a = a + bias
            value, d1, d2, d3, d4 = activation_derivatives(self.loss.activation, a)
            pre_activations.append((a, ax, ay, aq, d1, d2, d3, d4))
            streams.append([value, d1 * ax, d1 * ay, d2 * (ax * ax + ay * ay) + d1 * aq])

        kernel, _ = self.params[-1]
        laplacian = tf.matmul(streams[-1][3], kernel)[:, 0]
        # d(w·mean(r²))/dΔu = 2·w·r/N, with N the full count so chunks add up.
        scale = 2.0 * self.loss.pde_weight / n_total
        output_adjoint = scale * (laplacian - source)

        # Reverse sweep: adjoints of each hidden layer's output streams, then J_F and M.
        adjoint_streams = [None, None, None, output_adjoint[:, None] * kernel[:, 0]]
        coefficients, adjoints = [None] * (self.n_layers - 1), [None] * self.n_layers
        adjoints[-1] = [None, None, None, output_adjoint[:, None]]
        for m in reversed(range(self.n_layers - 1)):
            a, ax, ay, aq, d1, d2, d3, d4 = pre_activations[m]
            bz, bgx, bgy, bq = (t if t is not None else tf.zeros_like(a) for t in adjoint_streams)
            norm = ax * ax + ay * ay
            c = {
                "s1": d1,
                "s2ax": d2 * ax,
                "s2ay": d2 * ay,
                "jq": d3 * norm + d2 * aq,
                "two_s2ax": 2.0 * d2 * ax,
                "two_s2ay": 2.0 * d2 * ay,
                "m_aa": bz * d2 + bgx * d3 * ax + bgy * d3 * ay + bq * (d4 * norm + d3 * aq),
                "m_ax": bgx * d2 + 2.0 * bq * d3 * ax,
                "m_ay": bgy * d2 + 2.0 * bq * d3 * ay,
                "m_aq": bq * d2,
                "m_xx": 2.0 * bq * d2,
            }
            coefficients[m] = c
            adjoint_a = [
                c["s1"] * bz + c["s2ax"] * bgx + c["s2ay"] * bgy + c["jq"] * bq,
                c["s1"] * bgx + c["two_s2ax"] * bq,
                c["s1"] * bgy + c["two_s2ay"] * bq,
                c["s1"] * bq,
            ]
            adjoints[m] = adjoint_a
            kernel_m, _ = self.params[m]
            adjoint_streams = [tf.matmul(t, kernel_m, transpose_b=True) for t in adjoint_a]

        with_bias = [
            [tf.concat([s, ones if index == 0 else zeros], 1) for index, s in enumerate(layer_streams)]
            for layer_streams in streams
        ]
        return _PointSet("pde", streams, with_bias, coefficients, adjoints, output_adjoint, 3, scale)

    def _primal_boundary(self, points: tf.Tensor, n_total: int) -> _PointSet:
        n = tf.shape(points)[0]
        streams = [[points]]
        pre_activations = []
        for kernel, bias in self.params[:-1]:
            a = tf.matmul(streams[-1][0], kernel) + bias
            value, d1, d2, _, _ = activation_derivatives(self.loss.activation, a)
            pre_activations.append((d1, d2))
            streams.append([value])

        kernel, bias = self.params[-1]
        u = tf.matmul(streams[-1][0], kernel)[:, 0] + bias[0]
        scale = 2.0 * self.loss.boundary_weight / n_total
        output_adjoint = scale * u

        adjoint_z = output_adjoint[:, None] * kernel[:, 0]
        coefficients, adjoints = [None] * (self.n_layers - 1), [None] * self.n_layers
        adjoints[-1] = [output_adjoint[:, None]]
        for m in reversed(range(self.n_layers - 1)):
            d1, d2 = pre_activations[m]
            coefficients[m] = {"s1": d1, "m_aa": adjoint_z * d2}
            adjoints[m] = [d1 * adjoint_z]
            adjoint_z = tf.matmul(adjoints[m][0], self.params[m][0], transpose_b=True)

        ones = tf.ones([n, 1], self.dtype)
        with_bias = [[tf.concat([s[0], ones], 1)] for s in streams]
        return _PointSet("boundary", streams, with_bias, coefficients, adjoints, output_adjoint, 0, scale)

    def gradient(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the PDE and boundary gradients from the stored primal sweeps (a self-check)."""
        parts = {"pde": np.zeros(self.layout.n_params), "boundary": np.zeros(self.layout.n_params)}
        for point_set in self.point_sets:
            pieces = []
            for m in range(self.n_layers):
                kernel_gradient = sum(
                    tf.matmul(s, adj, transpose_a=True)
                    for s, adj in zip(point_set.streams[m], point_set.adjoints[m])
                    if adj is not None
                )
                bias_adjoint = point_set.adjoints[m][0]
                bias_gradient = tf.reduce_sum(bias_adjoint, 0) if bias_adjoint is not None else tf.zeros(
                    [self.layout.widths[m + 1]], self.dtype
                )
                pieces += [tf.reshape(kernel_gradient, [-1]), bias_gradient]
            parts[point_set.kind] += tf.concat(pieces, 0).numpy().astype(np.float64)
        return parts["pde"], parts["boundary"]

    # --- blocks of Hessian columns --------------------------------------------------------

    def block_rows(self, layer: int, local_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return rows ≥ layer of the Hessian columns of layer ``layer`` (1-based).

        Parameters
        ----------
        layer : int
        local_indices : ndarray of int, shape (k,)
            Column positions inside the layer's slice of θ (kernel entries first, row-major,
            then the bias).

        Returns
        -------
        pde, boundary : ndarray, shape (k, P − offset), float64
            Row i is H[offset:, offset + local_indices[i]] for that term, where ``offset`` is
            the start of the layer in θ.
        """
        fan_in, fan_out = self.layout.widths[layer - 1], self.layout.widths[layer]
        local_indices = np.asarray(local_indices, dtype=np.int64)
        if local_indices.min() < 0 or local_indices.max() >= (fan_in + 1) * fan_out:
            raise IndexError(f"local indices of layer {layer} must be in [0, {(fan_in + 1) * fan_out})")
        is_kernel = local_indices < fan_in * fan_out
        # Kernel entry W[i, j] sits at i·fan_out + j; bias j uses the appended input column fan_in.
        input_index = np.where(is_kernel, local_indices // fan_out, fan_in)
        output_index = np.where(is_kernel, local_indices % fan_out, local_indices - fan_in * fan_out)
        pde, boundary = self._block(
            layer,
            tf.constant(input_index, tf.int32),
            tf.constant(output_index, tf.int32),
            [p.as_structure() for p in self.point_sets],
        )
        return pde.numpy().astype(np.float64), boundary.numpy().astype(np.float64)

    def _block_eager(self, layer: int, input_index, output_index, point_structures):
        totals = {"pde": None, "boundary": None}
        for point_set, structure in zip(self.point_sets, point_structures):
            rows = self._point_set_rows(layer, input_index, output_index, point_set, structure)
            kind = point_set.kind
            totals[kind] = rows if totals[kind] is None else totals[kind] + rows
        k = tf.shape(input_index)[0]
        n_rows = self.layout.n_params - self.layout.layer_slice(layer).start
        empty = tf.zeros([k, n_rows], self.dtype)
        return (
            totals["pde"] if totals["pde"] is not None else empty,
            totals["boundary"] if totals["boundary"] is not None else empty,
        )

    def _point_set_rows(self, layer: int, input_index, output_index, point_set: _PointSet, data: dict) -> tf.Tensor:
        # Tangents are laid out (N, k, n): points first, so that every contraction over the
        # points is one 2-D matrix product without transposing a large tensor.
        L = self.n_layers
        is_pde = point_set.kind == "pde"
        forward = _pde_forward_tangent if is_pde else _boundary_forward_tangent
        reverse = _pde_reverse_tangent if is_pde else _boundary_reverse_tangent
        out = point_set.output_stream
        k = tf.shape(input_index)[0]

        # Layer `layer`'s pre-activation tangent, one column per direction: the input stream
        # picked by input_index, in unit output_index (shape (N, k) per stream).
        column_tangents = [tf.gather(s, input_index, axis=1) for s in data["streams_with_bias"][layer - 1]]
        unit_mask = tf.one_hot(output_index, self.layout.widths[layer], dtype=self.dtype)  # (k, n_layer)

        # Forward tangents of the full hidden layers above `layer`: dA[m], dS[m] with m 0-based.
        full_pre = {}
        full_out = {}
        if layer < L:
            c_layer = {name: tf.gather(v, output_index, axis=1) for name, v in data["coefficients"][layer - 1].items()}
            column_out = forward(c_layer, *column_tangents)
            next_kernel_rows = tf.gather(self.params[layer][0], output_index)  # (k, n_{layer+1})
            pre = [t[:, :, None] * next_kernel_rows for t in column_out]
            for m in range(layer, L - 1):
                full_pre[m] = pre
                full_out[m] = forward(_expand_coefficients(data["coefficients"][m]), *pre)
                pre = [_stream_matmul(t, self.params[m + 1][0]) for t in full_out[m]]
            output_tangent = pre[out][:, :, 0]
        else:
            output_tangent = column_tangents[out]

        # Tangent of the output adjoint: d(2w·r/N) = (2w/N)·d(output), shape (N, k).
        output_adjoint_tangent = point_set.tangent_scale * output_tangent
        rows = []

        # Output layer rows: kernel Sᵀ·dĀ + dSᵀ·Ā on the loss-carrying stream, bias ΣdĀ for u.
        stream_below = data["streams"][L - 1][out]
        kernel_row = tf.matmul(output_adjoint_tangent, stream_below, transpose_a=True)  # (k, n_{L-1})
        if layer < L:
            adjoint = data["output_adjoint"]
            if layer == L - 1:
                kernel_row += tf.linalg.matvec(column_out[out], adjoint, transpose_a=True)[:, None] * unit_mask
            else:
                kernel_row += _contract_points(full_out[L - 2][out], adjoint[:, None])[:, :, 0]
        bias_row = tf.reduce_sum(output_adjoint_tangent, 0)[:, None] if not is_pde else tf.zeros([k, 1], self.dtype)
        rows.append(tf.concat([kernel_row, bias_row], 1))
        if layer == L:
            return tf.concat(rows, 1)

        # Tangent reverse sweep from the last hidden layer down to `layer`.
        output_kernel = self.params[L - 1][0][:, 0]
        adjoint_tangents = [None] * len(column_tangents)
        adjoint_tangents[out] = output_adjoint_tangent[:, :, None] * output_kernel
        for m in reversed(range(layer - 1, L - 1)):
            if m > layer - 1:
                pre_adjoint_tangents = reverse(_expand_coefficients(data["coefficients"][m]), adjoint_tangents, full_pre[m])
            else:
                # M·dA only in each direction's own unit, where the column tangents live.
                pre_adjoint_tangents = reverse(_expand_coefficients(data["coefficients"][m]), adjoint_tangents, None)
                column_extra = reverse(c_layer, [None] * len(column_tangents), column_tangents)
                pre_adjoint_tangents = [
                    full if extra is None else full + extra[:, :, None] * unit_mask
                    for full, extra in zip(pre_adjoint_tangents, column_extra)
                ]

            fan_in, fan_out = self.layout.widths[m], self.layout.widths[m + 1]
            # Sᵀ·dĀ: the stored input streams against the adjoint tangents, as (n_in, k·n_out).
            kernel_rows = 0
            for stream, tangent in zip(data["streams"][m], pre_adjoint_tangents):
                if tangent is not None:
                    kernel_rows += tf.matmul(stream, tf.reshape(tangent, [-1, k * fan_out]), transpose_a=True)
            kernel_rows = tf.transpose(tf.reshape(kernel_rows, [fan_in, k, fan_out]), [1, 0, 2])
            if m > layer - 1:
                # dSᵀ·Ā: the input streams of layer m + 1 move too.
                for index, adjoint in enumerate(data["adjoints"][m]):
                    if adjoint is None:
                        continue
                    if m - 1 == layer - 1:
                        moved = tf.matmul(column_out[index], adjoint, transpose_a=True)  # (k, n_out)
                        kernel_rows += unit_mask[:, :, None] * moved[:, None, :]
                    else:
                        kernel_rows += _contract_points(full_out[m - 1][index], adjoint)
            bias_rows = tf.reduce_sum(pre_adjoint_tangents[0], 0)
            rows.append(tf.concat([tf.reshape(kernel_rows, [k, fan_in * fan_out]), bias_rows], 1))
            if m > layer - 1:
                adjoint_tangents = [
                    _stream_matmul(t, self.params[m][0], transpose_b=True) if t is not None else None
                    for t in pre_adjoint_tangents
                ]
        return tf.concat(rows[::-1], 1)


    # --- Hessian-vector products in arbitrary directions -------------------------------

    def products(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return H_pde·V and H_bc·V for V of shape (P, k), each float64 of shape (P, k).

        Every layer's parameters move along V, so each product costs one full forward
        tangent sweep and one full tangent reverse sweep, about two gradients' work.
        """
        vectors = np.asarray(vectors)
        tangents = tf.constant(vectors.T, dtype=self.dtype)
        pde, boundary = self._products(tangents, [p.as_structure() for p in self.point_sets])
        return pde.numpy().T.astype(np.float64), boundary.numpy().T.astype(np.float64)

    def _products_eager(self, tangents: tf.Tensor, point_structures):
        k = tf.shape(tangents)[0]
        pieces = tf.split(tangents, self.layout.block_sizes, axis=1)
        directions = [
            (tf.reshape(pieces[2 * i], [k, *self.layout.blocks[2 * i].shape]), pieces[2 * i + 1])
            for i in range(self.n_layers)
        ]
        totals = {"pde": tf.zeros([k, self.layout.n_params], self.dtype), "boundary": tf.zeros([k, self.layout.n_params], self.dtype)}
        for point_set, data in zip(self.point_sets, point_structures):
            totals[point_set.kind] += self._point_set_products(directions, point_set, data)
        return totals["pde"], totals["boundary"]

    def _point_set_products(self, directions, point_set: _PointSet, data: dict) -> tf.Tensor:
        L = self.n_layers
        is_pde = point_set.kind == "pde"
        forward = _pde_forward_tangent if is_pde else _boundary_forward_tangent
        reverse = _pde_reverse_tangent if is_pde else _boundary_reverse_tangent
        out = point_set.output_stream
        k = tf.shape(directions[0][1])[0]

        # Forward tangents, (N, k, n) per stream: dA = dS·W + S·dW (+ db on the value stream).
        pre_tangents, out_tangents = [], []
        stream_tangents = None
        for i in range(L):
            kernel = self.params[i][0]
            kernel_direction, bias_direction = directions[i]
            pre = []
            for index, stream in enumerate(data["streams"][i]):
                moved = _times_kernel_directions(stream, kernel_direction)
                if stream_tangents is not None:
                    moved += _stream_matmul(stream_tangents[index], kernel)
                if index == 0:
                    moved += bias_direction[None]
                pre.append(moved)
            pre_tangents.append(pre)
            if i < L - 1:
                stream_tangents = forward(_expand_coefficients(data["coefficients"][i]), *pre)
                out_tangents.append(stream_tangents)

        output_adjoint_tangent = point_set.tangent_scale * pre_tangents[L - 1][out][:, :, 0]  # (N, k)
        adjoint = data["output_adjoint"]
        rows = []

        # Output layer: kernel Sᵀ·dĀ + dSᵀ·Ā on the loss-carrying stream, bias ΣdĀ for u.
        kernel_row = tf.matmul(output_adjoint_tangent, data["streams"][L - 1][out], transpose_a=True)
        kernel_row += _contract_points(out_tangents[L - 2][out], adjoint[:, None])[:, :, 0]
        bias_row = tf.reduce_sum(output_adjoint_tangent, 0)[:, None] if not is_pde else tf.zeros([k, 1], self.dtype)
        rows.append(tf.concat([kernel_row, bias_row], 1))

        # dS̄ = dĀ·Wᵀ + Ā·dWᵀ for the last hidden layer's output streams.
        output_kernel, output_direction = self.params[L - 1][0][:, 0], directions[L - 1][0][:, :, 0]
        adjoint_tangents = [None] * len(data["streams"][0])
        adjoint_tangents[out] = output_adjoint_tangent[:, :, None] * output_kernel + adjoint[:, None, None] * output_direction[None]

        for i in reversed(range(L - 1)):
            pre_adjoint_tangents = reverse(_expand_coefficients(data["coefficients"][i]), adjoint_tangents, pre_tangents[i])
            fan_in, fan_out = self.layout.widths[i], self.layout.widths[i + 1]
            kernel_rows = 0
            for stream, tangent in zip(data["streams"][i], pre_adjoint_tangents):
                kernel_rows += tf.matmul(stream, tf.reshape(tangent, [-1, k * fan_out]), transpose_a=True)
            kernel_rows = tf.transpose(tf.reshape(kernel_rows, [fan_in, k, fan_out]), [1, 0, 2])
            if i > 0:
                for tangent, stream_adjoint in zip(out_tangents[i - 1], data["adjoints"][i]):
                    kernel_rows += _contract_points(tangent, stream_adjoint)
            bias_rows = tf.reduce_sum(pre_adjoint_tangents[0], 0)
            rows.append(tf.concat([tf.reshape(kernel_rows, [k, fan_in * fan_out]), bias_rows], 1))
            if i > 0:
                kernel, kernel_direction = self.params[i][0], directions[i][0]
                adjoint_tangents = [
                    _stream_matmul(t, kernel, transpose_b=True) + _times_kernel_directions(a, kernel_direction, transpose=True)
                    for t, a in zip(pre_adjoint_tangents, data["adjoints"][i])
                ]
        return tf.concat(rows[::-1], 1)


def _times_kernel_directions(stream: tf.Tensor, kernel_directions: tf.Tensor, transpose: bool = False) -> tf.Tensor:
    """Return stream · dW_κ for every direction κ, (N, p) and (k, p, q) to (N, k, q); dW_κᵀ if ``transpose``."""
    order = [2, 0, 1] if transpose else [1, 0, 2]
    stacked = tf.transpose(kernel_directions, order)  # (p, k, q) in the product's orientation
    k, q = tf.shape(stacked)[1], stacked.shape[-1]
    product = tf.matmul(stream, tf.reshape(stacked, [stacked.shape[0], -1]))
    return tf.reshape(product, [-1, k, q])


def _chunk_ranges(n: int, chunk: int | None) -> list[tuple[int, int]]:
    size = n if chunk is None else max(1, min(int(chunk), n))
    return [(start, min(start + size, n)) for start in range(0, n, size)]
