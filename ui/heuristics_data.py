"""Reads of the Heuristics page, served from ``st.cache_data``.

Keys hold the database URL, the project id and its revision (every write bumps it), so a
run, an edit or a new label shows on the next rerun, and nothing is recomputed otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from sqlalchemy import select

from core.heuristics import heuristics_frame
from core.lookup import export_list, list_lists, term_counts, terms_frame
from core.stats_service import HeuristicStatistics, heuristic_statistics
from core.store import make_engine, session_scope
from core.store.heuristics import Heuristic, LookupList
from core.store.models import Record
from core.store.tasks import list_attributes, list_labels, list_tasks
from core.weak_supervision import label_distribution, list_runs


@dataclass(frozen=True)
class TaskInfo:
    id: int
    name: str
    kind: str
    labels: tuple[str, ...]
    attribute: str | None
    colors: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeuristicInfo:
    """What the editor needs of one heuristic (a plain copy: no database object leaves the session)."""

    id: int
    name: str
    kind: str
    description: str
    code: str
    enabled: bool
    settings: tuple[tuple[str, bool], ...]
    last_run_state: str | None
    last_run_error: str | None
    last_run_logs: str


@dataclass(frozen=True)
class ProjectBasics:
    tasks: tuple[TaskInfo, ...]
    attributes: tuple[tuple[str, str], ...]  # (name, type)
    first_record: str | None
    example: tuple[tuple[str, object], ...]  # the first record's values


@st.cache_data(show_spinner=False, max_entries=32)
def basics(database_url: str, project_id: int, revision: int) -> ProjectBasics:
    with session_scope(make_engine(database_url)) as session:
        attributes = list_attributes(session, project_id)
        names = {a.id: a.name for a in attributes}
        tasks = []
        for t in list_tasks(session, project_id):
            labels = list_labels(session, t.id or 0)
            tasks.append(TaskInfo(t.id or 0, t.name, t.kind, tuple(x.name for x in labels), names.get(t.attribute_id),
                                  tuple(x.color for x in labels)))
        first = session.execute(
            select(Record).where(Record.project_id == project_id).order_by(Record.running_id).limit(1)
        ).scalars().first()
        example = tuple((a.name, first.data.get(a.name)) for a in attributes) if first else ()
        return ProjectBasics(tuple(tasks), tuple((a.name, a.data_type) for a in attributes),
                             first.key if first else None, example)


@st.cache_data(show_spinner=False, max_entries=64)
def heuristics(database_url: str, project_id: int, revision: int, task_id: int) -> pd.DataFrame:
    with session_scope(make_engine(database_url)) as session:
        return heuristics_frame(session, project_id=project_id, task_id=task_id)


@st.cache_data(show_spinner=False, max_entries=64)
def heuristic(database_url: str, project_id: int, revision: int, heuristic_id: int) -> HeuristicInfo | None:
    with session_scope(make_engine(database_url)) as session:
        h = session.get(Heuristic, heuristic_id)
        if h is None or h.project_id != project_id:
            return None
        return HeuristicInfo(h.id or 0, h.name, h.kind, h.description, h.code, h.enabled,
                             tuple(sorted((h.settings or {}).items())), h.last_run_state, h.last_run_error,
                             h.last_run_logs)


@st.cache_data(show_spinner="Computing statistics…", max_entries=32)
def statistics(database_url: str, project_id: int, revision: int, task_id: int, normalize: str) -> HeuristicStatistics:
    with session_scope(make_engine(database_url)) as session:
        return heuristic_statistics(session, project_id=project_id, task_id=task_id, normalize=normalize)


@st.cache_data(show_spinner=False, max_entries=32)
def ws_runs(database_url: str, project_id: int, revision: int, task_id: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """The task's weak-supervision runs (latest first) and the latest result's labels per label."""
    with session_scope(make_engine(database_url)) as session:
        rows = [{"run": r.id, "model": r.model, "when": r.created_at, "heuristics": len(r.heuristics),
                 "records labeled": r.n_labeled, "labels": r.n_labels, "of records": r.n_records,
                 "manual labels": r.n_manual, "seconds": r.duration_s, "params": str(r.params or "")}
                for r in list_runs(session, project_id=project_id, task_id=task_id)]
        return pd.DataFrame(rows), label_distribution(session, task_id=task_id)


@st.cache_data(show_spinner=False, max_entries=32)
def lookup_lists(database_url: str, project_id: int, revision: int) -> pd.DataFrame:
    with session_scope(make_engine(database_url)) as session:
        counts = term_counts(session, project_id=project_id)
        rows = [{"id": x.id, "name": x.name, "terms": counts.get(x.id or 0, 0), "description": x.description}
                for x in list_lists(session, project_id=project_id)]
    return pd.DataFrame(rows, columns=["id", "name", "terms", "description"])


@st.cache_data(show_spinner=False, max_entries=64)
def lookup_terms(database_url: str, project_id: int, revision: int, list_id: int) -> pd.DataFrame:
    with session_scope(make_engine(database_url)) as session:
        return terms_frame(session, lookup_list_id=list_id)


@st.cache_data(show_spinner=False, max_entries=64)
def lookup_export(database_url: str, project_id: int, revision: int, list_id: int) -> bytes:
    """The list as JSON ``{name, description, terms: [{value, comment, blacklisted}]}``."""
    with session_scope(make_engine(database_url)) as session:
        found = session.get(LookupList, list_id)
        exported = export_list(session, lookup_list=found) if found and found.project_id == project_id else {}
    return json.dumps(exported, ensure_ascii=False, indent=2).encode("utf-8")
