"""Data slices on the Data page: save the current filter, list the slices, use, rename or delete one.

A dynamic slice keeps the filter and is evaluated again whenever it is used; a static slice freezes
the records that match now. Either is a filter here, a queue on the Labeling page, rows of an export
and a scope of the Dashboard. Owns the ``data.slice.*`` keys.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from sqlmodel import Session

from core.errors import LoupeError
from core.filters import Filter, SliceFilter
from core.labeling import run_write
from core.slices import delete_slice, rename_slice, save_filter_slice
from core.store.browse import ProjectRef
from ui import browser_cached as cached
from ui.browser_filters import current_filter, set_filter
from ui.feedback import flash, show_error
from ui.resources import DASHBOARD_SLICE_KEY, engine
from ui.text import escape_markdown

DASHBOARD_PAGE = "pages/dashboard.py"
KINDS = {"dynamic": "re-evaluated whenever it is used: new labels move records in or out",
         "static": "freezes the records that match now"}


def slices_panel(database_url: str, ref: ProjectRef, flt: Filter, total: int) -> None:
    """The save form next to the list of saved slices."""
    save_col, list_col = st.columns([2, 3], gap="large")
    with save_col:
        _save_form(ref, flt, total)
    with list_col:
        _slice_list(database_url, ref)


def _save_form(ref: ProjectRef, flt: Filter, total: int) -> None:
    described = "; ".join(flt.describe()) or "all records"
    with st.form("data.slice.save", border=False):
        st.markdown("**Save the current filter as a slice**")
        st.caption(f"Filter: {escape_markdown(described)} ({total:,} records now).")
        name = st.text_input("Slice name", key="data.slice.name", max_chars=100, placeholder="e.g. hard cases")
        kind = st.radio("Kind", list(KINDS), captions=list(KINDS.values()), key="data.slice.kind", horizontal=True)
        replace = st.checkbox("Replace a slice of the same name", key="data.slice.replace")
        submitted = st.form_submit_button("Save slice", icon=":material/bookmark_add:", type="primary")
    if not submitted:
        return
    try:
        saved = run_write(engine(), lambda s: save_filter_slice(s, project_id=ref.id, name=name, flt=flt, kind=kind,
                                                                replace=replace))
    except LoupeError as e:
        show_error(e)
        return
    count = len(saved.record_ids or []) if kind == "static" else total
    flash(f"Saved the {kind} slice “{saved.name}” ({count:,} records now).")
    st.rerun()


def _open_dashboard(name: str) -> None:
    st.session_state[DASHBOARD_SLICE_KEY] = name
    st.switch_page(DASHBOARD_PAGE)


def _slice_list(database_url: str, ref: ProjectRef) -> None:
    frame = cached.slices(database_url, ref.id, ref.revision)
    if frame.empty:
        st.info("No slices yet: build a filter, then save it here.", icon=":material/bookmarks:")
        return
    st.dataframe(frame, hide_index=True, width="stretch", key="data.slice.table",
                 column_config={"records": st.column_config.NumberColumn(format="%d"),
                                "updated": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")})
    name = st.selectbox("Slice", list(frame["name"]), key="data.slice.picked")
    with st.container(horizontal=True):
        st.button("Use as filter", key="data.slice.use", icon=":material/filter_alt:", on_click=set_filter,
                  args=(Filter((SliceFilter(name),)),), help="Show the slice's records (a dynamic one re-evaluated).")
        if st.button("Open in Dashboard", key="data.slice.dashboard", icon=":material/monitoring:"):
            _open_dashboard(name)
        with st.popover("Rename", icon=":material/edit:"):
            new_name = st.text_input("New name", value=name, key="data.slice.new_name", max_chars=100)
            if st.button("Rename slice", key="data.slice.rename"):
                _change(lambda s: rename_slice(s, project_id=ref.id, name=name, new_name=new_name),
                        f"Renamed the slice “{name}” to “{new_name.strip()}”.", old=name, new=new_name.strip())
        with st.popover("Delete", icon=":material/delete:"):
            st.caption("Records and labels stay; only the slice goes.")
            if st.button(f"Delete “{escape_markdown(name)}”", key="data.slice.delete", type="primary"):
                _change(lambda s: delete_slice(s, project_id=ref.id, name=name), f"Deleted the slice “{name}”.",
                        old=name, new=None)
    st.caption("Slices are also labeling queues (Labeling page) and export rows (Export… → Rows).")


def _change(write: Callable[[Session], object], message: str, *, old: str, new: str | None) -> None:
    """Rename or delete; the current filter follows a renamed slice and forgets a deleted one."""
    try:
        run_write(engine(), write)
    except LoupeError as e:
        show_error(e)
        return
    kept = []
    for cond in current_filter().conditions:
        if isinstance(cond, SliceFilter) and cond.slice == old:
            if new is None:
                continue
            cond = SliceFilter(new, negate=cond.negate)
        kept.append(cond)
    set_filter(Filter(tuple(kept)))
    flash(message)
    st.rerun()
