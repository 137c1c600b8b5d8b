"""Streamlit pieces that every page uses: a figure with its reading note and HTML download."""

from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import app_state
import figures
from hessian_core import views
from hessian_core.settings import Settings


def figure(fig: go.Figure, name: str, how_to_read: str) -> None:
    """Draw ``fig``, the sentence on how to read it, and a button that downloads it as HTML."""
    st.plotly_chart(fig, key=f"figure_{name}")
    st.caption(how_to_read)
    st.download_button(
        "Figure as HTML",
        lambda: figures.figure_html(fig),
        file_name=f"{name}.html",
        mime="text/html",
        on_click="ignore",
        key=f"download_{name}",
        help="A standalone page with plotly.js inside, which opens without a network connection.",
    )


def settings_summary(settings: Settings) -> None:
    """List the settings of the run in an expander, boundary sampling included."""
    lines = views.settings_summary(settings)
    with st.expander(f"Settings: {lines['network']}; boundary sampling {settings.boundary}", expanded=False):
        st.markdown("\n".join(f"- **{label}**: {text}" for label, text in lines.items()))


def npy_bytes(array: np.ndarray) -> bytes:
    """Return ``array`` in ``.npy`` format, without pickles."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """Return named arrays in ``.npz`` format."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


def file_stem(label: str) -> str:
    """Turn a label such as ``"H − GN"`` into a file-name part such as ``"h-gn"``."""
    words = "".join(c.lower() if c.isalnum() else " " for c in label).split()
    return "-".join(words) or "figure"


# --- Results shared by several pages --------------------------------------------------------


def require_training(settings: Settings) -> app_state.StoredResult:
    """Return the session's trained model, or stop the page with a note to train first.

    A stale model is still returned with a note, so its earlier results stay visible. The
    compute steps check freshness themselves and never pair it with the new settings.
    """
    stored = app_state.latest_result("training")
    if stored is None:
        st.info("Train the network on the Train page first; this page analyses the trained θ.")
        st.page_link("pages/train.py", label="Go to the Train page")
        st.stop()
    reason = app_state.stale_reason(stored, settings)
    if reason:
        st.warning(f"The trained model is stale ({reason}). Train again on the Train page to analyse the new settings.")
    return stored


def _compute_dense_hessian(settings: Settings, training: app_state.StoredResult) -> app_state.StoredResult | None:
    from hessian_core.hessian_methods import compute_hessian

    model = training.value
    n = model.loss.n_params
    with app_state.errors_on_page("The Hessian", kind="hessian"):
        with st.status(f"Computing the {n:,} × {n:,} Hessian by {settings.hessian_method}", expanded=True) as status:
            bar = st.progress(0.0, text="compiling the Hessian-vector products")

            def on_progress(done: int, total: int) -> None:
                bar.progress(min(done / max(total, 1), 1.0), text=f"{done:,} of {total:,} columns")

            result = compute_hessian(
                model.loss, model.result.theta, settings.hessian_method, settings.memory_budget_gib,
                split_terms=True, progress=on_progress,
            )
            status.update(label=f"Hessian computed in {views.format_duration(result.record.seconds)}", state="complete", expanded=False)
        return app_state.save_result("hessian", settings, result, source=training)
    return None


def hessian_result(settings: Settings, training: app_state.StoredResult) -> app_state.StoredResult | None:
    """Return the dense Hessian for ``settings``, computing it when none exists yet.

    A fresh stored Hessian is returned as it is. A stale one is returned with a note and a
    button that computes it again. Nothing is computed when the settings cannot run (the
    reason is shown first) or when the trained model itself is stale.
    """
    app_state.interrupted_note("hessian")
    stored = app_state.latest_result("hessian")
    if stored is not None and not app_state.stale_reason(stored, settings):
        return stored

    problem = views.dense_hessian_problem(settings)
    if settings.hessian_method == "matrix-free":
        st.info(
            "The Hessian method is matrix-free, so no dense matrix is formed. Choose a dense method in the "
            "sidebar to see the matrix; the Spectrum and Landscape pages work matrix-free."
        )
    elif problem:
        st.warning(problem)
    elif app_state.stale_reason(training, settings):
        pass  # require_training has already shown the note to train again.
    elif stored is None or st.button("Compute the Hessian again", type="primary"):
        computed = _compute_dense_hessian(settings, training)
        if computed is not None:
            return computed

    if stored is not None:
        app_state.show_stale_note(stored, settings)
    return stored


