"""Widgets of the labeling page: settings, navigation, label buttons, token picker, suggestions.

Each button hands an :class:`Action` to the page's ``on_action`` callback,
which passes it to ``core`` (see :mod:`ui.labeling_actions`). Callbacks run
before the script and are never cut short by the next key press, so a fast
typist loses no label; a button's return value would be lost whenever a new
key press interrupts the run that should have written it. Keyboard shortcuts
are Streamlit's own (``st.button(shortcut=...)``): label hotkeys for the task
the keyboard is on, arrows to move, Enter to accept a suggestion, Delete to clear.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from core.label_queue import QueueOrder, QueueSource, Suggestion, TaskState
from core.store.models import SourceType, TaskKind
from ui.labeling_state import ANNOTATOR_KEY
from ui.text import escape_markdown

# Streamlit reserves C and R (clear cache, rerun), with or without modifiers.
RESERVED_KEYS = {"c", "r"}
PREVIOUS, NEXT, SKIP, ACCEPT, CLEAR = "Left", "Right", "Down", "Enter", "Delete"
SOURCES = {QueueSource.UNLABELED.value: "Unlabeled by me",
           QueueSource.UNLABELED_ALL.value: "All unlabeled (no manual label by anyone)",
           QueueSource.SLICE.value: "A saved slice", QueueSource.UNCERTAIN.value: "Weak supervision least sure"}
ORDERS = {QueueOrder.SEQUENTIAL.value: "Sequential", QueueOrder.RANDOM.value: "Random",
          QueueOrder.LEAST_CONFIDENT.value: "Least confident first"}


@dataclass(frozen=True)
class Action:
    """What the user asked for: ``set``, ``toggle``, ``span``, ``unspan``, ``accept``, ``clear`` or a move.

    A ``span`` reads its tokens from the token picker's state (``tokens_key``) when it runs.
    """

    kind: str
    task_id: int | None = None
    label_id: int | None = None
    span: tuple[int, int] | None = None
    tokens_key: str | None = None


OnAction = Callable[[Action], None]


@dataclass(frozen=True)
class Settings:
    annotator: str
    focus: int  # the task the keyboard acts on and the queue follows
    source: str
    order: str
    seed: int
    slice_id: int | None
    auto_next: bool


def shortcut(hotkey: str | None) -> str | None:
    """The label's hotkey if Streamlit can bind it (one letter or digit, not C or R)."""
    if hotkey and len(hotkey) == 1 and hotkey.isalnum() and hotkey.lower() not in RESERVED_KEYS:
        return hotkey
    return None


def identity(*, label: str = "Your name") -> str:
    """The annotator's name, kept for the session across pages (the labeling and review pages share it)."""
    # A plain session key outlives the widget, whose own state Streamlit drops on a page switch.
    saved = st.session_state.get(ANNOTATOR_KEY, "")
    name = st.text_input(label, value=saved, key=f"{ANNOTATOR_KEY}.input", max_chars=100, placeholder="e.g. alice",
                         help="Labels are stored per annotator; reviewers use the same name.")
    cleaned = " ".join((name or "").split())
    st.session_state[ANNOTATOR_KEY] = cleaned
    return cleaned


def settings(tasks: list[tuple[int, str, str]], slices: list[tuple[int, str]]) -> Settings:
    """Sidebar: identity, the task the keyboard is on, the queue and its order."""
    with st.sidebar:
        st.subheader("Labeling queue")
        annotator = identity()
        names = {tid: name for tid, name, _ in tasks}
        focus = st.selectbox("Keyboard and queue on task", list(names), format_func=names.__getitem__,
                             key="labeling.focus", persist_state="session")
        options = [s for s in SOURCES if s != QueueSource.SLICE.value or slices]
        source = st.selectbox("Queue", options, format_func=SOURCES.__getitem__, key="labeling.source",
                              persist_state="session")
        slice_id = None
        if source == QueueSource.SLICE.value:
            slice_names = dict(slices)
            slice_id = st.selectbox("Slice", list(slice_names), format_func=slice_names.__getitem__,
                                    key="labeling.slice", persist_state="session")
        order = st.selectbox("Order", list(ORDERS), format_func=ORDERS.__getitem__, key="labeling.order",
                             persist_state="session")
        seed = int(st.number_input("Random seed", min_value=0, value=0, step=1, key="labeling.seed",
                                   persist_state="session")) if order == QueueOrder.RANDOM.value else 0
        auto_next = st.toggle("Next record after labeling", value=True, key="labeling.auto_next",
                              persist_state="session")
    return Settings(annotator=annotator, focus=int(focus), source=source, order=order, seed=seed, slice_id=slice_id,
                    auto_next=auto_next)


