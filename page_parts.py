"""Streamlit pieces that every page uses: a figure with its reading note and HTML download."""

from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
import streamlit as st

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