def gauss_newton_result(settings: Settings, training: app_state.StoredResult) -> app_state.StoredResult | None:
    """Return the Gauss-Newton matrices at the trained θ, computing them on first request."""
    from hessian_core.gauss_newton import gauss_newton_matrix

    stored = app_state.fresh_result("gauss_newton", settings)
    if stored is not None:
        return stored
    if app_state.stale_reason(training, settings):
        st.info("The Gauss-Newton matrix is computed from a fresh trained model; train again first.")
        return None
    model = training.value
    with st.spinner("Computing the Gauss-Newton matrix"):
        result = gauss_newton_matrix(model.loss, model.result.theta, settings.memory_budget_gib)
    return app_state.save_result("gauss_newton", settings, result, source=training)


def hessian_term(term: str, settings: Settings, training: app_state.StoredResult, hessian: app_state.StoredResult):
    """Return the matrix of ``term``: total, PDE, boundary, Gauss-Newton or H − GN."""
    result = hessian.value
    if term == "total":
        return result.matrix
    if term == "PDE":
        return result.pde
    if term == "boundary":
        return result.boundary
    gauss_newton = gauss_newton_result(settings, training)
    if gauss_newton is None:
        return None
    if term == "Gauss-Newton":
        return gauss_newton.value.matrix
    return result.matrix - gauss_newton.value.matrix


def _dense_spectrum(settings: Settings, hessian: app_state.StoredResult, report) -> views.SpectrumResult:
    """Eigenvalues of the total Hessian; the PDE and boundary spectra wait for :func:`term_spectra`."""
    from hessian_core.spectrum import dense_spectrum

    dense = dense_spectrum(
        hessian.value.matrix, top_k=settings.top_k, bottom_k=1, memory_budget_gib=settings.memory_budget_gib,
        dtype=settings.dtype, progress=report,
    )
    return views.SpectrumResult(
        summary=views.summarise_dense_spectrum(dense),
        top_eigenvalues=dense.top_eigenvalues,
        top_eigenvectors=dense.top_eigenvectors,
        bottom_eigenvalues=dense.bottom_eigenvalues,
        bottom_eigenvectors=dense.bottom_eigenvectors,
        spectra={"total": dense.eigenvalues},
        densities=None,
        seconds=dense.seconds,
    )


def term_spectra(settings: Settings, spectrum: app_state.StoredResult) -> bool:
    """Add every eigenvalue of the PDE and boundary Hessians to a dense spectrum, on request.

    They cost two more O(P³) eigendecompositions, so they run only on request. The
    result is kept in the stored spectrum. Returns True when both spectra are present.
    """
    app_state.interrupted_note("term_spectra")
    spectra = spectrum.value.spectra
    if all(name in spectra for name in views.TERM_NAMES):
        return True
    hessian = app_state.latest_result("hessian")
    if app_state.stale_reason(spectrum, settings) or hessian is None or spectrum.source_id != hessian.result_id:
        st.info("The PDE and boundary spectra need a fresh spectrum; compute the spectrum again first.")
        return False
    n = hessian.value.matrix.shape[0]
    if not st.button(
        f"Compute the PDE and boundary spectra ({n:,} × {n:,}, two more eigendecompositions)",
        key="compute_term_spectra",
        help="Every eigenvalue of each term's Hessian, to compare how the two terms shape the curvature.",
    ):
        return False
    with app_state.errors_on_page("The term spectra", kind="term_spectra"):
        with st.status("Computing the PDE and boundary spectra", expanded=True) as status:
            for name in views.TERM_NAMES:
                st.write(f"all eigenvalues of the {name} Hessian (eigh)")
                matrix = hessian.value.pde if name == "PDE" else hessian.value.boundary
                spectra[name] = views.all_eigenvalues(matrix, settings.memory_budget_gib)
            status.update(label="PDE and boundary spectra computed", state="complete", expanded=False)
        return True
    return False


