"""Shared fixtures of the dashboard tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def navigation_only_pages():
    """Keep Streamlit's AppTest running the entry script, with its sidebar, on every rerun.

    NOTE: Streamlit 1.67's AppTest resets ``PagesManager.uses_pages_directory`` before
    every run, finds the ``pages/`` folder and then runs the page script alone from the
    second run on, so the entry script's sidebar vanishes and widget changes are lost.
    ``streamlit run`` is not affected, because ``st.navigation`` turns that mode off for
    the server. Remove this when AppTest keeps the entry script on reruns.
    """
    app_test_module = pytest.importorskip("streamlit.testing.v1.app_test")
    from streamlit.runtime.pages_manager import PagesManager

    class NavigationOnlyPagesManager(PagesManager):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            PagesManager.uses_pages_directory = False

    patch = pytest.MonkeyPatch()
    patch.setattr(app_test_module, "PagesManager", NavigationOnlyPagesManager)
    yield
    patch.undo()
