"""One record of the Data page's current page: its comments (read, add, delete), similar records, Labeling.

Owns the ``data.comments.*`` keys. A new or deleted comment bumps the project's revision, so the
grid's comment counts and the "has comment" filter follow at once.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st
from sqlmodel import Session

from core.browse import KEY_COLUMN, BrowsePage
from core.errors import LoupeError
from core.labeling import get_or_create_annotator, run_write
from core.store import session_scope
from core.store.browse import ProjectRef
from core.store.comments import add_comment, delete_comment, list_comments
from core.store.projects import bump_revision
from ui.feedback import flash, show_error
from ui.labeling_state import ANNOTATOR_KEY
from ui.resources import engine
from ui.similar import open_in_labeling, render_find_similar
from ui.text import escape_markdown

SNIPPET = 70


def _titles(page: BrowsePage, attribute_types: dict[str, str]) -> dict[int, str]:
    """``record id → "key · first words of the first text attribute"`` for the picker."""
    text = next((name for name, kind in attribute_types.items() if kind == "TEXT"), None)
    titles = {}
    for rid in page.record_ids:
        words = page.frame.at[rid, text] if text else None
        words = "" if words is None or pd.isna(words) else str(words)
        words = words if len(words) <= SNIPPET else words[: SNIPPET - 1] + "…"
        titles[rid] = f"{page.frame.at[rid, KEY_COLUMN]} · {words}" if words else str(page.frame.at[rid, KEY_COLUMN])
    return titles


def comments_panel(ref: ProjectRef, page: BrowsePage, attribute_types: dict[str, str]) -> None:
    """Pick a record of the page; see its comments, add one, find similar ones, or open it in Labeling."""
    if page.frame.empty:
        st.info("No record on this page.")
        return
    titles = _titles(page, attribute_types)
    pick_col, open_col = st.columns([4, 1], vertical_alignment="bottom")
    record_id = pick_col.selectbox("Record (of this page)", list(titles), format_func=titles.__getitem__,
                                   key="data.comments.record")
    key = str(page.frame.loc[record_id, KEY_COLUMN])
    if open_col.button("Open in Labeling", icon=":material/label:", key="data.comments.open"):
        open_in_labeling(key)
    render_find_similar(ref.name, key, key="data.similar")
    project_id = ref.id
    with session_scope(engine()) as session:
        comments = list_comments(session, record_id=record_id)
    if comments.empty:
        st.caption("No comments on this record yet.")
    for row in comments.itertuples(index=False):
        with st.container(border=True, horizontal=True, vertical_alignment="center"):
            when = pd.Timestamp(row.created_at).strftime("%Y-%m-%d %H:%M")
            st.markdown(f"**{escape_markdown(row.annotator or 'anonymous')}** · {when}  \n{escape_markdown(row.text)}")
            if st.button("", icon=":material/delete:", key=f"data.comments.delete.{row.id}", type="tertiary",
                         help="Delete this comment"):
                _write(lambda s, cid=int(row.id): delete_comment(s, comment_id=cid), "Deleted the comment.",
                       project_id)
    with st.form("data.comments.form", clear_on_submit=True, border=False):
        text = st.text_area("New comment", key="data.comments.text", max_chars=5000, height=80,
                            placeholder="e.g. label unclear, duplicate of 42")
        author = st.session_state.get(ANNOTATOR_KEY, "")
        st.caption(f"Signed as {escape_markdown(author)} (the name given on the Labeling page)." if author
                   else "Anonymous: give your name on the Labeling page to sign comments.")
        if st.form_submit_button("Add comment", icon=":material/add_comment:"):

            def write(session: Session) -> object:
                who = get_or_create_annotator(session, author).id if author else None
                return add_comment(session, record_id=record_id, text=text, annotator_id=who)

            _write(write, f"Added a comment to record {key}.", project_id)


def _write(write: Callable[[Session], object], message: str, project_id: int) -> None:
    def with_revision(session: Session) -> None:
        write(session)
        bump_revision(session, project_id)

    try:
        run_write(engine(), with_revision)
    except LoupeError as e:
        show_error(e)
        return
    flash(message)
    st.rerun()