# Stochastic Lanczos quadrature and Hutchinson sizes of the matrix-free spectrum.
SLQ_RUNS = 4
SLQ_STEPS = 40
HUTCHINSON_PROBES = 64


def _matrix_free_spectrum(settings: Settings, training: app_state.StoredResult, report) -> views.SpectrumResult:
    import time

    from hessian_core.density import slq_density
    from hessian_core.hvp import HessianVectorProduct
    from hessian_core.lanczos import lanczos_eigenpairs
    from hessian_core.trace import hutchinson_trace

    start = time.perf_counter()
    model = training.value
    n = model.loss.n_params
    budget = settings.memory_budget_gib

    def operator(term: str) -> HessianVectorProduct:
        return HessianVectorProduct(model.loss, model.result.theta, term=term)

    report(f"top {settings.top_k} eigenpairs by Lanczos")
    top = lanczos_eigenpairs(operator("total"), k=min(settings.top_k, n - 1), which="LA", seed=settings.seed, memory_budget_gib=budget)
    report("most negative eigenpair by Lanczos")
    bottom = lanczos_eigenpairs(operator("total"), k=1, which="SA", seed=settings.seed, memory_budget_gib=budget)
    densities = {}
    for name, term in (("total", "total"), ("PDE", "pde"), ("boundary", "boundary")):
        report(f"spectral density of the {name} Hessian (stochastic Lanczos quadrature)")
        densities[name] = slq_density(operator(term), n_runs=SLQ_RUNS, n_steps=min(SLQ_STEPS, n), seed=settings.seed, memory_budget_gib=budget)
    report(f"trace by Hutchinson's estimator, {HUTCHINSON_PROBES} probes")
    trace = hutchinson_trace(operator("total"), n_probes=HUTCHINSON_PROBES, seed=settings.seed)
    summary = views.summarise_matrix_free_spectrum(top, bottom, densities["total"], trace, n)
    if not summary.converged:
        st.warning(f"Lanczos did not converge every pair: {top.message or bottom.message}")
    return views.SpectrumResult(
        summary=summary,
        top_eigenvalues=top.eigenvalues,
        top_eigenvectors=top.eigenvectors,
        bottom_eigenvalues=bottom.eigenvalues,
        bottom_eigenvectors=bottom.eigenvectors,
        spectra=None,
        densities=densities,
        seconds=time.perf_counter() - start,
    )


def spectrum_result(settings: Settings, training: app_state.StoredResult) -> app_state.StoredResult | None:
    """Return the spectrum for ``settings``, computing it (and the dense Hessian it needs) when missing.

    The rules match :func:`hessian_result`: a fresh result is reused, a stale one is shown
    with a note and a button, and nothing runs for settings that cannot run.
    """
    app_state.interrupted_note("spectrum")
    if settings.spectrum == "dense":
        source = hessian_result(settings, training)
        if source is None:
            return app_state.latest_result("spectrum")
    else:
        source = training
    stored = app_state.latest_result("spectrum")
    if stored is not None and not app_state.stale_reason(stored, settings):
        return stored

    problem = views.dense_hessian_problem(settings) if settings.spectrum == "dense" else ""
    if problem:
        pass  # hessian_result has shown it.
    elif app_state.stale_reason(source, settings):
        pass  # The note about the stale source is already on the page.
    elif stored is None or st.button("Compute the spectrum again", type="primary"):
        with app_state.errors_on_page("The spectrum", kind="spectrum"):
            with st.status(f"Computing the spectrum ({settings.spectrum})", expanded=True) as status:
                line = st.empty()

                def report(text: str) -> None:
                    line.write(text.removeprefix("[spectrum] "))

                if settings.spectrum == "dense":
                    value = _dense_spectrum(settings, source, report)
                else:
                    value = _matrix_free_spectrum(settings, training, report)
                status.update(label=f"Spectrum computed in {views.format_duration(value.seconds)}", state="complete", expanded=False)
            return app_state.save_result("spectrum", settings, value, source=source)

    if stored is not None:
        app_state.show_stale_note(stored, settings)
    return stored