def navigation(pos: int, total: int, *, on_action: OnAction) -> None:
    """Previous / skip / next, bound to the arrow keys."""
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button("Previous", icon=":material/arrow_back:", shortcut=PREVIOUS, disabled=pos == 0,
                  key="labeling.prev", on_click=on_action, args=(Action("prev"),))
        st.button("Skip", icon=":material/redo:", shortcut=SKIP, key="labeling.skip", on_click=on_action,
                  args=(Action("skip"),), help="Put this record at the end of the queue")
        st.button("Next", icon=":material/arrow_forward:", shortcut=NEXT, key="labeling.next", on_click=on_action,
                  args=(Action("next"),))
        st.caption(f"Record {pos + 1} of {total} in this queue")


def tokens_key(task_id: int, nonce: int) -> str:
    return f"labeling.tokens.{task_id}.{nonce}"


def token_picker(task: TaskState, text: str, *, nonce: int) -> str:
    """Multi-select of the attribute's tokens; returns the picker's state key for the label buttons."""
    from ui.labeling_view import token_texts

    words = token_texts(text, task.tokens)
    key = tokens_key(task.id, nonce)
    st.pills(f"Tokens of {task.attribute}: select some, then press a label's key (the span runs from the first "
             "to the last selected token)", list(range(len(words))), selection_mode="multi",
             format_func=lambda i: words[i] or "␣", key=key)
    return key


def _header(task: TaskState, *, focus: bool) -> None:
    keyboard = " · :material/keyboard: keys" if focus else ""
    status = task.status.replace("_", " ")
    st.markdown(f"**{escape_markdown(task.name)}** :gray[{task.kind} · record {status}{keyboard}]")


def task_controls(task: TaskState, *, focus: bool, tokens: str | None, on_action: OnAction) -> None:
    """Label buttons (primary = chosen), spans with remove buttons, suggestions with "accept"."""
    chosen = {label_id for label_id, _, _ in task.mine}
    with st.container(border=True):
        _header(task, focus=focus)
        with st.container(horizontal=True):
            for lb in task.labels:
                if task.kind == TaskKind.EXTRACTION:
                    action = Action("span", task.id, lb.id, tokens_key=tokens)
                else:
                    action = Action("toggle" if task.kind == TaskKind.MULTILABEL else "set", task.id, lb.id)
                selected = lb.id in chosen and task.kind != TaskKind.EXTRACTION
                st.button(escape_markdown(lb.name), key=f"labeling.label.{task.id}.{lb.id}",
                          type="primary" if selected else "secondary",
                          shortcut=shortcut(lb.hotkey) if focus else None, on_click=on_action, args=(action,))
            if task.mine:
                st.button("Clear", icon=":material/backspace:", type="tertiary", key=f"labeling.clear.{task.id}",
                          shortcut=CLEAR if focus else None, on_click=on_action, args=(Action("clear", task.id),))
        if task.kind == TaskKind.EXTRACTION:
            _spans(task, on_action=on_action)
        _suggestions(task, focus=focus, on_action=on_action)


def _spans(task: TaskState, *, on_action: OnAction) -> None:
    spans = sorted((lid, s, e) for lid, s, e in task.mine if s is not None and e is not None)
    for label_id, start, end in sorted(spans, key=lambda p: p[1]):
        text = f"{task.label(label_id).name} · tokens {start}–{end - 1}" if end - start > 1 \
            else f"{task.label(label_id).name} · token {start}"
        st.button(escape_markdown(text), icon=":material/close:", type="tertiary", help="Remove this span",
                  key=f"labeling.unspan.{task.id}.{label_id}.{start}.{end}", on_click=on_action,
                  args=(Action("unspan", task.id, label_id, (start, end)),))


def _describe(task: TaskState, s: Suggestion) -> str:
    where = ""
    if s.token_start is not None and s.token_end is not None:
        where = f" token {s.token_start}" if s.token_end - s.token_start == 1 \
            else f" tokens {s.token_start}–{s.token_end - 1}"
    conf = f" · {s.confidence:.2f}" if s.confidence is not None else ""
    return f"{escape_markdown(s.name)}: **{escape_markdown(s.label)}**{where}{conf}"


def _suggestions(task: TaskState, *, focus: bool, on_action: OnAction) -> None:
    if not task.suggestions:
        return
    ws = [s for s in task.suggestions if s.source == SourceType.WEAK_SUPERVISION.value]
    others = [s for s in task.suggestions if s.source != SourceType.WEAK_SUPERVISION.value]
    lines = [_describe(task, s) for s in ws] + [_describe(task, s) for s in others[:8]]
    if len(others) > 8:
        lines.append(f"… and {len(others) - 8} more heuristics")
    st.caption("Suggestions  \n" + "  \n".join(lines))
    st.button("Accept suggestion", icon=":material/done_all:", key=f"labeling.accept.{task.id}",
              shortcut=ACCEPT if focus else None, on_click=on_action, args=(Action("accept", task.id),))
