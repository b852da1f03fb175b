"""Dashboard: one task's label quality for a meeting — progress, distributions, confusion, errors."""

import streamlit as st

from core.errors import LoupeError
from ui import browser_cached as cached
from ui.browser_charts import annotator_chart, confidence_chart, confusion_chart, distribution_chart
from ui.feedback import show_error
from ui.project import project_caption, require_project
from ui.resources import database_url
from ui.text import escape_markdown

ALL_RECORDS = "All records"

st.title("Dashboard")
ref = require_project()
project_caption(ref)
url = database_url()
tasks = cached.tasks(url, ref.id, ref.revision)
if not tasks:
    st.info("This project has no labeling task yet: create one on the Overview page.", icon=":material/info:")
    st.stop()

task_col, slice_col = st.columns(2)
names = [name for name, _ in tasks]
task = task_col.selectbox("Task", names, key="dashboard.task")
picked = slice_col.selectbox("Records", [ALL_RECORDS, *cached.slice_names(url, ref.id, ref.revision)],
                             key="dashboard.slice", help="Restrict every number to a saved data slice.")
slice_name = None if picked == ALL_RECORDS else picked
try:
    with st.spinner("Computing…"):
        m = cached.metrics(url, ref.id, ref.revision, task, slice_name)
except LoupeError as error:
    show_error(error)
    st.stop()

progress = dict(zip(m.progress["measure"], m.progress["records"], strict=True))
cols = st.columns(4)
cols[0].metric("Records", f"{progress['records']:,}")
cols[1].metric("Labeled manually", f"{progress['labeled manually']:,}",
               help="Records with a manual label from at least one annotator.")
cols[2].metric("Valid manual label", f"{progress['valid manual label']:,}",
               help="One annotator, the gold-starred answer, or the answer all annotators agree on.")
cols[3].metric("Weakly supervised", f"{progress['weakly supervised']:,}")
if m.records:
    st.progress(min(1.0, progress["labeled manually"] / m.records),
                text=f"{progress['labeled manually'] / m.records:.0%} labeled manually")

left, right = st.columns(2, gap="large")
with left:
    st.subheader("Label distribution")
    if m.distribution.to_numpy().sum():
        st.plotly_chart(distribution_chart(m.distribution), width="stretch", key="dashboard.distribution")
    else:
        st.info("No labels yet.")
with right:
    st.subheader("Weak-supervision confidence")
    if m.confidence["count"].sum():
        st.plotly_chart(confidence_chart(m.confidence), width="stretch", key="dashboard.confidence")
    else:
        st.info("No weak-supervision labels yet: run a label model on the Heuristics page.")

st.subheader("Manual labels vs weak supervision")
level = {"token": "per token (O = outside every span)", "label set": "per record, as label sets"}.get(
    m.confusion_level, "per record")
st.caption(f"Rows: valid manual labels; columns: weak supervision; {level}. Colour and percentages are row rates.")
if m.confusion.to_numpy().sum():
    st.plotly_chart(confusion_chart(m.confusion, m.confusion_rates), width="stretch", key="dashboard.confusion")
else:
    st.info("No record has both a valid manual label and a weak-supervision label yet.")

people, agreement = st.columns(2, gap="large")
with people:
    st.subheader("Progress by annotator")
    if m.by_annotator.empty:
        st.info("No manual labels yet.")
    else:
        st.plotly_chart(annotator_chart(m.by_annotator), width="stretch", key="dashboard.annotators")
with agreement:
    st.subheader("Annotator agreement")
    report = m.agreement
    if report is None or report.pairs.empty:
        st.info("Agreement needs records labeled by two annotators or more.")
    else:
        st.metric("Krippendorff's alpha", "–" if report.alpha != report.alpha else f"{report.alpha:.2f}",
                  help=f"Over {report.items:,} record(s) labeled by two or more annotators ({report.level} level).")
        st.dataframe(report.pairs, hide_index=True, width="stretch",
                     column_config={"percent": st.column_config.NumberColumn("agreement %", format="%.1f"),
                                    "cohen_kappa": st.column_config.NumberColumn("Cohen's κ", format="%.2f")})

st.subheader("Heuristics")
if m.heuristics.empty:
    st.info("No heuristic has labeled these records yet.")
else:
    st.dataframe(m.heuristics, hide_index=True, width="stretch",
                 column_config={"est_precision": st.column_config.ProgressColumn("est. precision", min_value=0.0,
                                                                                 max_value=1.0, format="%.2f")})

st.subheader("Likely label errors")
kind = dict(tasks)[task]
if kind != "classification":
    st.caption(f"Label errors are searched for classification tasks; {escape_markdown(task)} is a task of "
               f"kind {kind}.")
else:
    st.caption("Manual labels that a classifier on the records' embeddings, cross-validated, confidently "
               "disagrees with (confident learning). Lowest score first: the most likely errors.")
    key = f"dashboard.errors.{ref.id}.{task}.{slice_name}"
    if st.button("Find likely label errors", icon=":material/troubleshoot:", key="dashboard.find_errors"):
        st.session_state[key] = True
    if st.session_state.get(key):
        try:
            with st.spinner("Cross-validating a classifier on the embeddings…"):
                errors = cached.label_errors(url, ref.id, ref.revision, task, slice_name)
        except LoupeError as error:
            show_error(error)
        else:
            if errors.empty:
                st.success("No likely label errors found.")
            else:
                st.dataframe(errors.drop(columns=["record_id"]), hide_index=True, width="stretch",
                             column_config={"id": "record", "score": st.column_config.NumberColumn(format="%.3f")})