DEFAULT_SLICE_EIGENVECTORS = ("top 1", "top 2", "most negative")


def _slices(settings: Settings, training: app_state.StoredResult, spectrum: app_state.StoredResult, names, report=None):
    """Evaluate the loss along the named eigenvectors and the random directions in one call.

    One call compiles the Hessian-vector products behind the quadratic models once, which
    is most of its time on small networks.
    """
    from hessian_core.landscape import line_slices

    model = training.value
    eigenvectors, _ = views.chosen_eigenvectors(spectrum.value, names)
    random = views.unit_random_directions(model.loss.layout, model.result.theta, settings.seed)
    labels = list(names) + [f"random {i + 1}" for i in range(random.shape[1])]
    # No eigenvalues are passed, so every curvature is vᵀHv from Hessian-vector products,
    # which for a unit eigenvector equals its eigenvalue.
    return line_slices(
        model.loss, model.result.theta, np.concatenate([eigenvectors, random], axis=1),
        settings.landscape_range, settings.landscape_points, labels=labels,
        direction_kind="eigenvector and random", direction_seed=settings.seed, include_biases=True,
        direction_source=settings.spectrum, memory_budget_gib=settings.memory_budget_gib, progress=report,
    )


def landscape_result(settings: Settings, training: app_state.StoredResult, spectrum: app_state.StoredResult) -> app_state.StoredResult | None:
    """Return the plane through eigenvectors 1 and 2 and the default slices, computing them when missing.

    The stored value is ``{"surface": Surface, "slices": {eigenvector names: LineSlices}}``;
    every ``LineSlices`` also contains the random directions.
    """
    from hessian_core.landscape import surface

    app_state.interrupted_note("landscape")
    stored = app_state.latest_result("landscape")
    if stored is not None and not app_state.stale_reason(stored, settings):
        return stored
    if app_state.stale_reason(spectrum, settings):
        if stored is not None:
            app_state.show_stale_note(stored, settings)
        return stored
    if stored is not None and not st.button("Compute the landscape again", type="primary"):
        app_state.show_stale_note(stored, settings)
        return stored

    model, eigen = training.value, spectrum.value
    if eigen.top_eigenvalues.size < 2:
        st.warning("The plane needs two eigenvectors, but the spectrum has fewer; raise top-k to at least 2.")
        return None
    names = tuple(name for name in DEFAULT_SLICE_EIGENVECTORS if name in views.eigenvector_choices(eigen))
    with app_state.errors_on_page("The landscape", kind="landscape"):
        with st.status(f"Evaluating the loss on a {settings.landscape_points}² grid and along lines", expanded=True) as status:
            line = st.empty()

            def report(text: str) -> None:
                line.write(text.removeprefix("[landscape] "))

            plane = surface(
                model.loss, model.result.theta, eigen.top_eigenvectors[:, 0], eigen.top_eigenvectors[:, 1],
                settings.landscape_range, settings.landscape_points, labels=("top 1", "top 2"),
                direction_source=settings.spectrum, memory_budget_gib=settings.memory_budget_gib, progress=report,
            )
            report("slices along eigenvectors and random directions")
            slices = _slices(settings, training, spectrum, names, report)
            status.update(label=f"Landscape computed in {views.format_duration(plane.seconds + slices.seconds)}", state="complete", expanded=False)
        return app_state.save_result("landscape", settings, {"surface": plane, "slices": {names: slices}}, source=spectrum)
    return None


def landscape_slices(settings: Settings, training: app_state.StoredResult, spectrum: app_state.StoredResult,
                     landscape: app_state.StoredResult, names: list[str]):
    """Return the slices along the named eigenvectors (and the random directions), computed once per choice."""
    cache = landscape.value["slices"]
    key = tuple(names)
    if key not in cache:
        if app_state.stale_reason(landscape, settings):
            st.info("Slices along other eigenvectors need a fresh landscape; compute it again first.")
            return None
        with app_state.errors_on_page("The slices"), st.spinner(f"Evaluating the loss along {len(names)} eigenvectors"):
            cache[key] = _slices(settings, training, spectrum, key)
    return cache.get(key)
