"""Spectrum page: the eigenvalues of the Hessian at the trained θ, in total and per loss term."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

import app_state
import figures
import page_parts
from hessian_core import views

settings = app_state.current_settings()
st.title("Spectrum of the Hessian")
st.write(
    "Eigenvalues λ of the Hessian: large positive ones are stiff directions of the loss, negative ones "
    "are directions of descent still open at the trained θ. \"Top\" always means largest algebraic."
)

training = page_parts.require_training(settings)
stored = page_parts.spectrum_result(settings, training)
if stored is None:
    st.stop()
result: views.SpectrumResult = stored.value
summary = result.summary
estimated = summary.mode == "lanczos"

columns = st.columns(5)
columns[0].metric("λ_max", f"{summary.largest:.4e}", help="Largest algebraic eigenvalue.")
columns[1].metric("λ_min", f"{summary.smallest:.4e}", help="Smallest algebraic (most negative) eigenvalue.")
columns[2].metric(
    "Negative eigenvalues", f"≈ {summary.n_negative:.0f}" if estimated else f"{summary.n_negative:.0f}",
    help="Estimated from the SLQ weights on negative nodes." if estimated else "Eigenvalues below −P·eps·max|λ|.",
)
trace_text = f"{summary.trace:.4e}" + (f" ± {summary.trace_standard_error:.1e}" if summary.trace_standard_error is not None else "")
columns[3].metric("Trace", trace_text, help="Hutchinson's estimate ± standard error." if estimated else "Sum of all eigenvalues.")
if summary.condition_number is None:
    condition_text = "needs dense"
elif math.isinf(summary.condition_number):
    condition_text = "∞"
else:
    condition_text = f"{summary.condition_number:.3e}"
columns[4].metric(
    "Condition number", condition_text,
    help="λ_max over the smallest positive eigenvalue above the zero tolerance; it needs every eigenvalue, so the dense eigensolver.",
)

decades = st.slider("Decades shown linearly below max |λ|", 1, 16, 6,
                    help="The eigenvalue axis is sign(λ)·log10(1 + |λ|/c) with c = max|λ|·10^(−decades).")

if result.spectra is not None:
    max_abs = float(np.max(np.abs(result.spectra["total"])))
    threshold = views.symlog_threshold(max_abs, decades)
    page_parts.figure(
        figures.sorted_eigenvalues({"total": result.spectra["total"]}, threshold),
        "sorted_eigenvalues",
        "Eigenvalues from largest to smallest on a symmetric-log axis; points below the grey zero line are negative.",
    )
    page_parts.figure(
        figures.eigenvalue_density({"total": views.symlog_histogram(result.spectra["total"], threshold)}, max_abs, threshold),
        "eigenvalue_density",
        "The share of eigenvalues in each bin of the symmetric-log axis; most of them crowd near zero.",
    )
else:
    max_abs = max(abs(summary.largest), abs(summary.smallest))
    threshold = views.symlog_threshold(max_abs, decades)
    found = {"top-k (Lanczos)": result.top_eigenvalues, "most negative (Lanczos)": result.bottom_eigenvalues}
    page_parts.figure(
        figures.sorted_eigenvalues(found, threshold),
        "sorted_eigenvalues",
        "The eigenvalues Lanczos found, largest first, on a symmetric-log axis; the most negative one is drawn at rank 1 of its own trace.",
    )
    total_density = result.densities["total"]
    page_parts.figure(
        figures.slq_densities({"total": (total_density.grid, total_density.density)}, max_abs, threshold),
        "eigenvalue_density",
        "A smoothed estimate of where the eigenvalues lie, from a few Lanczos runs on random start vectors.",
    )

st.subheader(f"Top {summary.top_eigenvalues.size} eigenpairs")
st.dataframe(views.eigenvalue_table(summary), hide_index=True, column_config={
    "eigenvalue": st.column_config.NumberColumn(format="%.6e"),
    "residual ‖Hv − λv‖ / |λ|": st.column_config.NumberColumn(format="%.1e"),
})
st.caption("Each residual is measured with one more Hessian-vector product; a residual near machine precision means the pair is exact.")

st.subheader("PDE term against boundary term")
if result.spectra is not None and page_parts.term_spectra(settings, stored):
    # A term can reach further from zero than the total, so the axis is set from all three.
    term_max_abs = max(float(np.max(np.abs(values))) for values in result.spectra.values())
    term_threshold = views.symlog_threshold(term_max_abs, decades)
    page_parts.figure(
        figures.sorted_eigenvalues(result.spectra, term_threshold),
        "term_spectra",
        "The sorted spectra of the total, PDE and boundary Hessians overlaid; the terms add up to the total matrix, not their eigenvalues.",
    )
    page_parts.figure(
        figures.eigenvalue_density(views.symlog_histograms(result.spectra, term_threshold), term_max_abs, term_threshold),
        "term_densities",
        "The same three spectra as overlaid histograms; the term with more mass far from zero dominates the curvature.",
    )
elif result.densities is not None:
    page_parts.figure(
        figures.slq_densities({name: (d.grid, d.density) for name, d in result.densities.items()}, max_abs, threshold),
        "term_densities",
        "SLQ densities of the total, PDE and boundary Hessians overlaid; the term with more mass far from zero dominates the curvature.",
    )

st.download_button("Eigenvalues (.csv)", views.eigenvalues_csv(result), file_name="eigenvalues.csv", mime="text/csv", on_click="ignore")
