"""The current project: which one it is, and what a page shows when there is none."""

from __future__ import annotations

import streamlit as st

from core.store import session_scope
from core.store.browse import ProjectRef, project_refs
from ui.resources import current_project, engine, set_current_project
from ui.text import escape_markdown

PROJECTS_PAGE = "pages/projects.py"


def load_refs() -> list[ProjectRef]:
    """Every project's id, name and revision, read fresh (cheap) on each run."""
    with session_scope(engine()) as session:
        return project_refs(session)


def active_project(refs: list[ProjectRef] | None = None) -> ProjectRef | None:
    """The project picked on the Projects page, else the first one; None when there is no project.

    A picked project that was deleted (or lives in another store) falls back to the first.
    """
    refs = load_refs() if refs is None else refs
    picked = current_project()
    for ref in refs:
        if ref.name == picked:
            return ref
    fallback = refs[0] if refs else None
    set_current_project(fallback.name if fallback else None)
    return fallback


def require_project() -> ProjectRef:
    """The current project; with none, a pointer to the Projects page and the page stops there."""
    ref = active_project()
    if ref is None:
        st.info(
            "There is no project yet. Load the demo project, create one or import a file on the Projects page.",
            icon=":material/info:",
        )
        st.page_link(PROJECTS_PAGE, label="Go to Projects", icon=":material/folder_open:")
        st.stop()
    return ref


def project_caption(ref: ProjectRef) -> None:
    st.caption(f"Project: **{escape_markdown(ref.name)}**")
