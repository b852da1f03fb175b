"""Widgets of the review page: filters, the answer under review, decisions, the ground-truth manager."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from sqlmodel import Session

from core.errors import LoupeError
from core.label_queue import RecordContext, TaskState
from core.labeling import run_write
from core.review import AnswerView, review_answer, set_gold
from core.store.models import TaskKind
from core.store.workflow import Status
from ui.feedback import flash
from ui.labeling_state import Queue
from ui.labeling_view import record_html
from ui.resources import engine
from ui.text import escape_markdown

ACCEPT_KEY, REJECT_KEY, GOLD_KEY, SKIP_KEY = "A", "X", "G", "Right"
ERROR_KEY = "review.error"
HELP = {"rejected": "Removes the label and sends the record back to the labeling queue",
        "gold": "Accept, and make this answer the record's valid label"}


@dataclass(frozen=True)
class ReviewFilters:
    task_id: int
    annotator_ids: tuple[int, ...] | None
    labels: tuple[str, ...]
    seed: int


def filters(tasks: list[tuple[int, str]], annotators: list[tuple[int, str]], labels: dict[int, list[str]]) -> (
    ReviewFilters
):
    """Sidebar: the task and which answers to review (filters combine with AND)."""
    with st.sidebar:
        st.subheader("Review filters")
        names = dict(tasks)
        task_id = st.selectbox("Task", list(names), format_func=names.__getitem__, key="review.task",
                               persist_state="session")
        who = dict(annotators)
        picked = st.multiselect("Annotators", list(who), format_func=who.__getitem__, key="review.annotators",
                                placeholder="Everyone")
        wanted = st.multiselect("Answers with label", labels.get(task_id, []), key="review.labels",
                                placeholder="Any label")
        seed = int(st.number_input("Random seed", min_value=0, value=0, step=1, key="review.seed"))
    return ReviewFilters(task_id=int(task_id), annotator_ids=tuple(picked) or None, labels=tuple(wanted), seed=seed)


def status_row(counts: dict[str, int]) -> None:
    columns = st.columns(len(Status))
    for column, status in zip(columns, Status, strict=True):
        column.metric(status.value.replace("_", " ").capitalize(), f"{counts.get(status.value, 0):,}")


def _answer_text(task: TaskState, view: AnswerView) -> str:
    if task.kind == TaskKind.EXTRACTION:
        parts = [f"{label} (tokens {s}–{e - 1})" for label, s, e in view.labels]
    else:
        parts = [str(label) for label in view.labels]
    star = " :material/star: gold" if view.is_gold else ""
    return f"**{escape_markdown(view.annotator)}**: {escape_markdown(', '.join(parts)) or '—'}{star}"


def answer_under_review(record: RecordContext, task: TaskState, view: AnswerView, others: list[AnswerView]) -> None:
    """The record with the reviewed answer's spans highlighted, the answer, and the other annotators' answers."""
    spans = {}
    if task.kind == TaskKind.EXTRACTION and task.attribute:
        colors = {lb.name: lb.color for lb in task.labels}
        spans[task.attribute] = [(task.tokens[s][0], task.tokens[e - 1][1], label, colors.get(label, ""))
                                 for label, s, e in view.labels if e <= len(task.tokens)]
    title = f"Record {record.key} · {task.name} · {task.status.replace('_', ' ')}"
    st.html(record_html(record.values, spans=spans, title=title))
    st.markdown("Answer under review — " + _answer_text(task, view))
    if others:
        st.caption("Other annotators  \n" + "  \n".join(_answer_text(task, o) for o in others))


@dataclass(frozen=True)
class Decision:
    """The answer on screen when a decision button was drawn."""

    queue_key: str
    task_id: int
    record_id: int
    record_key: str
    labeler: int | None
    labeler_name: str
    reviewer: int


def on_decision(item: Decision, choice: str) -> None:
    """``on_click`` of the decision buttons (a callback, so a quick key press is never lost): store, move on."""
    queue = Queue(item.queue_key)
    if choice == "skip":
        queue.move(1)
        return
    verdict = "accepted" if choice == "gold" else choice
    seconds = queue.seconds_on_current()

    def decide(session: Session) -> Status:
        status = review_answer(session, task_id=item.task_id, record_id=item.record_id, annotator_id=item.labeler,
                               reviewer_id=item.reviewer, decision=verdict, seconds_to_review=seconds)
        if choice == "gold":
            set_gold(session, task_id=item.task_id, record_id=item.record_id, annotator_id=item.labeler)
        return status

    try:
        status = run_write(engine(), decide)
    except LoupeError as e:
        st.session_state[ERROR_KEY] = e
        return
    starred = " and starred as gold" if choice == "gold" else ""
    flash(f"{item.labeler_name}'s answer {verdict}{starred}; record {item.record_key} is now "
          f"{status.value.replace('_', ' ')}.")
    if queue.current() == (item.record_id, item.labeler):
        queue.move(1)


def pending_error() -> LoupeError | None:
    return st.session_state.pop(ERROR_KEY, None)


def decision(item: Decision) -> None:
    """Accept / reject / accept as gold / skip, with keys A, X, G and →."""
    with st.container(horizontal=True):
        for choice, label, icon, key, kind in (
            ("accepted", "Accept", ":material/thumb_up:", ACCEPT_KEY, "primary"),
            ("rejected", "Reject", ":material/thumb_down:", REJECT_KEY, "secondary"),
            ("gold", "Accept as gold", ":material/star:", GOLD_KEY, "secondary"),
            ("skip", "Skip", ":material/arrow_forward:", SKIP_KEY, "secondary"),
        ):
            st.button(label, icon=icon, type=kind, shortcut=key, key=f"review.{choice}", help=HELP.get(choice),
                      on_click=on_decision, args=(item, choice))
