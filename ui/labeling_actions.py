"""The labeling page's button callback: hand the action to ``core`` in one retried transaction.

It runs as an ``on_click`` callback, before the script, so a label is written
even when the next key press interrupts the run that follows. It only routes:
the rules live in :mod:`core.labeling`; a refused write (an overlapping span, a
vanished record) is kept for the page to show.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.errors import LoupeError, ValidationError
from core.label_queue import accept_suggestion
from core.labeling import WriteResult, add_span, clear_answer, remove_span, run_write, set_label, toggle_label
from core.store.models import TaskKind
from ui.labeling_controls import Action
from ui.labeling_state import Queue
from ui.resources import engine

ERROR_KEY = "labeling.error"
NONCE_KEY = "labeling.nonce"  # part of the token picker's key: a new nonce clears the selection
MOVES = {"prev", "next", "skip"}


@dataclass(frozen=True)
class Context:
    """What the callback needs to know about the page at the time the button was drawn."""

    queue_key: str
    annotator_id: int
    record_id: int
    focus: int
    auto_next: bool
    kinds: tuple[tuple[int, str], ...]  # (task id, kind)


def perform(action: Action, *, annotator_id: int, record_id: int, seconds: float) -> WriteResult:
    """Write the label change ``action`` describes; raises core's errors."""
    ids = {"task_id": action.task_id or 0, "record_id": record_id, "annotator_id": annotator_id}
    label = action.label_id or 0
    span = action.span
    if action.kind == "span":
        picked = sorted(st.session_state.get(action.tokens_key or "", None) or [])
        if not picked:
            raise ValidationError("Select the tokens of the span first, then press the label's key or button.")
        span = (picked[0], picked[-1] + 1)
    start, end = span or (0, 0)
    writes = {
        "set": lambda s: set_label(s, **ids, label=label, seconds_spent=seconds),
        "toggle": lambda s: toggle_label(s, **ids, label=label, seconds_spent=seconds),
        "span": lambda s: add_span(s, **ids, label=label, token_start=start, token_end=end, seconds_spent=seconds),
        "unspan": lambda s: remove_span(s, **ids, label=label, token_start=start, token_end=end),
        "accept": lambda s: accept_suggestion(s, **ids, seconds_spent=seconds),
        "clear": lambda s: clear_answer(s, **ids),
    }
    return run_write(engine(), writes[action.kind])


def on_action(context: Context, action: Action) -> None:
    """``on_click`` of every labeling button: move in the queue, or write and (optionally) move on."""
    queue = Queue(context.queue_key)
    if action.kind in MOVES:
        if action.kind == "skip":
            queue.skip()
        else:
            queue.move(-1 if action.kind == "prev" else 1)
        return
    try:
        perform(action, annotator_id=context.annotator_id, record_id=context.record_id,
                seconds=queue.seconds_on_current())
    except LoupeError as e:
        st.session_state[ERROR_KEY] = e
        return
    st.session_state[NONCE_KEY] = st.session_state.get(NONCE_KEY, 0) + 1
    single = dict(context.kinds).get(action.task_id or 0) == TaskKind.CLASSIFICATION
    if context.auto_next and single and action.task_id == context.focus and action.kind in {"set", "accept"} \
            and queue.current() == context.record_id:
        queue.move(1)


def pending_error() -> LoupeError | None:
    """The error the last callback left, once."""
    return st.session_state.pop(ERROR_KEY, None)
