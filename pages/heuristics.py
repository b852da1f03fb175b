"""Heuristics: labeling functions and lookup lists, their statistics, and weak supervision."""

import streamlit as st

from core.heuristics import adopt_imported_heuristics
from ui import heuristics_data as data
from ui import heuristics_jobs as jobs
from ui import heuristics_learners as learners
from ui.feedback import show_flash
from ui.heuristics_editor import editor, load_file
from ui.heuristics_lookup import lookup_tab
from ui.heuristics_runs import run_all, write, ws_panel
from ui.heuristics_stats import stats_tab
from ui.project import project_caption, require_project
from ui.resources import database_url
from ui.text import escape_markdown

st.title("Heuristics")
ref = require_project()
project_caption(ref)
show_flash()
basics = data.basics(database_url(), ref.id, ref.revision)
if not basics.tasks:
    st.info("This project has no labeling task yet: create one on the Overview page.", icon=":material/info:")
    st.page_link("pages/overview.py", label="Go to Overview", icon=":material/dashboard:")
    st.stop()

tasks = {t.id: t for t in basics.tasks}
task_id = st.selectbox("Labeling task", list(tasks), format_func=lambda i: f"{tasks[i].name} ({tasks[i].kind})",
                       key="heuristics.task")
task = tasks[task_id]
frame = data.heuristics(database_url(), ref.id, ref.revision, task.id)
lists = list(data.lookup_lists(database_url(), ref.id, ref.revision)["name"])

st.subheader(f"Heuristics of “{escape_markdown(task.name)}”")
job_key = jobs.key(ref.id, task.id)
if jobs.current(job_key) is not None:
    jobs.progress_panel(job_key)
learners.progress(ref.id, task.id)
if frame.empty:
    st.info("No heuristic yet: write a labeling function in the editor below, make one from a lookup list, or add "
            "an active learner.", icon=":material/info:")
else:
    st.dataframe(
        frame.drop(columns=["id", "error"]).assign(kind=frame["kind"].str.replace("_", " ")),
        hide_index=True, width="stretch",
        column_config={
            "description": st.column_config.TextColumn("description", width="medium"),
            "undefined_labels": st.column_config.TextColumn("undefined labels"),
            "enabled": st.column_config.CheckboxColumn("enabled", help="takes part in weak supervision"),
            "duration_s": st.column_config.NumberColumn("seconds", format="%.2f"),
            "last_run": st.column_config.DatetimeColumn("last run", format="YYYY-MM-DD HH:mm:ss"),
        },
    )
    for row in frame[frame["error"] != ""].itertuples():
        st.error(f"**{escape_markdown(row.name)}** {escape_markdown(row.state)}: {escape_markdown(row.error)}",
                 icon=":material/error:")
    for row in frame[frame["undefined_labels"] != ""].itertuples():
        st.warning(f"**{escape_markdown(row.name)}** emitted label(s) this task does not define, not stored: "
                   f"{escape_markdown(row.undefined_labels)}", icon=":material/warning:")
    runnable = frame[frame["kind"] != "external"]
    if st.button(f"Run all heuristics ({len(runnable)})", icon=":material/fast_forward:", key="heuristics.run_all",
                 disabled=runnable.empty or jobs.running(job_key)):
        run_all(ref.id, task.id)

# Keyed and tracked, so the open tab stays open when an action reruns the page.
editor_tab, ws_tab, stats_view, lookup_view, learners_view = st.tabs(
    ["Editor", "Weak supervision", "Statistics", "Lookup lists", "Active learner & zero-shot"],
    key="heuristics.tab", on_change="rerun",
)
with editor_tab:
    load_file(ref.id, task)
    editor(ref.id, ref.revision, task, basics, frame, lists)
with ws_tab:
    ws_panel(ref.id, ref.revision, task.id, frame)
with stats_view:
    stats_tab(ref.id, ref.revision, task.id, dict(zip(task.labels, task.colors, strict=True)))
with lookup_view:
    lookup_tab(ref.id, ref.revision, task, basics)
with learners_view:
    learners.learners_tab(ref.id, ref.revision, task)

with st.sidebar.expander("Imported heuristic labels"):
    st.caption("Heuristic labels imported from a refinery file can become heuristics here, to enable or disable.")
    if st.button("Adopt imported heuristic labels", key="heuristics.adopt"):
        write(lambda s: adopt_imported_heuristics(s, project_id=ref.id),
              lambda n: f"Created {n} heuristic(s) from imported labels.")
