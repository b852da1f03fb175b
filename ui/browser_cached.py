"""Cached reads of the data browser and the dashboard, keyed on the project's revision.

Every key holds the database URL, the project id and the revision (bumped by
every write), so new labels show on the next run. Sessions are opened inside;
none is cached.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core.browse import BrowsePage, FilterChoices, browse_page, count_filtered, distinct_values, filter_choices
from core.filters import Filter, Sort, compile_filter
from core.label_errors import label_errors_for_task
from core.metrics import TaskMetrics, scope_filter, task_metrics
from core.slices import slices_frame
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


# --- the data browser ---------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def choices(database_url: str, project_id: int, revision: int) -> FilterChoices:
    """Attributes, tasks, labels, heuristics, annotators and slices a filter can name."""
    with session_scope(make_engine(database_url)) as session:
        return filter_choices(session, project_id=project_id)


@st.cache_data(show_spinner=False, max_entries=64)
def values(database_url: str, project_id: int, revision: int, attribute: str) -> list[str]:
    """The most frequent values of a (category) attribute, offered as filter values."""
    with session_scope(make_engine(database_url)) as session:
        return distinct_values(session, project_id=project_id, attribute=attribute)


def check_filter(database_url: str, project_id: int, flt: Filter) -> None:
    """Raise core's error when ``flt`` names something the project lacks or has a bad value (no query runs)."""
    with session_scope(make_engine(database_url)) as session:
        compile_filter(session, project_id=project_id, flt=flt)


@st.cache_data(show_spinner=False, max_entries=128)
def page(
    database_url: str, project_id: int, revision: int, filter_json: str, sort_json: str, offset: int, limit: int
) -> BrowsePage:
    """One page of the browser, without its count (:func:`count` gives that, cached on its own)."""
    with session_scope(make_engine(database_url)) as session:
        return browse_page(session, project_id=project_id, flt=Filter.from_json(filter_json),
                           sort=Sort.from_dict(json.loads(sort_json)), offset=offset, limit=limit, with_total=False)


@st.cache_data(show_spinner=False, max_entries=128)
def count(database_url: str, project_id: int, revision: int, filter_json: str) -> int:
    """Records matching a filter: one query per (filter, revision), whatever page is shown."""
    with session_scope(make_engine(database_url)) as session:
        return count_filtered(session, project_id=project_id, flt=Filter.from_json(filter_json))


@st.cache_data(show_spinner=False, max_entries=32)
def slices(database_url: str, project_id: int, revision: int) -> pd.DataFrame:
    """The saved slices with their record counts now (dynamic slices are evaluated)."""
    with session_scope(make_engine(database_url)) as session:
        return slices_frame(session, project_id=project_id)
