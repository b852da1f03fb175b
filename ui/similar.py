"""Grids of records that open in Labeling, and the compact "find similar" panel.

Every page sends the user to a record the same way, :func:`open_in_labeling`:
it sets :data:`ui.resources.OPEN_RECORD_KEY` and switches to the Labeling page,
which shows that record. :func:`record_grid` does it for a selected row.
:func:`render_find_similar` is meant for the pages that show one record (Data,
Labeling): an expander that lists the records closest in meaning to it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.errors import LoupeError
from core.store import session_scope
from core.store.projects import get_project
from ui import search_data as data
from ui.feedback import show_error
from ui.resources import OPEN_RECORD_KEY, database_url, engine

LABELING_PAGE = "pages/labeling.py"
SEARCH_PAGE = "pages/search.py"
_OPENED_KEY = "similar.opened"  # how many records a results grid opened
_PANEL_KEY = "similar.panel"  # (project, record key, space id, k) of the results the panel shows


def open_in_labeling(record_key: str) -> None:
    """Show the record (of the current project) on the Labeling page."""
    st.session_state[OPEN_RECORD_KEY] = str(record_key)
    st.switch_page(LABELING_PAGE)


def record_grid(frame: pd.DataFrame, *, key: str, column_config: dict[str, Any] | None = None,
                caption: str = "Select a row to open that record in Labeling.") -> None:
    """Records (an ``id`` column of record keys) in a grid; selecting a row opens that record in Labeling."""
    # Opening a record renews every grid's key: a selection never outlives the click that made it (the
    # Labeling page may show this grid again, and a kept selection would open the record over and over).
    opened = st.session_state.get(_OPENED_KEY, 0)
    event = st.dataframe(frame, key=f"{key}.{opened}", on_select="rerun", selection_mode="single-row",
                         hide_index=True, width="stretch", column_config=column_config)
    if caption:
        st.caption(caption)
    rows = event.selection.rows if event is not None else []
    if rows:
        st.session_state[_OPENED_KEY] = opened + 1
        open_in_labeling(str(frame.iloc[rows[0]]["id"]))


def results_grid(frame: pd.DataFrame, *, key: str, what: str = "records") -> None:
    """Hits (``id``, ``score``, the record's attributes), best first; selecting a row opens it in Labeling."""
    if frame.empty:
        st.info(f"No {what}.", icon=":material/search_off:")
        return
    columns: dict[str, Any] = {c: st.column_config.TextColumn(c, width="large") for c in frame.columns[2:]
                               if frame[c].dtype == object}
    columns["id"] = st.column_config.TextColumn("id", width="small", pinned=True)
    # Similarities are at most 1; outlier distances (unit vectors) at most 2.
    columns["score"] = st.column_config.ProgressColumn("score", format="%.3f", min_value=0.0,
                                                       max_value=max(1.0, float(frame["score"].max())))
    record_grid(frame, key=key, column_config=columns,
                caption=f"{len(frame)} {what}, best first. Select a row to open that record in Labeling.")


def render_find_similar(project_name: str, record_key: str, *, k: int = 5, key: str = "similar") -> None:
    """An expander listing the records most similar in meaning to ``record_key`` (of ``project_name``).

    Parameters
    ----------
    project_name, record_key
        The record shown on the calling page (its primary-key value or running id).
    k
        Results shown by default (the user can ask for more).
    key
        Prefix of the panel's widget keys; change it if a page shows two panels.
    """
    with st.expander("Find similar records", icon=":material/manage_search:"):
        try:
            with session_scope(engine()) as session:
                project = get_project(session, project_name)
                project_id, revision = project.id or 0, project.revision
        except LoupeError as e:
            show_error(e)
            return
        spaces = data.spaces(project_id)
        if not spaces:
            st.caption("This project has no embeddings yet: compute them on the Search page.")
            st.page_link(SEARCH_PAGE, label="Go to Search", icon=":material/travel_explore:")
            return
        left, right, button = st.columns([3, 1, 1], vertical_alignment="bottom")
        by_id = {s.id: s for s in spaces}
        space_id = left.selectbox("Embeddings", list(by_id), format_func=lambda i: by_id[i].label,
                                  key=f"{key}.space", disabled=len(spaces) == 1)
        count = right.number_input("Results", min_value=1, max_value=100, value=k, key=f"{key}.k")
        wanted = (project_name, str(record_key), space_id, int(count))
        if button.button("Find similar", icon=":material/manage_search:", key=f"{key}.run"):
            st.session_state[_PANEL_KEY] = wanted
        if st.session_state.get(_PANEL_KEY) != wanted:
            return
        try:
            with st.spinner("Searching…"):
                frame = data.similar(database_url(), project_id, revision, by_id[space_id], str(record_key),
                                     int(count))
        except LoupeError as e:
            show_error(e)
            return
        results_grid(frame, key=f"{key}.grid.{record_key}.{space_id}.{count}", what="similar records")
