"""Resources cached per process, keyed on what they depend on."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from core.settings import load_settings
from core.store import make_engine

PROJECT_KEY = "project"
# How a page opens a record in Labeling (use ``ui.similar.open_in_labeling``, which does both): set this
# session-state key to the key (primary-key value or running id) of a record of the current project, then
# ``st.switch_page("pages/labeling.py")``. The labeling page removes the key and shows that record first,
# in or out of its queue; with no annotator name yet, the key waits until one is entered.
OPEN_RECORD_KEY = "labeling.open_record"
# Session-state key another page sets to a data slice's name before ``st.switch_page("pages/dashboard.py")``:
# the dashboard shows that slice's numbers and removes the key.
DASHBOARD_SLICE_KEY = "dashboard.open_slice"


@st.cache_resource(show_spinner=False)
def _engine_for(database_url: str) -> Engine:
    return make_engine(database_url)


def engine() -> Engine:
    """The store's engine for the configured DATABASE_URL / LOUPE_HOME."""
    return _engine_for(load_settings().database_url)


def current_project() -> str | None:
    """The project picked on the Projects page (UI state only)."""
    return st.session_state.get(PROJECT_KEY)


def set_current_project(name: str | None) -> None:
    st.session_state[PROJECT_KEY] = name


def database_url() -> str:
    """The configured database URL: part of every cache key, so two stores never share entries."""
    return load_settings().database_url
