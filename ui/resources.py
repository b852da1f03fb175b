"""Resources cached per process, keyed on what they depend on."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from core.settings import load_settings
from core.store import make_engine

PROJECT_KEY = "project"
# Session-state key another page sets to the key (primary-key value or running id) of a record of the
# current project before ``st.switch_page("pages/labeling.py")``: the labeling page shows that record
# and removes the key.
OPEN_RECORD_KEY = "labeling.open_record"


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
