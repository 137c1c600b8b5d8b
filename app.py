"""PINN Hessian Lab dashboard. Start it with ``streamlit run app.py``.

This entry script draws the shared sidebar, builds one validated ``Settings`` from it and
runs the page chosen in the navigation. Widget limits come from
``hessian_core.settings.RANGES`` and ``CHOICES``. The starting values are the defaults of
``Settings``, updated from the JSON in the ``HESSIAN_LAB_DEFAULTS`` environment variable
when it is set.
"""

from __future__ import annotations

import logging

import streamlit as st

import app_state
from hessian_core import views
from hessian_core.cli import FIELD_HELP
from hessian_core.settings import CHOICES, RANGES, IntRange, Settings, SettingsError, describe_range

logger = logging.getLogger(__name__)

SECTIONS: dict[str, tuple[str, ...]] = {
    "Network": ("hidden_layers", "width", "activation", "dtype"),
    "Data": ("n_interior", "n_boundary", "boundary", "sampling", "seed"),
    "Training": ("adam_steps", "learning_rate", "lbfgs_steps", "pde_weight", "boundary_weight", "test_grid"),
    "Hessian": ("hessian_method", "memory_budget_gib"),
    "Spectrum": ("spectrum", "top_k"),
    "Landscape": ("landscape_range", "landscape_points"),
}

LABELS = {
    "hidden_layers": "Hidden layers",
    "width": "Width",
    "activation": "Activation",
    "dtype": "Floating-point type",
    "n_interior": "Interior points",
    "n_boundary": "Boundary points",
    "boundary": "Boundary sampling",
    "sampling": "Interior sampling",
    "seed": "Seed",
    "adam_steps": "Adam steps",
    "learning_rate": "Learning rate",
    "lbfgs_steps": "L-BFGS-B iterations",
    "pde_weight": "PDE loss weight",
    "boundary_weight": "Boundary loss weight",
    "test_grid": "Test grid points per side",
    "hessian_method": "Hessian method",
    "memory_budget_gib": "Memory budget (GiB)",
    "spectrum": "Eigensolver",
    "top_k": "Top-k eigenpairs",
    "landscape_range": "Landscape range",
    "landscape_points": "Landscape grid points",
}

WIDGET_KEY_PREFIX = "setting_"


def setting_widget(name: str, default, container) -> object:
    """Draw the widget of one setting with its limits and tooltip; return its value."""
    key = WIDGET_KEY_PREFIX + name
    help_text = f"{FIELD_HELP[name]}. Accepted: {describe_range(name)}."
    if name in CHOICES:
        options = list(CHOICES[name])
        if name == "boundary":
            return container.radio(LABELS[name], options, index=options.index(default), key=key, help=help_text, horizontal=True)
        return container.selectbox(LABELS[name], options, index=options.index(default), key=key, help=help_text)
    spec = RANGES[name]
    if isinstance(spec, IntRange):
        return container.number_input(
            LABELS[name], min_value=spec.low, max_value=spec.high, value=default, step=1, key=key, help=help_text
        )
    # An exclusive lower limit of 0 cannot be a widget minimum; Settings rejects 0 with a message.
    return container.number_input(
        LABELS[name], min_value=float(spec.low), max_value=float(spec.high), value=float(default),
        format="%g", step=float(default) / 10 or 0.1, key=key, help=help_text,
    )


def sidebar_settings(defaults: Settings) -> Settings | None:
    """Draw every setting in the sidebar; return validated settings, or None after showing the error."""
    values, placeholders = {}, {}
    for section, names in SECTIONS.items():
        with st.sidebar.expander(section, expanded=section in ("Network", "Data", "Training")):
            for name in names:
                values[name] = setting_widget(name, getattr(defaults, name), st)
                placeholders[name] = st.empty()
        if section == "Hessian":
            # Outside the expander, so the note shows even while the section is collapsed.
            placeholders["hessian_check"] = st.sidebar.empty()
    try:
        settings = Settings(**values)
    except SettingsError as error:
        placeholders.get(error.field, st.sidebar).error(str(error))
        return None

    problem = views.dense_hessian_problem(settings)
    if problem:
        placeholders["hessian_check"].warning(problem)
    return settings


# No page_icon and no Material icons anywhere: Streamlit loads their SVG or font from an
# outside host, and the app must work offline without asking one.
st.set_page_config(page_title="PINN Hessian Lab", layout="wide")
st.sidebar.title("PINN Hessian Lab")
st.sidebar.caption("Every control has a tooltip (?) with its unit and accepted range.")

pages = st.navigation(
    [
        st.Page("pages/train.py", title="Train", default=True),
        st.Page("pages/hessian.py", title="Hessian"),
        st.Page("pages/spectrum.py", title="Spectrum"),
        st.Page("pages/landscape.py", title="Landscape"),
    ]
)

try:
    starting_settings = app_state.initial_settings()
except SettingsError as error:
    st.error(f"Invalid {app_state.DEFAULTS_VARIABLE}: {error}")
    st.stop()

current = sidebar_settings(starting_settings)
if current is None:
    st.error("A setting in the sidebar is invalid; the message next to it says how to fix it.")
    st.stop()
app_state.set_current_settings(current)
pages.run()
