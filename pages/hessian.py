"""Hessian page: the dense Hessian of the trained loss, its blocks, terms and method record."""

from __future__ import annotations

import numpy as np
import streamlit as st

import app_state
import figures
import page_parts
from hessian_core import views
from hessian_core.hessian_methods import compute_hessian
from hessian_core.settings import HESSIAN_METHODS

TERMS = ("total", "PDE", "boundary", "Gauss-Newton", "H − GN")

settings = app_state.current_settings()
st.title("Hessian of the loss")
st.write(
    "The matrix of second derivatives ∂²L/∂θᵢ∂θⱼ at the trained θ, with one row and one column per "
    "network parameter, ordered layer by layer (kernel, then bias)."
)

training = page_parts.require_training(settings)
hessian = page_parts.hessian_result(settings, training)
if hessian is None:
    st.stop()

result = hessian.value
record = result.record.to_dict()
st.caption(f"Computed by the {record['method']} method in {record['dtype']}; the stored matrices are float64 and exactly symmetric.")
columns = st.columns(5)
columns[0].metric("Parameters", f"{record['n_params']:,}")
columns[1].metric("Time", views.format_duration(record["seconds"]))
columns[2].metric("Block size", f"{record['block_size']} columns")
columns[3].metric("Asymmetry", f"{record['asymmetry']:.1e}", help="max|H − Hᵀ| / max|H| before symmetrisation.")
columns[4].metric("Computed in", record["dtype"])
with st.expander("Full record of the computation"):
    st.json(record)

term = st.radio("Term", TERMS, horizontal=True, key="hessian_term", help="Which matrix to draw: the Hessian of the total loss, of each term, the Gauss-Newton matrix, or the residual-curvature part H − GN.")
decades = st.slider(
    "Decades shown linearly below max |entry|", 1, 12, 4,
    help="The colour scale is sign(x)·log10(1 + |x|/c) with c = max|entry|·10^(−decades); more decades show smaller entries.",
)
app_state.interrupted_note("gauss_newton")
with app_state.errors_on_page("The Gauss-Newton matrix", kind="gauss_newton"):
    matrix = page_parts.hessian_term(term, settings, training, hessian)
if matrix is None:
    st.stop()

layout = training.value.loss.layout
page_parts.figure(
    figures.hessian_heatmap(matrix, layout, decades, f"{term} Hessian"),
    "hessian_heatmap",
    "Red entries are positive and blue negative on a symmetric-log scale; black lines separate the parameter blocks named on the axes.",
)

st.subheader("Open a block at full resolution")
names = [block.name for block in layout.blocks]
left, right = st.columns(2)
row_block = left.selectbox("Row block", names, index=min(2, len(names) - 1), key="zoom_rows")
column_block = right.selectbox("Column block", names, index=min(2, len(names) - 1), key="zoom_columns")
row_start, row_stop = views.block_range(layout, row_block)
column_start, column_stop = views.block_range(layout, column_block)
row_first = left.number_input("First row index", row_start, row_stop - 1, row_start, key="zoom_row_first",
                              help=f"At most {views.MAX_HEATMAP_CELLS} rows are drawn at full resolution, from this index on.")
column_first = right.number_input("First column index", column_start, column_stop - 1, column_start, key="zoom_column_first",
                                  help=f"At most {views.MAX_HEATMAP_CELLS} columns are drawn at full resolution, from this index on.")
rows = views.clip_range(row_first, row_stop, layout.n_params)
window_columns = views.clip_range(column_first, column_stop, layout.n_params)
page_parts.figure(
    figures.hessian_heatmap(matrix, layout, decades, f"{term} Hessian", rows=rows, columns=window_columns),
    "hessian_block",
    "One cell per entry; hover a cell for its exact value and its row and column in θ.",
)

page_parts.figure(
    figures.block_norm_heatmap(views.block_frobenius_norms(matrix, layout), layout, f"Frobenius norm of each block of the {term} Hessian"),
    "block_norms",
    "Each cell is the Frobenius norm of one block pair, coloured on a log scale, so the strongest couplings between layers stand out.",
)

with st.expander("Cross-check against a second method"):
    others = [m for m in HESSIAN_METHODS if m not in (record["method"], "matrix-free", "gauss-newton")]
    second = st.selectbox("Second method", others, help="Computes the total Hessian again by this method and compares it entry by entry.")
    app_state.interrupted_note("cross_check")
    if st.button("Run the cross-check"):
        with app_state.errors_on_page("The cross-check", kind="cross_check"), st.spinner(f"Computing the Hessian by {second}"):
            other = compute_hessian(training.value.loss, training.value.result.theta, second, settings.memory_budget_gib, split_terms=False)
            difference = float(np.max(np.abs(other.matrix - result.matrix)) / np.max(np.abs(result.matrix)))
            app_state.save_result("cross_check", settings, {"method": second, "difference": difference, "record": other.record.to_dict()}, source=hessian)
    check = app_state.fresh_result("cross_check", settings)
    if check is not None:
        st.metric(f"max |H({record['method']}) − H({check.value['method']})| / max |H|", f"{check.value['difference']:.2e}")
        st.caption(f"{check.value['method']} took {views.format_duration(check.value['record']['seconds'])}.")

st.download_button(
    f"{term} matrix (.npy)",
    lambda: page_parts.npy_bytes(matrix),
    file_name=f"hessian_{page_parts.file_stem(term)}.npy",
    mime="application/octet-stream",
    on_click="ignore",
    help="The full P × P float64 matrix; for the default network about 225 MB.",
)
