"""Reads of the Search page and of the "find similar" panel.

Searches are served from ``st.cache_data`` keyed on the project's revision and the
embedding space's revision, so a rerun never searches again and a new label or a
new embedding run shows at once. The model is an ``st.cache_resource``; the Chroma
client is :func:`core.index.get_client`'s own, never cached here.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.embeddings import load_model
from core.errors import NotFoundError
from core.index import IndexStatus, Progress, ensure_index, index_status
from core.map_colors import ColorBy, map_colors
from core.search import SearchHit as Hit
from core.search import embedding_map, hits_frame, semantic_search, similar_records
from core.store import make_engine, session_scope
from core.store.embeddings import PendingRecords, ProjectEmbedding, list_spaces, pending_records
from core.store.heuristics import Heuristic
from core.store.models import Attribute, Record
from core.store.slices import SliceKind, find_slice
from core.store.tasks import list_labels, list_tasks
from ui.resources import engine

HOVER_WIDTH = 60  # characters per line of a map point's hover text
HOVER_CHARS = 300


@dataclass(frozen=True)
class Space:
    """One embedding space as the page shows it (a plain copy: no database object leaves its session)."""

    id: int
    attribute: str
    model: str
    count: int
    revision: int
    embedded_at: str  # when the last embedding run read the records

    @property
    def label(self) -> str:
        return f"{self.attribute} · {self.model}"


def spaces(project_id: int) -> list[Space]:
    """The project's embedding spaces, read fresh (an embedding run does not change the project's revision)."""
    with session_scope(engine()) as session:
        names = {a.id: a.name for a in session.execute(select(Attribute).where(Attribute.project_id == project_id))
                 .scalars()}
        return [Space(s.id or 0, names.get(s.attribute_id, str(s.attribute_id)), s.model, s.count, s.revision,
                      str(s.updated_at)) for s in list_spaces(session, project_id)]


def _row(session: Any, space: Space) -> ProjectEmbedding:
    current = session.get(ProjectEmbedding, space.id)
    if current is None:
        raise NotFoundError(f"The embeddings {space.label} were deleted meanwhile; embed the attribute again.")
    return current


def status(space: Space) -> IndexStatus:
    """Whether the space's Chroma collection is fresh, stale or missing (cheap: metadata and a count)."""
    with session_scope(engine()) as session:
        return index_status(session, space=_row(session, space))


@st.cache_data(show_spinner=False, max_entries=16)
def pending(database_url: str, project_id: int, revision: int, space: Space) -> PendingRecords:
    """Records new or changed since the space's last embedding run (an import changes the project's revision,
    an embedding run the space)."""
    with session_scope(make_engine(database_url)) as session:
        return pending_records(session, _row(session, space))


def rebuild(store: Engine, space: Space, progress: Progress) -> int | None:
    """Rebuild the space's Chroma collection unless it is fresh; returns its number of items, None if it was fresh.

    Runs in a background thread: no Streamlit call in here.
    """
    with session_scope(store) as session:
        row = _row(session, space)
        if ensure_index(session, space=row, progress=progress) is IndexStatus.FRESH:
            return None
        return row.count


@st.cache_resource(show_spinner=False, max_entries=2)
def model(name: str) -> Any:
    """The sentence-transformers model, loaded once per server process."""
    return load_model(name)


@dataclass(frozen=True)
class Task:
    id: int
    name: str
    kind: str
    colors: tuple[tuple[str, str], ...]  # (label, colour) in the task's order


@st.cache_data(show_spinner=False, max_entries=16)
def tasks(database_url: str, project_id: int, revision: int) -> list[Task]:
    """The project's tasks with their labels' colours."""
    with session_scope(make_engine(database_url)) as session:
        return [Task(t.id or 0, t.name, t.kind, tuple((x.name, x.color) for x in list_labels(session, t.id or 0)))
                for t in list_tasks(session, project_id)]


