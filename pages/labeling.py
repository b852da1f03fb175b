"""Labeling: one record at a time from a queue; every label is written to the database at once."""

from functools import partial

import streamlit as st

from core.errors import LoupeError
from core.label_queue import build_queue, list_slices, record_context
from core.store import session_scope
from core.store.models import TaskKind
from core.store.tasks import list_tasks
from ui.feedback import show_error, show_flash
from ui.labeling_actions import NONCE_KEY, Context, on_action, pending_error
from ui.labeling_controls import navigation, settings, task_controls, token_picker
from ui.labeling_state import Queue, annotator_id, open_requested, requested_record
from ui.labeling_view import record_html
from ui.project import project_caption, require_project
from ui.resources import engine
from ui.similar import render_find_similar
from ui.text import escape_markdown

st.title("Labeling")
ref = require_project()
project_caption(ref)
show_flash()

with session_scope(engine()) as session:
    tasks = [(t.id or 0, t.name, t.kind) for t in list_tasks(session, ref.id)]
    slices = list_slices(session, project_id=ref.id)
if not tasks:
    st.info("This project has no labeling task yet: create one on the Overview page.", icon=":material/info:")
    st.page_link("pages/overview.py", label="Go to Overview", icon=":material/dashboard:")
    st.stop()

config = settings(tasks, slices)
if not config.annotator:
    # A record another page opened stays requested until there is someone to label it.
    wanted = requested_record()
    then = f" Record {escape_markdown(wanted)} opens then." if wanted is not None else ""
    st.info(f"Enter your name in the sidebar to start labeling: labels are stored per annotator.{then}",
            icon=":material/person:")
    st.stop()
try:
    who = annotator_id(config.annotator)
except LoupeError as e:
    show_error(e)
    st.stop()

queue = Queue("labeling.queue")
queue_settings = (ref.id, who, config.focus, config.source, config.order, config.seed, config.slice_id)
try:
    with session_scope(engine()) as session:
        queue.ensure(queue_settings, lambda: build_queue(
            session, task_id=config.focus, annotator_id=who, source=config.source, order=config.order,
            seed=config.seed, slice_id=config.slice_id))
except LoupeError as e:
    show_error(e)
    st.stop()
try:
    open_requested(queue, project_id=ref.id)  # a record opened from Search, Data or the Dashboard
except LoupeError as e:
    show_error(e)

record_id = queue.current()
if record_id is None:
    st.success(f"Nothing left in this queue ({len(queue.ids)} record(s) in it). Pick another queue or task, "
               "or look again for records that are still unlabeled.", icon=":material/task_alt:")
    if queue.pos > 0 and st.button("Back to the last record", icon=":material/arrow_back:", shortcut="Left"):
        queue.move(-1)
        st.rerun()
    if st.button("Build the queue again", icon=":material/refresh:"):
        queue.rebuild()
        st.rerun()
    st.stop()

queue.seconds_on_current()  # starts the clock when a record is first shown
try:
    with session_scope(engine()) as session:
        record = record_context(session, record_id=record_id, annotator_id=who)
except LoupeError as e:
    show_error(e)
    st.stop()

if (error := pending_error()) is not None:
    show_error(error)
context = Context(queue_key=queue.key, annotator_id=who, record_id=record_id, focus=config.focus,
                  auto_next=config.auto_next, kinds=tuple((t.id, t.kind) for t in record.tasks))
act = partial(on_action, context)
navigation(queue.pos, len(queue.ids), on_action=act)
focus = next(t for t in record.tasks if t.id == config.focus)
text_col, controls_col = st.columns([3, 2], gap="large")
with text_col:
    spans: dict[str, list[tuple[int, int, str, str]]] = {}
    for task in record.tasks:
        if task.kind == TaskKind.EXTRACTION and task.attribute and (task.id == focus.id or not spans):
            spans[task.attribute] = [
                (task.tokens[s][0], task.tokens[e - 1][1], task.label(lid).name, task.label(lid).color)
                for lid, s, e in task.mine if s is not None and e is not None and e <= len(task.tokens)
            ]
    st.html(record_html(record.values, spans=spans, title=f"Record {record.key} · running id {record.running_id}"))
    tokens = None
    if focus.kind == TaskKind.EXTRACTION and focus.attribute:
        text = next((str(v) for n, _, v in record.values if n == focus.attribute and v is not None), "")
        tokens = token_picker(focus, text, nonce=st.session_state.get(NONCE_KEY, 0))
    render_find_similar(ref.name, record.key, k=5, key="labeling.similar")
with controls_col:
    for task in sorted(record.tasks, key=lambda t: t.id != focus.id):
        task_controls(task, focus=task.id == focus.id, tokens=tokens if task.id == focus.id else None, on_action=act)
