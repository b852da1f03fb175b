"""Writes of the Heuristics page: one store transaction per action, long runs with progress."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st
from sqlmodel import Session

from core.errors import LoupeError
from core.heuristics import RunOutcome
from core.labelmodels import DEFAULT_MODEL
from core.store import session_scope
from core.weak_supervision import MODEL_NAMES, run_weak_supervision
from ui import heuristics_data as data
from ui import heuristics_jobs
from ui.feedback import flash, show_error
from ui.resources import database_url, engine


def write(action: Callable[[Session], Any], message: str | Callable[[Any], str]) -> None:
    """Run ``action`` in one transaction; on success keep ``message`` for the rerun, else show the error."""
    try:
        with session_scope(engine()) as session:
            result = action(session)
    except LoupeError as e:
        show_error(e)
        return
    flash(message(result) if callable(message) else message)
    st.rerun()


def outcome_message(outcomes: Sequence[RunOutcome]) -> tuple[str, str]:
    """A one-paragraph report and its kind (success, or warning when something failed)."""
    failed = [o for o in outcomes if o.state != "finished" or o.invalid_labels]
    lines = [o.summary() for o in outcomes]
    text = "Ran " + "; ".join(lines) if len(lines) < 4 else (
        f"Ran {len(outcomes)} heuristic(s), {sum(o.hits for o in outcomes):,} vote(s) stored"
        + ("" if not failed else ". Problems: " + "; ".join(o.summary() for o in failed))
    )
    return text, "warning" if failed else "success"


def run_all(project_id: int, task_id: int, heuristic_ids: list[int] | None = None) -> None:
    """Run heuristics in the background; the page shows their progress and stays usable."""
    if not heuristics_jobs.start(heuristics_jobs.key(project_id, task_id), heuristic_ids=heuristic_ids,
                                 report=outcome_message):
        st.warning("Heuristics of this task are running already; wait for that run to end.", icon=":material/timer:")
        return
    st.rerun()


def ws_panel(project_id: int, revision: int, task_id: int, frame: Any) -> None:
    """Pick a label model, run weak supervision, and show the runs so far."""
    voting = frame[(frame["enabled"]) & (frame["state"].str.startswith("finished"))]["name"].tolist()
    st.caption(
        f"Enabled heuristics with results ({len(voting)}): {', '.join(voting) or 'none yet'}. "
        "Records no heuristic votes on get no label; a new run replaces the previous labels."
    )
    models = list(MODEL_NAMES)
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    model = left.selectbox("Label model", models, index=models.index(DEFAULT_MODEL), format_func=MODEL_NAMES.get,
                           key="heuristics.ws.model")
    if right.button("Run weak supervision", type="primary", icon=":material/join_inner:", key="heuristics.ws.run",
                    disabled=not voting):
        try:
            with st.spinner("Fitting the label model…"):
                run = run_weak_supervision(engine(), project_id=project_id, task_id=task_id, model=model)
        except LoupeError as e:
            show_error(e)
        else:
            flash(f"Weak supervision ({MODEL_NAMES[run.model]}): {run.n_labeled:,} of {run.n_records:,} records "
                  f"labeled from {len(run.heuristics)} heuristic(s) in {run.duration_s:.2f} s.")
            st.rerun()
    runs, distribution = data.ws_runs(database_url(), project_id, revision, task_id)
    if runs.empty:
        st.info("No weak-supervision run yet.", icon=":material/info:")
        return
    latest = runs.iloc[0]
    cols = st.columns(3)
    cols[0].metric("Records labeled", f"{int(latest['records labeled']):,}", help=f"of {int(latest['of records']):,}")
    cols[1].metric("Label model", MODEL_NAMES.get(str(latest["model"]), str(latest["model"])))
    cols[2].metric("Heuristics", int(latest["heuristics"]))
    if distribution:
        st.caption("Latest result: " + ", ".join(f"{name} {count:,}" for name, count in distribution.items()))
    st.dataframe(runs, hide_index=True, width="stretch")
