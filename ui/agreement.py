"""Inter-annotator agreement section for the Overview page: ``render_agreement(project_name)``."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import streamlit as st

from core.agreement import AgreementReport, agreement_report
from core.errors import LoupeError
from core.label_queue import list_slices, slice_record_ids
from core.store import make_engine, session_scope
from core.store.projects import get_project
from core.store.tasks import list_tasks
from ui.feedback import show_error
from ui.resources import database_url, engine
from ui.text import escape_markdown

ALL_RECORDS = 0


@st.cache_data(show_spinner=False, max_entries=32)
def _report(url: str, task_id: int, slice_id: int, revision: int) -> AgreementReport:
    """Agreement of one task (on one slice); ``revision`` keys the cache so new labels show up."""
    with session_scope(make_engine(url)) as session:
        records = slice_record_ids(session, slice_id=slice_id) if slice_id != ALL_RECORDS else None
        return agreement_report(session, task_id=task_id, record_ids=records)


def render_agreement(project_name: str) -> None:
    """Pairwise percent agreement, Cohen's kappa and Krippendorff's alpha of the project's annotators."""
    st.subheader("Annotator agreement")
    with session_scope(engine()) as session:
        project = get_project(session, project_name)
        tasks = {t.id or 0: t.name for t in list_tasks(session, project.id or 0)}
        slices = dict([(ALL_RECORDS, "All records"), *list_slices(session, project_id=project.id or 0)])
        revision = project.revision
    if not tasks:
        st.info("No labeling task yet.")
        return
    task_col, slice_col = st.columns(2)
    task_id = task_col.selectbox("Task", list(tasks), format_func=tasks.__getitem__, key="agreement.task")
    slice_id = slice_col.selectbox("Records", list(slices), format_func=slices.__getitem__, key="agreement.slice")
    try:
        report = _report(database_url(), int(task_id), int(slice_id), revision)
    except LoupeError as e:
        show_error(e)
        return
    if report.pairs.empty:
        st.info(f"Agreement needs two annotators labeling the same records; *{escape_markdown(report.task)}* "
                "does not have that yet.")
        return
    unit = "tokens of records" if report.level == "token" else "records"
    alpha = "—" if np.isnan(report.alpha) else f"{report.alpha:.3f}"
    a_col, n_col, p_col = st.columns(3)
    a_col.metric("Krippendorff's alpha (nominal)", alpha, help="1 = perfect agreement, 0 = chance level")
    n_col.metric("Records with 2+ annotators", f"{report.items:,}")
    p_col.metric("Annotator pairs", f"{len(report.pairs):,}")
    matrix_col, table_col = st.columns([3, 2], gap="large")
    with matrix_col:
        figure = px.imshow(report.matrix.round(1), text_auto=True, zmin=0, zmax=100, color_continuous_scale="Blues",
                           labels={"color": "% agree"}, aspect="auto", height=120 + 40 * len(report.matrix))
        figure.update_layout(margin={"l": 0, "r": 0, "t": 10, "b": 0})
        st.plotly_chart(figure, width="stretch", key="agreement.matrix")
        st.caption(f"Percent agreement on the {unit} both annotators labeled.")
    with table_col:
        st.dataframe(
            report.pairs, hide_index=True, width="stretch",
            column_config={
                "n": st.column_config.NumberColumn("common records"),
                "percent": st.column_config.NumberColumn("% agree", format="%.1f"),
                "cohen_kappa": st.column_config.NumberColumn("Cohen's kappa", format="%.3f"),
            },
        )
