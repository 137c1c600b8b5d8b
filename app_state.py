"""Per-session state of the dashboard: current settings, stored results, stale notes, errors.

Results live in ``st.session_state``, one per kind of result, each stored with the key of
every setting it depends on (``hessian_core.views.result_key``) and with the id of the
result it was computed from. A result is reused only when both still match; otherwise the
page shows it with a stale note naming the changed settings. Nothing per user goes into
``st.cache_resource``, which every session shares.

A result is stored only when its computation has finished, so an error or an interrupted
run leaves the earlier result of that kind in place. ``errors_on_page(..., kind=...)``
marks a computation as running while it runs; when Streamlit stops or reruns the script
mid-way the mark stays, and ``interrupted_note(kind)`` tells the user once on the next run.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import streamlit as st

from hessian_core import views
from hessian_core.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

# JSON object of settings that replace the defaults of the sidebar, for example
# HESSIAN_LAB_DEFAULTS='{"width": 8, "adam_steps": 50}'. The tests use it for small runs.
DEFAULTS_VARIABLE = "HESSIAN_LAB_DEFAULTS"

_SETTINGS_KEY = "hessian_lab_settings"
_RESULTS_KEY = "hessian_lab_results"
# Kinds of computation started inside errors_on_page(kind=...) that have not ended yet.
_RUNNING_KEY = "hessian_lab_running"
_result_ids = itertools.count(1)


def initial_settings() -> Settings:
    """Return the sidebar's starting settings: the defaults, updated from ``HESSIAN_LAB_DEFAULTS``.

    Raises
    ------
    SettingsError
        If the variable is not a JSON object or contains an unknown or invalid setting.
    """
    text = os.environ.get(DEFAULTS_VARIABLE, "").strip()
    if not text:
        return Settings()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise SettingsError(
            DEFAULTS_VARIABLE,
            text,
            f"{DEFAULTS_VARIABLE} is not valid JSON ({error}); set it to an object such as "
            '\'{"width": 8, "adam_steps": 50}\' or unset it',
        ) from None
    if not isinstance(values, dict):
        raise SettingsError(
            DEFAULTS_VARIABLE,
            text,
            f"{DEFAULTS_VARIABLE} must be a JSON object of settings, got {type(values).__name__}; "
            'use for example \'{"width": 8}\'',
        )
    return Settings.from_dict(values)


def set_current_settings(settings: Settings) -> None:
    st.session_state[_SETTINGS_KEY] = settings


def current_settings() -> Settings:
    """Return the settings that the sidebar built on this run."""
    return st.session_state[_SETTINGS_KEY]


@dataclass
class StoredResult:
    """One computed result with the settings and the upstream result it came from.

    Attributes
    ----------
    kind : str
        ``"training"``, ``"hessian"``, ``"spectrum"`` or ``"landscape"``.
    settings : Settings
        The settings it was computed with.
    value : object
        What the page draws.
    source_id : int or None
        ``result_id`` of the result it was computed from (the trained model for a Hessian).
    result_id : int
        A number unique in this process, so downstream results can name their source.
    """

    kind: str
    settings: Settings
    value: Any
    source_id: int | None = None
    source_kind: str | None = None
    result_id: int = field(default_factory=lambda: next(_result_ids))

    @property
    def key(self) -> tuple:
        return views.result_key(self.kind, self.settings)


@dataclass
class TrainedModel:
    """What the Train page stores: the training result, its loss and its solution grids."""

    result: Any
    loss: Any
    grids: views.SolutionGrids


def _results() -> dict[str, StoredResult]:
    return st.session_state.setdefault(_RESULTS_KEY, {})


def save_result(kind: str, settings: Settings, value: Any, source: StoredResult | None = None) -> StoredResult:
    """Store ``value`` as the session's result of ``kind``, replacing the previous one.

    Only one result per kind is kept, because a dense float64 Hessian of the default
    network alone takes about 225 MB and a session may hold three of them (total, PDE,
    boundary). Storing also ends the running mark of ``kind``, so a stop after this point
    is not reported as a lost computation.
    """
    if source is None:
        stored = StoredResult(kind, settings, value)
    else:
        stored = StoredResult(kind, settings, value, source.result_id, source.kind)
    _results()[kind] = stored
    _running().discard(kind)
    logger.info("stored %s result %d", kind, stored.result_id)
    return stored


def latest_result(kind: str) -> StoredResult | None:
    """Return the session's result of ``kind``, fresh or stale, or None."""
    return _results().get(kind)


