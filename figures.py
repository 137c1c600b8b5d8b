"""Plotly figures of the dashboard, built from arrays that ``hessian_core`` computed.

No Streamlit here, so the tests can build every figure and read its spec directly.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from hessian_core import views
from hessian_core.network import NetworkLayout

# Diverging scale for signed values: blue negative, white zero, red positive.
DIVERGING = "RdBu_r"
SEQUENTIAL = "Viridis"
TERM_COLOURS = {"total": "#1f77b4", "pde": "#d62728", "boundary": "#2ca02c"}


def figure_html(figure: go.Figure) -> str:
    """Return a standalone HTML page of ``figure`` with plotly.js embedded, so it opens offline."""
    return figure.to_html(include_plotlyjs=True, full_html=True)


def _square(figure: go.Figure) -> go.Figure:
    figure.update_yaxes(scaleanchor="x", scaleratio=1, constrain="domain")
    figure.update_xaxes(constrain="domain")
    return figure


# --- Training -------------------------------------------------------------------------------


def loss_curve(history: views.LossHistory) -> go.Figure:
    """Total, PDE and boundary loss against the step, on a log axis."""
    figure = go.Figure()
    for name, values in (("total", history.total), ("pde", history.pde), ("boundary", history.boundary)):
        figure.add_trace(
            go.Scatter(
                x=history.steps,
                y=values,
                mode="lines",
                name={"pde": "PDE"}.get(name, name),
                line={"color": TERM_COLOURS[name], "width": 2 if name == "total" else 1.3},
            )
        )
    if 0 < history.adam_steps < (history.steps.max() if history.steps.size else 0):
        figure.add_vline(x=history.adam_steps + 0.5, line_dash="dot", line_color="grey", annotation_text="L-BFGS-B starts")
    figure.update_layout(
        title="Loss during training",
        xaxis_title="step (Adam, then L-BFGS-B iterations)",
        yaxis_title="loss",
        yaxis_type="log",
        yaxis_exponentformat="e",
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        height=380,
        margin={"t": 60, "b": 40},
    )
    return figure


def field_heatmap(
    axis: np.ndarray,
    values: np.ndarray,
    title: str,
    *,
    diverging: bool = False,
    zrange: tuple[float, float] | None = None,
    points: np.ndarray | None = None,
    points_name: str = "",
) -> go.Figure:
    """Heatmap of a field on the square grid, optionally with collocation points on top."""
    heatmap = go.Heatmap(
        x=axis,
        y=axis,
        z=values,
        colorscale=DIVERGING if diverging else SEQUENTIAL,
        zmid=0.0 if diverging else None,
        zmin=None if zrange is None else zrange[0],
        zmax=None if zrange is None else zrange[1],
        colorbar={"thickness": 12},
        hovertemplate="x %{x:.3f}<br>y %{y:.3f}<br>%{z:.3e}<extra></extra>",
    )
    figure = go.Figure(heatmap)
    if points is not None and len(points):
        figure.add_trace(
            go.Scatter(
                x=points[:, 0],
                y=points[:, 1],
                mode="markers",
                marker={"size": 4, "color": "black"},
                name=points_name,
                showlegend=bool(points_name),
            )
        )
    figure.update_layout(
        title=title,
        xaxis_title="x",
        yaxis_title="y",
        height=380,
        margin={"t": 50, "b": 40, "l": 40, "r": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    figure.update_xaxes(range=[-1.05, 1.05])
    figure.update_yaxes(range=[-1.05, 1.05])
    return _square(figure)


# --- Hessian --------------------------------------------------------------------------------


def hessian_heatmap(
    matrix: np.ndarray,
    layout: NetworkLayout,
    decades: float,
    title: str,
    rows: tuple[int, int] | None = None,
    columns: tuple[int, int] | None = None,
) -> go.Figure:
    """Symlog heatmap of ``matrix[rows, columns]``, pooled to at most 600 cells a side.

    The axes are in θ-index units, block boundaries are drawn as lines and block names are
    the tick labels, so the figure reads the same whether pooled or at full resolution.
    """
    rows = rows or (0, matrix.shape[0])
    columns = columns or (0, matrix.shape[1])
    window = matrix[rows[0] : rows[1], columns[0] : columns[1]]
    pooled = views.pool_max_magnitude(window)
    max_abs = float(np.max(np.abs(pooled.values))) if pooled.values.size else 0.0
    threshold = views.symlog_threshold(max_abs, decades)
    transformed = views.symlog(pooled.values, threshold)
    tick_positions, tick_labels = views.symlog_ticks(max_abs, threshold)
    colour_limit = float(np.max(np.abs(transformed))) or 1.0

    figure = go.Figure(
        go.Heatmap(
            x=pooled.starts(1) + columns[0],
            y=pooled.starts(0) + rows[0],
            z=transformed,
            customdata=pooled.values,
            colorscale=DIVERGING,
            zmin=-colour_limit,
            zmax=colour_limit,
            colorbar={"title": {"text": "entry"}, "tickvals": tick_positions, "ticktext": tick_labels, "thickness": 12},
            hovertemplate="row %{y}<br>column %{x}<br>value %{customdata:.4e}<extra></extra>",
            xgap=0,
            ygap=0,
        )
    )
    for boundary in views.block_boundaries(layout):
        if columns[0] < boundary < columns[1]:
            figure.add_vline(x=boundary - 0.5 * pooled.tile, line_width=0.6, line_color="black")
        if rows[0] < boundary < rows[1]:
            figure.add_hline(y=boundary - 0.5 * pooled.tile, line_width=0.6, line_color="black")
    row_labels = views.block_labels(layout, *rows, high=rows[0] + pooled.starts(0)[-1])
    column_labels = views.block_labels(layout, *columns, high=columns[0] + pooled.starts(1)[-1])
    resolution = "full resolution" if pooled.tile == 1 else f"pooled {pooled.tile}×{pooled.tile} (largest |entry| of each tile)"
    figure.update_layout(
        title=f"{title}: rows {rows[0]}–{rows[1] - 1}, columns {columns[0]}–{columns[1] - 1}, {resolution}",
        xaxis={"title": "θ index (column)", "tickvals": column_labels.positions, "ticktext": column_labels.names, "tickangle": -45},
        yaxis={"title": "θ index (row)", "tickvals": row_labels.positions, "ticktext": row_labels.names, "autorange": "reversed"},
        height=720,
        margin={"t": 60, "l": 120, "b": 120},
    )
    return _square(figure)


def block_norm_heatmap(norms: np.ndarray, layout: NetworkLayout, title: str) -> go.Figure:
    """Frobenius norm of every block pair, colour on log10, value written in each cell."""
    names = [block.name for block in layout.blocks]
    positive = norms[norms > 0]
    floor = float(positive.min()) if positive.size else 1.0
    figure = go.Figure(
        go.Heatmap(
            x=names,
            y=names,
            z=np.log10(np.maximum(norms, floor)),
            text=[[f"{value:.2e}" for value in row] for row in norms],
            texttemplate="%{text}",
            textfont={"size": 10},
            colorscale=SEQUENTIAL,
            colorbar={"title": {"text": "log10 ‖·‖F"}, "thickness": 12},
            hovertemplate="%{y} × %{x}<br>‖·‖F %{text}<extra></extra>",
        )
    )
    figure.update_layout(
        title=title,
        xaxis_title="column block",
        yaxis_title="row block",
        yaxis_autorange="reversed",
        height=460,
        margin={"t": 50},
    )
    return figure


# --- Spectrum -------------------------------------------------------------------------------


def _symlog_axis(figure: go.Figure, axis: str, max_abs: float, threshold: float, title: str) -> None:
    positions, labels = views.symlog_ticks(max_abs, threshold, per_side=5)
    figure.update_layout({axis: {"title": title, "tickvals": positions, "ticktext": labels, "zeroline": True}})


def sorted_eigenvalues(spectra: dict[str, np.ndarray], threshold: float) -> go.Figure:
    """Eigenvalues in descending order against their rank, on a symlog y axis."""
    figure = go.Figure()
    max_abs = 0.0
    for name, eigenvalues in spectra.items():
        values = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
        max_abs = max(max_abs, float(np.max(np.abs(values))) if values.size else 0.0)
        figure.add_trace(
            go.Scatter(
                x=np.arange(1, values.size + 1),
                y=views.symlog(values, threshold),
                customdata=values,
                mode="lines+markers" if values.size <= 200 else "lines",
                marker={"size": 4},
                name=name,
                hovertemplate="rank %{x}<br>λ %{customdata:.4e}<extra>" + name + "</extra>",
            )
        )
    figure.add_hline(y=0.0, line_color="grey", line_width=1)
    _symlog_axis(figure, "yaxis", max_abs, threshold, "eigenvalue λ (symlog)")
    figure.update_layout(title="Sorted eigenvalues", xaxis_title="rank (1 = largest algebraic)", height=420, margin={"t": 50})
    return figure


def eigenvalue_density(histograms: dict[str, tuple[np.ndarray, np.ndarray]], max_abs: float, threshold: float) -> go.Figure:
    """Fraction of eigenvalues per symlog bin, one bar trace per spectrum, overlaid."""
    figure = go.Figure()
    for name, (edges, fractions) in histograms.items():
        figure.add_trace(
            go.Bar(
                x=0.5 * (edges[:-1] + edges[1:]),
                y=fractions,
                width=np.diff(edges),
                name=name,
                opacity=0.6,
                hovertemplate="fraction %{y:.3f}<extra>" + name + "</extra>",
            )
        )
    _symlog_axis(figure, "xaxis", max_abs, threshold, "eigenvalue λ (symlog)")
    figure.update_layout(
        title="Eigenvalue density",
        yaxis_title="fraction of eigenvalues",
        yaxis_type="log",
        barmode="overlay",
        height=420,
        margin={"t": 50},
    )
    return figure


def slq_densities(densities: dict[str, tuple[np.ndarray, np.ndarray]], max_abs: float, threshold: float) -> go.Figure:
    """Spectral densities from stochastic Lanczos quadrature, one line per matrix, symlog x axis."""
    figure = go.Figure()
    for name, (grid, density) in densities.items():
        figure.add_trace(
            go.Scatter(x=views.symlog(grid, threshold), y=density, customdata=grid, mode="lines", name=name,
                       hovertemplate="λ %{customdata:.3e}<br>density %{y:.3e}<extra>" + name + "</extra>")
        )
    _symlog_axis(figure, "xaxis", max_abs, threshold, "eigenvalue λ (symlog)")
    figure.update_layout(title="Spectral density (stochastic Lanczos quadrature)", yaxis_title="density",
                         yaxis_type="log", height=420, margin={"t": 50})
    return figure


# --- Landscape ------------------------------------------------------------------------------


def landscape_slices(
    alphas: np.ndarray, curves: dict[str, np.ndarray], models: dict[str, np.ndarray], title: str, log_axis: bool = True
) -> go.Figure:
    """Loss along each direction (solid) with its quadratic model (dashed, same colour)."""
    figure = go.Figure()
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    for index, (name, values) in enumerate(curves.items()):
        colour = palette[index % len(palette)]
        figure.add_trace(go.Scatter(x=alphas, y=values, mode="lines", name=name, line={"color": colour}))
        if name in models:
            figure.add_trace(
                go.Scatter(x=alphas, y=models[name], mode="lines", name=f"{name}, quadratic model",
                           line={"color": colour, "dash": "dash"})
            )
    figure.update_layout(title=title, xaxis_title="step α along the unit direction", yaxis_title="loss L(θ + α d)",
                         yaxis_type="log" if log_axis else "linear", height=420, margin={"t": 50})
    return figure


def log10_positive(values: np.ndarray) -> np.ndarray:
    """Return log10 of the values, with zero losses drawn at the smallest positive float."""
    return np.log10(np.maximum(values, np.finfo(np.float64).tiny))


def landscape_contour(alphas: np.ndarray, betas: np.ndarray, values: np.ndarray) -> go.Figure:
    """Contours of log10 L(θ + α v₁ + β v₂)."""
    figure = go.Figure(
        go.Contour(x=alphas, y=betas, z=log10_positive(values), colorscale=SEQUENTIAL, customdata=values,
                   colorbar={"title": {"text": "log10 L"}, "thickness": 12},
                   hovertemplate="α %{x:.3f}<br>β %{y:.3f}<br>L %{customdata:.4e}<extra></extra>")
    )
    figure.add_trace(go.Scatter(x=[0.0], y=[0.0], mode="markers", marker={"color": "white", "size": 9, "line": {"color": "black", "width": 1}}, name="trained θ"))
    figure.update_layout(title="Loss over the plane of eigenvectors 1 and 2", xaxis_title="α along eigenvector 1",
                         yaxis_title="β along eigenvector 2", height=480, margin={"t": 50})
    return _square(figure)


def landscape_surface(alphas: np.ndarray, betas: np.ndarray, values: np.ndarray) -> go.Figure:
    """Draw the plane of :func:`landscape_contour` as a 3D surface of log10 L."""
    figure = go.Figure(go.Surface(x=alphas, y=betas, z=log10_positive(values), colorscale=SEQUENTIAL, colorbar={"title": {"text": "log10 L"}}))
    figure.update_layout(
        title="Loss surface over eigenvectors 1 and 2",
        scene={"xaxis_title": "α (eigenvector 1)", "yaxis_title": "β (eigenvector 2)", "zaxis_title": "log10 L"},
        height=520,
        margin={"t": 50},
    )
    return figure
