"""Dashboard: one task's label quality — progress, distributions, confusion, agreement, heuristics, errors.

Every number can be narrowed to a saved data slice; the "present" layout shows one chart per screen.
"""

import streamlit as st

from core.errors import LoupeError
from ui import browser_cached as cached
from ui.dashboard_sections import SECTIONS, View, render_normal, render_present
from ui.feedback import show_error
from ui.project import project_caption, require_project
from ui.resources import DASHBOARD_SLICE_KEY, database_url
from ui.text import escape_markdown

ALL_RECORDS = "All records"
SLICE_KEY, PRESENT_KEY, SLIDE_KEY = "dashboard.slice", "dashboard.present", "dashboard.slide"

st.title("Dashboard")
ref = require_project()
project_caption(ref)
url = database_url()
tasks = cached.tasks(url, ref.id, ref.revision)
if not tasks:
    st.info("This project has no labeling task yet: create one on the Overview page.", icon=":material/info:")
    st.stop()

slice_names = cached.slice_names(url, ref.id, ref.revision)
wanted = st.session_state.pop(DASHBOARD_SLICE_KEY, None)  # another page asked for a slice's numbers
if wanted in slice_names:
    st.session_state[SLICE_KEY] = wanted
if st.session_state.get(SLICE_KEY) not in (ALL_RECORDS, *slice_names):  # deleted, or another project's
    st.session_state.pop(SLICE_KEY, None)

task_col, slice_col, present_col = st.columns([2, 2, 1], vertical_alignment="bottom")
task = task_col.selectbox("Task", [name for name, _ in tasks], key="dashboard.task")
picked = slice_col.selectbox("Records", [ALL_RECORDS, *slice_names], key=SLICE_KEY,
                             help="Restrict every number to a saved data slice.")
present = present_col.toggle("Present", key=PRESENT_KEY, help="Wide, large text, one chart per screen: for meetings.")
slice_name = None if picked == ALL_RECORDS else picked
try:
    with st.spinner("Computing…"):
        metrics = cached.metrics(url, ref.id, ref.revision, task, slice_name)
except LoupeError as error:
    show_error(error)
    st.stop()

view = View(metrics=metrics, database_url=url, project_id=ref.id, revision=ref.revision, slice_name=slice_name,
            big=present)
if slice_name:
    st.caption(f"Numbers of the slice **{escape_markdown(slice_name)}** only: {metrics.records:,} records.")
if not present:
    render_normal(view)
    st.stop()

slides = list(SECTIONS)
position = min(int(st.session_state.get(SLIDE_KEY, 0)), len(slides) - 1)


def _move(delta: int) -> None:
    st.session_state[SLIDE_KEY] = max(0, min(len(slides) - 1, position + delta))


with st.container(horizontal=True, vertical_alignment="center"):
    st.button("Previous", icon=":material/arrow_back:", key="dashboard.previous", on_click=_move, args=(-1,),
              disabled=position == 0, shortcut="Left")
    st.markdown(f"**{position + 1} / {len(slides)}** · {slides[position]}", width="content")
    st.button("Next", icon=":material/arrow_forward:", key="dashboard.next", on_click=_move, args=(1,),
              disabled=position == len(slides) - 1, shortcut="Right")
render_present(view, slides[position])
