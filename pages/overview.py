"""Overview: the current project's attributes, labeling tasks and label counts; create a task."""

import plotly.express as px
import streamlit as st

from core.errors import LoupeError
from core.store.models import TaskKind
from core.store.tasks_service import add_task, split_labels
from ui import cached
from ui.agreement import render_agreement
from ui.feedback import flash, show_error, show_flash
from ui.project import project_caption, require_project
from ui.resources import database_url, engine
from ui.text import escape_markdown

WHOLE_RECORD = "(whole record)"
SOURCE_COLORS = {"MANUAL": "#4E79A7", "WEAK_SUPERVISION": "#F28E2B", "HEURISTIC": "#59A14F", "MODEL": "#B07AA1"}

st.title("Overview")
ref = require_project()
project_caption(ref)
show_flash()
data = cached.overview(database_url(), ref.id, ref.revision)

attributes_col, tasks_col = st.columns([2, 3], gap="large")
with attributes_col:
    st.subheader("Attributes")
    if data.attributes.empty:
        st.info("No attributes yet: import a file on the Projects page.")
    else:
        st.dataframe(data.attributes, hide_index=True, width="stretch")
with tasks_col:
    st.subheader("Labeling tasks")
    if data.tasks.empty:
        st.info("No labeling tasks yet: create one below.")
    else:
        st.dataframe(
            data.tasks,
            hide_index=True,
            width="stretch",
            column_config={"labels": st.column_config.TextColumn("labels [hotkey]", width="large")},
        )

st.subheader("Labels")
counts = data.label_counts
if counts.empty:
    st.info("No labels yet.")
else:
    covered = data.labeled_records
    manual = covered[covered["source"] == "MANUAL"]
    for task, records in zip(manual["task"], manual["records"], strict=True):
        share = records / data.records if data.records else 0.0
        task_name = escape_markdown(task)
        st.markdown(f"**{records:,}** of {data.records:,} records ({share:.0%}) carry a manual label in *{task_name}*.")
    chart_col, table_col = st.columns([3, 2], gap="large")
    with table_col:
        st.dataframe(counts, hide_index=True, width="stretch")
    with chart_col:
        frame = counts.assign(label=counts["task"] + ": " + counts["label"]) if counts["task"].nunique() > 1 else counts
        figure = px.bar(
            frame, x="label", y="count", color="source", barmode="group", text="count",
            color_discrete_map=SOURCE_COLORS, height=320,
        )  # fmt: skip
        figure.update_layout(margin={"l": 0, "r": 0, "t": 10, "b": 0}, legend_title_text="source")
        st.plotly_chart(figure, width="stretch")

render_agreement(ref.name)

st.subheader("New labeling task")
attribute_names = list(data.attributes["attribute"])
with st.form("overview.new_task", border=True):
    name_col, kind_col, target_col = st.columns(3)
    name = name_col.text_input("Task name", max_chars=100)
    kind = kind_col.selectbox("Kind", [k.value for k in TaskKind], help="Extraction labels spans of a text attribute.",
                            key="overview.kind")
    target = target_col.selectbox("Target", [WHOLE_RECORD, *attribute_names], key="overview.target")
    labels = st.text_input("Labels (comma-separated)", placeholder="positive, negative, neutral")
    submitted = st.form_submit_button("Create task", type="primary", icon=":material/add:")
if submitted:
    try:
        with st.spinner("Creating the task…"):
            created = add_task(
                engine(),
                project=ref.name,
                name=name,
                kind=kind,
                attribute=None if target == WHOLE_RECORD else target,
                labels=split_labels(labels),
            )
    except LoupeError as e:
        show_error(e)
    else:
        flash(created.summary())
        st.rerun()
