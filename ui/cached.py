"""Reads served from ``st.cache_data``.

Every key holds the database URL, the project id and the project's revision
(bumped by every write), so a write shows up on the next run and two stores
never share an entry. Sessions are opened inside; none is ever cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from core.store import make_engine, session_scope
from core.store.projects import list_projects
from core.store.records import RecordPage, count_records, page_records
from core.store.summary import attributes_frame, label_counts, labeled_records, tasks_frame
from core.store.tasks import list_attributes

PROJECT_COLUMNS = {"name": "Project", "records": "Records", "tasks": "Tasks", "manual_labels": "Manual labels"}


@dataclass(frozen=True)
class Overview:
    records: int
    attributes: pd.DataFrame
    tasks: pd.DataFrame
    label_counts: pd.DataFrame
    labeled_records: pd.DataFrame


@st.cache_data(show_spinner=False, max_entries=16)
def projects_table(database_url: str, versions: tuple[tuple[int, int], ...]) -> pd.DataFrame:
    """Projects with their counts; ``versions`` (id, revision) pairs key the cache."""
    with session_scope(make_engine(database_url)) as session:
        rows = [p.as_dict() for p in list_projects(session)]
    frame = pd.DataFrame(rows, columns=list(PROJECT_COLUMNS))
    return frame.rename(columns=PROJECT_COLUMNS)


@st.cache_data(show_spinner=False, max_entries=32)
def overview(database_url: str, project_id: int, revision: int) -> Overview:
    with session_scope(make_engine(database_url)) as session:
        return Overview(
            records=count_records(session, project_id),
            attributes=attributes_frame(session, project_id),
            tasks=tasks_frame(session, project_id),
            label_counts=label_counts(session, project_id),
            labeled_records=labeled_records(session, project_id),
        )


@st.cache_data(show_spinner=False, max_entries=64)
def attribute_types(database_url: str, project_id: int, revision: int) -> dict[str, str]:
    """Attribute name → data type, in the project's column order."""
    with session_scope(make_engine(database_url)) as session:
        return {a.name: a.data_type for a in list_attributes(session, project_id)}


@st.cache_data(show_spinner=False, max_entries=256)
def record_page(
    database_url: str,
    project_id: int,
    revision: int,
    *,
    offset: int,
    limit: int,
    search: str,
    sort_by: str | None,
    descending: bool,
) -> RecordPage:
    """One page of records, filtered and sorted in SQL (never the whole project)."""
    with session_scope(make_engine(database_url)) as session:
        return page_records(
            session,
            project_id=project_id,
            offset=offset,
            limit=limit,
            search=search or None,
            sort_by=sort_by,
            descending=descending,
        )
