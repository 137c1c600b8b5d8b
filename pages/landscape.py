"""Landscape page: the loss along eigenvectors and random directions, and what a step does to u."""

from __future__ import annotations

import streamlit as st

import app_state
import figures
import page_parts
from hessian_core import views

# Grid side of the u and residual maps under the slider; small, so a slider move redraws fast.
SHIFT_GRID_POINTS = 61

settings = app_state.current_settings()
st.title("Loss landscape")
st.write(
    "The loss L(θ + α·d) along unit directions d through the trained θ: eigenvectors of the Hessian, "
    "where the quadratic model ½λα² should hold near α = 0, and random directions for comparison."
)

training = page_parts.require_training(settings)
spectrum = page_parts.spectrum_result(settings, training)
if spectrum is None:
    st.stop()
landscape = page_parts.landscape_result(settings, training, spectrum)
if landscape is None:
    st.stop()

log_axis = st.toggle("Logarithmic loss axis", value=True,
                     help="A quadratic model that turns negative (along a negative eigenvalue) leaves a log axis; switch to linear to see it.")
choices = list(views.eigenvector_choices(spectrum.value))
names = st.multiselect("Eigenvectors to slice along", choices, default=[n for n in page_parts.DEFAULT_SLICE_EIGENVECTORS if n in choices],
                       help="Each chosen eigenvector gets a solid loss curve and its dashed quadratic model.")
slices = page_parts.landscape_slices(settings, training, spectrum, landscape, names) if names else None
if slices is None:
    slices = next(iter(landscape.value["slices"].values()))
    names = []
random_labels = [label for label in slices.labels if label.startswith("random")]

if names:
    page_parts.figure(
        figures.landscape_slices(slices.alphas, *views.slice_curves(slices, names), "Loss along eigenvectors", log_axis),
        "eigenvector_slices",
        "Solid lines are the loss and dashed lines its quadratic model L + α·gᵀv + ½·vᵀHv·α²; where they part, higher-order terms take over.",
    )
page_parts.figure(
    figures.landscape_slices(slices.alphas, *views.slice_curves(slices, random_labels), "Loss along random unit directions", log_axis),
    "random_slices",
    "The same kind of slice along random unit directions; compare its rise with the eigenvector slices on the same α axis.",
)

plane = landscape.value["surface"]
page_parts.figure(
    figures.landscape_contour(plane.alphas, plane.betas, plane.total.T),
    "landscape_contour",
    "Contours of log10 of the loss over the plane of the two top eigenvectors; the white dot is the trained θ.",
)
if st.checkbox("Show as a 3D surface", help="Draws the same plane as a rotatable surface; heavier for the browser."):
    page_parts.figure(
        figures.landscape_surface(plane.alphas, plane.betas, plane.total.T),
        "landscape_surface",
        "Drag to rotate; the height is log10 of the loss.",
    )

st.download_button(
    "Landscape (.npz)",
    lambda: page_parts.npz_bytes(**views.landscape_arrays(slices, plane)),
    file_name="landscape.npz",
    mime="application/octet-stream",
    on_click="ignore",
    help="The surface grid and the slices shown, with their quadratic models, curvatures and gradient projections.",
)


@st.fragment
def step_along_eigenvector() -> None:
    """Redraw u and the PDE residual at θ + α·v₁ as the slider moves, without rerunning the page."""
    st.subheader("Step along eigenvector 1")
    alpha = st.slider("α", -settings.landscape_range, settings.landscape_range, 0.0, settings.landscape_range / 20,
                      key="shift_alpha", help="Moves θ by α times the unit eigenvector of the largest eigenvalue.")
    direction = spectrum.value.top_eigenvectors[:, 0]
    with app_state.errors_on_page("Evaluating the shifted network"):
        axis, u, residual = views.shifted_fields(training.value.loss, training.value.result.theta, direction, alpha, SHIFT_GRID_POINTS)
        left, right = st.columns(2)
        with left:
            page_parts.figure(
                figures.field_heatmap(axis, u, f"u at θ + {alpha:g}·v₁"),
                "shifted_u",
                "The network's solution after the step; at α = 0 it is the trained solution.",
            )
        with right:
            page_parts.figure(
                figures.field_heatmap(axis, residual, f"PDE residual Δu − f at θ + {alpha:g}·v₁", diverging=True),
                "shifted_residual",
                "Where the step breaks the PDE: red where Δu exceeds f, blue where it falls short.",
            )


step_along_eigenvector()
