"""The active learner and zero-shot on the Heuristics page: add, retrain, see how good they are.

Both learn from stored embeddings (computed on the Search page) and store their votes as
a heuristic of the task (:mod:`core.embedding_heuristics`). Training runs in the
background (:mod:`ui.background`), so a click elsewhere does not cut it short.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import embedding_heuristics as eh
from core.active_learning import DEFAULT_MIN_CONFIDENCE as LEARNER_MIN
from core.heuristics import list_heuristics
from core.store import make_engine, session_scope
from core.store.models import TaskKind
from core.zero_shot import DEFAULT_MIN_CONFIDENCE as ZERO_SHOT_MIN
from ui import background, search_data
from ui.heuristics_data import TaskInfo
from ui.resources import database_url, engine

SEARCH_PAGE = "pages/search.py"
COLUMNS = ["id", "name", "learner", "enabled", "votes", "min_confidence", "training", "accuracy", "embeddings",
           "last_run"]


@st.cache_data(show_spinner=False, max_entries=32)
def learners(database_url: str, project_id: int, revision: int, task_id: int) -> pd.DataFrame:
    """The task's active learners and zero-shot heuristics with the figures of their last training."""
    rows = []
    with session_scope(make_engine(database_url)) as session:
        for h in list_heuristics(session, project_id=project_id, task_id=task_id):
            learner = eh.learner_of(h)
            if learner is None:
                continue
            s = h.settings
            active = learner == eh.ACTIVE_LEARNER
            rows.append({
                "id": h.id, "name": h.name, "learner": eh.LEARNERS[learner], "enabled": h.enabled,
                "votes": h.last_run_hits, "min_confidence": s.get("min_confidence"),
                "training": s.get("training_size") if active else s.get("labeled_records"),
                "accuracy": s.get("cv_accuracy") if active else s.get("accuracy"),
                "embeddings": f"{s.get('attribute')} · {s.get('model')}", "last_run": h.last_run_at,
            })
    return pd.DataFrame(rows, columns=COLUMNS)


def job_key(project_id: int, task_id: int) -> Hashable:
    return ("learner", database_url(), project_id, task_id)


def busy(project_id: int, task_id: int) -> bool:
    return background.running(job_key(project_id, task_id))


def progress(project_id: int, task_id: int) -> None:
    """The progress of a training of the task's learners, when one is going on (shown above the tabs)."""
    key = job_key(project_id, task_id)
    if background.current(key) is not None:
        background.progress_panel(key, waiting="training and labeling every embedded record")


def start(project_id: int, task_id: int, label: str, train: Callable[[Session], eh.LearnerRun]) -> None:
    """Train in the background (one training per task at a time); the page shows the progress."""
    store = engine()
    if not background.start(job_key(project_id, task_id), label=label, work=lambda _: _train(store, train)):
        st.warning("A learner of this task is training already; wait for it to end.", icon=":material/timer:")
        return
    st.rerun()


def _train(store: Engine, train: Callable[[Session], eh.LearnerRun]) -> str:
    # Runs in a background thread: no Streamlit call in here.
    with session_scope(store) as session:
        return train(session).summary()


def _space_picker(spaces: list[search_data.Space], key: str, saved: str | None) -> search_data.Space:
    labels = [s.label for s in spaces]
    index = labels.index(saved) if saved in labels else 0
    picked = st.selectbox("Embeddings", labels, index=index, key=key, disabled=len(spaces) == 1,
                          help="The text attribute and model the learner works on (computed on the Search page).")
    return spaces[labels.index(picked)]


def _saved(frame: pd.DataFrame, name: str) -> dict[str, Any]:
    row = frame[frame["name"] == name]
    return {} if row.empty else row.iloc[0].to_dict()


def learners_tab(project_id: int, revision: int, task: TaskInfo) -> None:
    if task.kind != TaskKind.CLASSIFICATION:
        st.info("The active learner and zero-shot label whole records: pick a classification task.",
                icon=":material/info:")
        return
    spaces = search_data.spaces(project_id)
    if not spaces:
        st.info("Both learn from sentence embeddings of a text attribute: compute them on the Search page first.",
                icon=":material/info:")
        st.page_link(SEARCH_PAGE, label="Go to Search", icon=":material/travel_explore:")
        return
    busy = background.running(job_key(project_id, task.id))
    frame = learners(database_url(), project_id, revision, task.id)
    if not frame.empty:
        _overview(project_id, task, frame, busy)
    active_col, zero_col = st.columns(2, gap="large")
    with active_col, st.container(border=True):
        _active_learner_form(project_id, task, spaces, _saved(frame, eh.ACTIVE_LEARNER), busy)
    with zero_col, st.container(border=True):
        _zero_shot_form(project_id, task, spaces, busy)