def stale_reason(stored: StoredResult, settings: Settings) -> str:
    """Explain why ``stored`` does not fit ``settings``, or return "" if it is fresh.

    A result is stale when a setting it depends on changed, when the result it was
    computed from has been replaced by a newer run, or when that result is stale itself.
    """
    changes = views.describe_changes(stored.kind, stored.settings, settings)
    if changes:
        return f"settings changed since it was computed: {changes}"
    if stored.source_id is None:
        return ""
    source = latest_result(stored.source_kind)
    if source is None or source.result_id != stored.source_id:
        return f"it was computed from an earlier {stored.source_kind} result, which has been replaced"
    upstream = stale_reason(source, settings)
    return f"its {source.kind} result is stale ({upstream})" if upstream else ""


def fresh_result(kind: str, settings: Settings) -> StoredResult | None:
    """Return the stored result of ``kind`` if it is valid for ``settings``, else None."""
    stored = latest_result(kind)
    if stored is None or stale_reason(stored, settings):
        return None
    return stored


def show_stale_note(stored: StoredResult, settings: Settings) -> bool:
    """Write a visible note above a stale result; return True if it is stale."""
    reason = stale_reason(stored, settings)
    if reason:
        st.warning(
            f"Stale {stored.kind.replace('_', '-')} result, shown as computed before: {reason}. "
            "Compute it again to update it.",
        )
    return bool(reason)


def _running() -> set[str]:
    return st.session_state.setdefault(_RUNNING_KEY, set())


@contextmanager
def errors_on_page(action: str, kind: str | None = None) -> Iterator[None]:
    """Show an exception raised inside the block as an ``st.error`` message instead of a traceback.

    Errors of ``hessian_core`` (``SettingsError``, ``MemoryBudgetError``, ``NonFiniteError``,
    ``TrainingDivergedError`` and other ``ValueError``, ``RuntimeError`` and
    ``FloatingPointError``) carry a message that names the value and the fix, and the page
    shows it as it is. Any other exception is a bug: the page reports it as one and the
    server log gets the traceback. Either way the rest of the block is skipped, so a ``save_result``
    at its end does not run and the session keeps its earlier result.

    Parameters
    ----------
    action : str
        Subject of the error message, such as ``"The Hessian"``.
    kind : str, optional
        The kind of result the block computes, such as ``"hessian"``. The block is then
        marked as running until it ends, by finishing, by an error shown here or by
        ``save_result(kind, ...)``. Streamlit's stop and rerun exceptions (raised when the
        user stops or reruns the page, and by ``st.stop()`` and ``st.rerun()`` inside the
        block) pass through untouched and leave the mark, which
        :func:`interrupted_note` reports on a later run.
    """
    if kind is not None:
        _running().add(kind)
    try:
        yield
    except (ValueError, RuntimeError, FloatingPointError, MemoryError) as error:
        logger.warning("%s failed: %s", action, error)
        st.error(f"{action} failed: {error}")
    except Exception as error:  # noqa: BLE001 - the page must not show a traceback
        logger.exception("%s failed unexpectedly", action)
        st.error(
            f"{action} failed with an unexpected {type(error).__name__}: {error}. "
            "The server log has the traceback; please report it.",
        )
    # Not a finally clause: Streamlit's StopException and RerunException derive from
    # BaseException, skip both handlers above and must leave the mark in place.
    if kind is not None:
        _running().discard(kind)


def interrupted_note(kind: str) -> bool:
    """Show once that the last computation of ``kind`` was interrupted; return True if it was.

    Call it near the top of the page, before the page starts a new computation of
    ``kind``. The mark is cleared, so the note does not show again on the next run.
    """
    if kind not in _running():
        return False
    _running().discard(kind)
    logger.warning("the last %s computation was interrupted before it finished", kind)
    st.warning(
        f"The last {kind.replace('_', '-')} computation was interrupted before it finished; nothing from it was kept.",
    )
    return True
