"""Train page: train the PINN with the sidebar's settings and show its loss and solution."""

from __future__ import annotations

import time

import streamlit as st

import app_state
import figures
import page_parts
from hessian_core import views
from hessian_core.cli import history_csv
from hessian_core.loss import PoissonLoss
from hessian_core.training import train

# Redraw the live progress at most this often; every Adam step would flood the browser.
PROGRESS_INTERVAL_SECONDS = 0.25
LIVE_CHART_INTERVAL_SECONDS = 1.5

settings = app_state.current_settings()
st.title("Train the PINN")
st.write(
    f"A {settings.activation} MLP u_θ(x, y) learns Δu = f on [-1, 1]² with u = 0 on the boundary, "
    "by Adam and then L-BFGS-B on the mean squared PDE residual plus the mean squared boundary value."
)
page_parts.settings_summary(settings)


def run_training() -> None:
    """Train with live progress, then store the model, its loss and its solution grids."""
    bar = st.progress(0.0, text="starting: building the loss and compiling the first step")
    live_chart = st.empty()
    last = {"bar": 0.0, "chart": 0.0}
    history = []

    def on_step(step) -> None:
        history.append(step)
        now = time.perf_counter()
        if now - last["bar"] >= PROGRESS_INTERVAL_SECONDS:
            last["bar"] = now
            progress = views.training_progress(step, settings.adam_steps)
            bar.progress(
                progress.fraction,
                text=(
                    f"{'Adam' if step.phase == 'adam' else 'L-BFGS-B'} step {step.step}, "
                    f"{progress.done} of {progress.total} · loss {step.loss:.3e} · "
                    f"about {views.format_duration(progress.remaining_seconds)} left"
                ),
            )
        if now - last["chart"] >= LIVE_CHART_INTERVAL_SECONDS:
            last["chart"] = now
            live_chart.plotly_chart(figures.loss_curve(views.loss_history(history, settings.adam_steps)), key=f"live_loss_{len(history)}")

    try:
        result = train(settings, callback=on_step)
    except Exception:
        # A failed run leaves its error, not a progress line that looks still running.
        bar.empty()
        raise
    bar.progress(1.0, text="evaluating the solution on the test grid")
    loss = PoissonLoss.from_settings(settings)
    model = app_state.TrainedModel(result, loss, views.solution_grids(loss, result.theta, settings.test_grid))
    app_state.save_result("training", settings, model)
    bar.empty()
    live_chart.empty()


app_state.interrupted_note("training")
if st.button("Train", type="primary", help="Train from the seeded initial θ with the settings in the sidebar."):
    with app_state.errors_on_page("Training", kind="training"):
        run_training()

stored = app_state.latest_result("training")
if stored is None:
    st.info("Press **Train** to train the network; the other pages use the trained θ.")
    st.stop()

app_state.show_stale_note(stored, settings)
model: app_state.TrainedModel = stored.value
result = model.result

columns = st.columns(5)
columns[0].metric("Relative L2 error", f"{result.relative_l2_error:.3e}", help="‖u_θ − u_exact‖₂ / ‖u_exact‖₂ on the test grid.")
columns[1].metric("Final loss", f"{result.loss:.3e}")
columns[2].metric("PDE term", f"{result.pde_loss:.3e}")
columns[3].metric("Boundary term", f"{result.boundary_loss:.3e}")
columns[4].metric("Training time", views.format_duration(result.seconds))

page_parts.figure(
    figures.loss_curve(views.loss_history(result.history, stored.settings.adam_steps)),
    "loss_curve",
    "Each line is one term of the loss on a log scale; the dotted line marks the switch from Adam to L-BFGS-B.",
)

grids = model.grids
limits = (float(min(grids.predicted.min(), grids.exact.min())), float(max(grids.predicted.max(), grids.exact.max())))
boundary_points = model.loss.points.boundary
left, middle, right = st.columns(3)
with left:
    page_parts.figure(
        figures.field_heatmap(grids.axis, grids.predicted, "Predicted u_θ", zrange=limits),
        "predicted_u",
        "The network's solution on the test grid, on the same colour scale as the exact one.",
    )
with middle:
    page_parts.figure(
        figures.field_heatmap(grids.axis, grids.exact, "Exact u", zrange=limits),
        "exact_u",
        "The exact solution sin(π(x+1)/2)·sin(π(y+1)/2), zero on all four edges.",
    )
with right:
    page_parts.figure(
        figures.field_heatmap(
            grids.axis, grids.error, "Error u_θ − u_exact", diverging=True,
            points=boundary_points, points_name=f"boundary points ({stored.settings.boundary})",
        ),
        "error_u",
        "Red is too high and blue too low; black dots are the boundary points, so edges without dots were never constrained.",
    )

st.subheader("Downloads")
download_columns = st.columns(3)
download_columns[0].download_button(
    "θ (.npy)", page_parts.npy_bytes(result.theta), file_name="theta.npy", mime="application/octet-stream", on_click="ignore"
)
download_columns[1].download_button(
    "Settings (.json)", stored.settings.to_json() + "\n", file_name="settings.json", mime="application/json", on_click="ignore"
)
download_columns[2].download_button(
    "Loss history (.csv)", history_csv(result.history), file_name="history.csv", mime="text/csv", on_click="ignore"
)
