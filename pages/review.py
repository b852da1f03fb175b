"""Review: accept or reject annotators' labels in random order; manage gold (ground truth)."""

import streamlit as st

from core.errors import LoupeError
from core.label_queue import record_context
from core.labeling import list_annotators, run_write, task_labels
from core.review import (
    answers_of_record,
    mark_gold_fraction,
    reset_gold,
    review_queue,
    reviews_frame,
    start_review,
)
from core.store import session_scope
from core.store.tasks import list_tasks
from core.store.workflow import status_counts
from ui.feedback import flash, show_error, show_flash
from ui.labeling_controls import identity
from ui.labeling_review import Decision, answer_under_review, decision, filters, pending_error, status_row
from ui.labeling_state import Queue, annotator_id
from ui.project import project_caption, require_project
from ui.resources import engine

st.title("Review")
ref = require_project()
project_caption(ref)
show_flash()

with session_scope(engine()) as session:
    tasks = [(t.id or 0, t.name) for t in list_tasks(session, ref.id)]
    people = [(a.id or 0, a.name) for a in list_annotators(session, project_id=ref.id)]
    labels = {tid: [lb.name for lb in task_labels(session, tid)] for tid, _ in tasks}
if not tasks:
    st.info("This project has no labeling task yet: create one on the Overview page.", icon=":material/info:")
    st.stop()
with st.sidebar:
    reviewer_name = identity()
chosen = filters(tasks, people, labels)
counts_slot = st.empty()  # filled last, so it counts the record this run moved to "in review"

verify, gold_tab, history_tab = st.tabs(["Verify stream", "Ground truth", "Review history"])
with gold_tab:
    st.caption("Mark a random fraction of the answers matching the sidebar filters as gold, or reset gold. On each "
               "chosen record the filtered annotator's answer is starred, else the answer most annotators gave.")
    share = st.slider("Fraction of labeled records", 0, 100, 10, step=5, format="%d%%", key="review.fraction")
    gold_col, reset_col = st.columns(2)
    if gold_col.button("Mark as gold", icon=":material/star:", key="review.mark_gold"):
        n = run_write(engine(), lambda s: mark_gold_fraction(
            s, task_id=chosen.task_id, fraction=share / 100, seed=chosen.seed, annotator_ids=chosen.annotator_ids,
            label_names=list(chosen.labels) or None))
        flash(f"Starred {n} record(s) as gold.")
        st.rerun()
    confirm = reset_col.checkbox("Yes, remove every gold star of this task", key="review.confirm_reset")
    if reset_col.button("Reset gold", icon=":material/star_border:", disabled=not confirm, key="review.reset_gold"):
        n = run_write(engine(), lambda s: reset_gold(s, task_id=chosen.task_id))
        flash(f"Removed the gold star from {n} label(s).", kind="info")
        st.rerun()
with history_tab, session_scope(engine()) as session:
    st.dataframe(reviews_frame(session, task_id=chosen.task_id), hide_index=True, width="stretch")


def verify_stream() -> None:
    """The verify stream: one answer at a time in random order, decided by button or key."""
    if not reviewer_name:
        st.info("Enter your name in the sidebar to review.", icon=":material/person:")
        return
    try:
        reviewer = annotator_id(reviewer_name)
    except LoupeError as e:
        show_error(e)
        return
    queue = Queue("review.queue")
    with session_scope(engine()) as session:
        queue.ensure((ref.id, reviewer, chosen), lambda: review_queue(
            session, task_id=chosen.task_id, annotator_ids=chosen.annotator_ids, label_names=chosen.labels or None,
            reviewer_id=reviewer, seed=chosen.seed))
    item = queue.current()
    if item is None:
        st.success(f"Nothing left to review here ({len(queue.ids)} answer(s) in this stream).",
                   icon=":material/task_alt:")
        if st.button("Look for new answers", icon=":material/refresh:"):
            queue.rebuild()
            st.rerun()
        return
    record_id, labeler = item
    with session_scope(engine()) as session:
        if queue.seconds_on_current() == 0.0:  # first shown: the clock starts and the record is in review
            start_review(session, task_id=chosen.task_id, record_id=record_id, reviewer_id=reviewer)
        record = record_context(session, record_id=record_id, annotator_id=labeler)
        answers = answers_of_record(session, task_id=chosen.task_id, record_id=record_id)
    task = next(t for t in record.tasks if t.id == chosen.task_id)
    view = next((a for a in answers if a.annotator_id == labeler), None)
    if view is None:
        flash("An answer was removed since the stream was built; it was skipped.", kind="warning")
        queue.move(1)
        st.rerun()
        return
    st.caption(f"Answer {queue.pos + 1} of {len(queue.ids)}; your decision is stored at once.")
    if (error := pending_error()) is not None:
        show_error(error)
    answer_under_review(record, task, view, [a for a in answers if a.annotator_id != labeler])
    decision(Decision(queue_key=queue.key, task_id=chosen.task_id, record_id=record_id, record_key=record.key,
                      labeler=labeler, labeler_name=view.annotator, reviewer=reviewer))


with verify:
    verify_stream()
with counts_slot.container(), session_scope(engine()) as session:
    status_row(status_counts(session, project_id=ref.id, task_id=chosen.task_id))