@st.cache_data(show_spinner=False, max_entries=16)
def heuristics(database_url: str, project_id: int, revision: int, task_id: int) -> dict[int, str]:
    """The task's heuristics that have votes, id → name."""
    with session_scope(make_engine(database_url)) as session:
        stmt = select(Heuristic.id, Heuristic.name).where(Heuristic.task_id == task_id,
                                                           Heuristic.last_run_state.is_not(None))  # type: ignore[union-attr]
        return {int(i): str(n) for i, n in session.execute(stmt.order_by(Heuristic.id)).all()}


def _frame(session: Any, hits: list[Hit], attribute: str) -> pd.DataFrame:
    frame = hits_frame(session, hits)
    first = ["id", "score", *([attribute] if attribute in frame.columns else [])]
    return frame[first + [c for c in frame.columns if c not in first]]


@st.cache_data(show_spinner=False, max_entries=64)
def semantic(database_url: str, project_id: int, revision: int, space: Space, query: str, k: int) -> pd.DataFrame:
    with session_scope(make_engine(database_url)) as session:
        hits = semantic_search(session, project_id=project_id, query=query, attribute=space.attribute,
                               model=space.model, k=k)
        return _frame(session, hits, space.attribute)


@st.cache_data(show_spinner=False, max_entries=64)
def similar(database_url: str, project_id: int, revision: int, space: Space, key: str, k: int) -> pd.DataFrame:
    with session_scope(make_engine(database_url)) as session:
        hits = similar_records(session, project_id=project_id, key=key, attribute=space.attribute,
                               model=space.model, k=k)
        return _frame(session, hits, space.attribute)


@st.cache_data(show_spinner=False, max_entries=32)
def outliers(database_url: str, project_id: int, revision: int, name: str, attribute: str) -> pd.DataFrame | None:
    """The saved outlier slice ``name`` as hits (farthest first), or None when there is none."""
    with session_scope(make_engine(database_url)) as session:
        found = find_slice(session, project_id=project_id, name=name)
        if found is None or found.kind != SliceKind.OUTLIER.value:
            return None
        keys = dict(session.execute(select(Record.id, Record.key).where(
            Record.id.in_(found.record_ids or []))).all())  # type: ignore[union-attr]
        pairs = zip(found.record_ids or [], found.scores or [], strict=False)
        hits = [Hit(record_id=int(r), key=str(keys[r]), score=float(s)) for r, s in pairs if r in keys]
        return _frame(session, hits, attribute)


def _hover(text: Any) -> str:
    value = "" if text is None else str(text)
    value = value if len(value) <= HOVER_CHARS else value[: HOVER_CHARS - 1] + "…"
    return "<br>".join(textwrap.wrap(value, HOVER_WIDTH)) or "(empty)"


@st.cache_data(show_spinner=False, max_entries=8)
def map_points(database_url: str, project_id: int, space: Space, method: str, sample: int) -> pd.DataFrame:
    """2D coordinates of (a sample of) the records, with their text for the hover: id, record_id, x, y, text."""
    with session_scope(make_engine(database_url)) as session:
        frame = embedding_map(session, project_id=project_id, attribute=space.attribute, model=space.model,
                              method=method, sample=sample)  # type: ignore[arg-type]
        texts: dict[int, Any] = {}
        ids = [int(i) for i in frame["record_id"]]
        for start in range(0, len(ids), 900):
            stmt = select(Record.id, Record.data).where(Record.id.in_(ids[start : start + 900]))  # type: ignore[union-attr]
            texts.update({int(i): (data or {}).get(space.attribute) for i, data in session.execute(stmt).all()})
    return frame.assign(text=[_hover(texts.get(i)) for i in ids])


@st.cache_data(show_spinner=False, max_entries=16)
def colors(database_url: str, project_id: int, revision: int, task_id: int, by: ColorBy,
           heuristic_id: int | None, record_ids: tuple[int, ...]) -> dict[int, Any]:
    with session_scope(make_engine(database_url)) as session:
        return dict(map_colors(session, task_id=task_id, by=by, record_ids=record_ids, heuristic_id=heuristic_id))
