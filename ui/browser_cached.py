"""Cached reads of the data browser and the dashboard, keyed on the project's revision.

Every key holds the database URL, the project id and the revision (bumped by
every write), so new labels show on the next run. Sessions are opened inside;
none is cached.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.label_errors import label_errors_for_task
from core.metrics import TaskMetrics, scope_filter, task_metrics
from core.store import make_engine, session_scope
from core.store.slices import list_slices
from core.store.tasks import list_tasks


@st.cache_data(show_spinner=False, max_entries=64)
def tasks(database_url: str, project_id: int, revision: int) -> list[tuple[str, str]]:
    """``(name, kind)`` of the project's tasks, in creation order."""
    with session_scope(make_engine(database_url)) as session:
        return [(t.name, t.kind) for t in list_tasks(session, project_id)]


@st.cache_data(show_spinner=False, max_entries=64)
def slice_names(database_url: str, project_id: int, revision: int) -> list[str]:
    with session_scope(make_engine(database_url)) as session:
        return [s.name for s in list_slices(session, project_id)]


@st.cache_data(show_spinner=False, max_entries=32)
def metrics(database_url: str, project_id: int, revision: int, task: str, slice_name: str | None) -> TaskMetrics:
    """Every dashboard number of one task (see :func:`core.metrics.task_metrics`)."""
    with session_scope(make_engine(database_url)) as session:
        return task_metrics(session, project_id=project_id, task=task, slice_name=slice_name)


@st.cache_data(show_spinner=False, max_entries=8)
def label_errors(database_url: str, project_id: int, revision: int, task: str, slice_name: str | None) -> pd.DataFrame:
    """Likely label errors of a classification task (cross-validated on the stored embeddings)."""
    with session_scope(make_engine(database_url)) as session:
        record_ids = None
        if slice_name:
            from core.browse import ordered_ids

            record_ids = ordered_ids(session, project_id=project_id, flt=scope_filter(slice_name=slice_name),
                                     limit=None)
        return label_errors_for_task(session, project_id=project_id, task=task, record_ids=record_ids)