def _overview(project_id: int, task: TaskInfo, frame: pd.DataFrame, busy: bool) -> None:
    st.dataframe(frame.drop(columns=["id"]), hide_index=True, width="stretch", column_config={
        "enabled": st.column_config.CheckboxColumn("enabled", help="takes part in weak supervision"),
        "min_confidence": st.column_config.NumberColumn("min. confidence", format="%.2f"),
        "training": st.column_config.NumberColumn(
            "trained on", help="Active learner: records with a valid manual label it was trained on. Zero-shot: "
                               "manually labeled records it was graded on (it trains on nothing)."),
        "accuracy": st.column_config.ProgressColumn(
            "accuracy", min_value=0.0, max_value=1.0, format="percent",
            help="Active learner: cross-validated, each training record predicted by a model that did not see it. "
                 "Zero-shot: its top label against the manual labels."),
        "last_run": st.column_config.DatetimeColumn("trained", format="YYYY-MM-DD HH:mm"),
    })
    names = dict(zip(frame["id"], frame["name"], strict=True))
    pick_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
    picked = pick_col.selectbox("Retrain on today's labels", list(names), format_func=names.get,
                                key=f"heuristics.learners.retrain_pick.{task.id}")
    if button_col.button("Retrain", icon=":material/model_training:", key="heuristics.learners.retrain",
                         disabled=busy, width="stretch"):
        start(project_id, task.id, f"Retraining {names[picked]}…",
              lambda s: eh.retrain(s, heuristic_id=int(picked)))


def _active_learner_form(project_id: int, task: TaskInfo, spaces: list[search_data.Space], saved: dict[str, Any],
                         busy: bool) -> None:
    st.markdown("**Active learner**")
    st.caption("A classifier on the embeddings of the manually labeled records; it labels the others when it is "
               "sure enough. Its statistics only count records the model that labeled them did not train on.")
    space = _space_picker(spaces, f"heuristics.learners.active.space.{task.id}", saved.get("embeddings"))
    confidence = st.slider("Minimum confidence", 0.0, 1.0, float(saved.get("min_confidence") or LEARNER_MIN), 0.05,
                           key=f"heuristics.learners.active.min.{task.id}")
    if st.button("Retrain active learner" if saved else "Add active learner", type="primary", disabled=busy,
                 icon=":material/model_training:", key="heuristics.learners.active.add"):
        start(project_id, task.id, "Training the active learner…", lambda s: eh.add_active_learner(
            s, project_id=project_id, task_id=task.id, attribute=space.attribute, model=space.model,
            min_confidence=confidence))


def _zero_shot_form(project_id: int, task: TaskInfo, spaces: list[search_data.Space], busy: bool) -> None:
    with session_scope(engine()) as session:
        found = next((h for h in list_heuristics(session, project_id=project_id, task_id=task.id)
                      if h.name == eh.ZERO_SHOT and eh.learner_of(h) == eh.ZERO_SHOT), None)
        saved: dict[str, Any] = dict(found.settings) if found else {}
    st.markdown("**Zero-shot**")
    st.caption("Labels records by how close they are in meaning to each label's name and description; needs no "
               "manual labels.")
    space = _space_picker(spaces, f"heuristics.learners.zero.space.{task.id}",
                          f"{saved.get('attribute')} · {saved.get('model')}" if saved else None)
    confidence = st.slider("Minimum confidence", 0.0, 1.0, float(saved.get("min_confidence") or ZERO_SHOT_MIN), 0.05,
                           key=f"heuristics.learners.zero.min.{task.id}")
    descriptions: dict[str, str] = {}
    with st.expander("Label descriptions (optional, sharpen the prompts)"):
        for label in task.labels:
            descriptions[label] = st.text_input(
                label, value=(saved.get("descriptions") or {}).get(label, ""),
                key=f"heuristics.learners.zero.d.{task.id}.{label}", placeholder=f"what “{label}” means")
    if st.button("Run zero-shot again" if saved else "Add zero-shot", type="primary", disabled=busy,
                 icon=":material/bolt:", key="heuristics.learners.zero.add"):
        start(project_id, task.id, "Running zero-shot…", lambda s: eh.add_zero_shot(
            s, project_id=project_id, task_id=task.id, attribute=space.attribute, model=space.model,
            descriptions=descriptions, min_confidence=confidence))
