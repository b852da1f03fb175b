"""Bulk actions on the Data page's filtered set, behind a confirmation dialog that shows the count.

The dialog passes the count the user confirmed to core as ``expected_count``: when the filter
matches a different number of records by the time the action runs (a teammate labeled meanwhile),
core refuses and nothing changes. Each action is one transaction. Owns the ``data.bulk.*`` keys.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from sqlmodel import Session

from core.browse import FilterChoices
from core.bulk import BulkResult, accept_weak_supervision, add_to_slice, assign_label, mark_gold
from core.errors import LoupeError
from core.filters import Filter
from core.labeling import run_write
from ui.feedback import flash, show_error
from ui.labeling_state import ANNOTATOR_KEY
from ui.resources import engine
from ui.text import escape_markdown

OPEN_KEY = "data.bulk.open"
ASSIGN, ACCEPT, GOLD, SLICE = ("Assign a manual label", "Accept weak supervision as manual labels",
                               "Mark manual labels as gold", "Add to a static slice")
AGREED = "(where annotators agree)"


def _open(filter_json: str, count: int) -> None:
    # The count shown when the dialog opens is the one confirmed, even when the page reruns meanwhile.
    st.session_state[OPEN_KEY] = (filter_json, count)
    st.session_state["data.bulk.sure"] = False  # every action is confirmed anew


def _close() -> None:
    st.session_state[OPEN_KEY] = None


def bulk_button(project_id: int, choices: FilterChoices, flt: Filter, total: int) -> None:
    """The button that opens the dialog for the records the grid's filter matches."""
    st.button(f"Bulk action on {total:,} record{'s' if total != 1 else ''}…", key="data.bulk.button",
              on_click=_open, args=(flt.to_json(), total), disabled=not total, icon=":material/done_all:",
              help="Label, accept weak supervision, mark gold or add to a slice: every record the filter matches.")
    opened = st.session_state.get(OPEN_KEY)
    if opened and opened[0] == flt.to_json():  # a dialog for another filter is not reopened
        bulk_dialog(project_id, choices, flt, opened[1], total)


@st.dialog("Bulk action", width="large", on_dismiss=_close)
def bulk_dialog(project_id: int, choices: FilterChoices, flt: Filter, total: int, now: int) -> None:
    """Choose an action and its options; the confirm button names the count it will touch.

    ``total`` is the count shown when the dialog opened (the one confirmed), ``now`` the current one.
    """
    described = "; ".join(flt.describe()) or "all records of the project"
    st.markdown(f"**{total:,} record{'s' if total != 1 else ''}** match: {escape_markdown(described)}")
    if now != total:
        st.warning(f"The filter now matches {now:,} records, not {total:,} as when this dialog opened: someone "
                   "changed the data. Close it and look at the records again.", icon=":material/warning:")
    actions = [ASSIGN, ACCEPT, GOLD, SLICE] if choices.tasks else [SLICE]
    action = st.radio("Action", actions, key="data.bulk.action")
    common = {"project_id": project_id, "flt": flt, "expected_count": total}
    run: Callable[[Session], BulkResult]
    if action == SLICE:
        statics = [n for n, kind in choices.slices if kind == "static"]
        slice_name = st.selectbox("Slice (pick one, or type a new name)", statics, index=None,
                                  accept_new_options=True, key="data.bulk.slice") or ""
        verb = f"Add {total:,} records to “{slice_name}”"
        run = lambda s: add_to_slice(s, slice_name=slice_name, **common)  # noqa: E731
    else:
        tasks = [t for t in choices.tasks if action != ASSIGN or t.kind != "extraction"]
        if not tasks:
            st.info("Spans cannot be assigned in bulk: accept weak supervision instead.", icon=":material/info:")
            return
        names = [t.name for t in tasks]
        task = tasks[names.index(st.selectbox("Task", names, key="data.bulk.task"))]
        if action == GOLD:
            who = st.selectbox("Whose answer is gold", [AGREED, *choices.annotators], key="data.bulk.gold_by",
                               help="Where annotators agree every answer is starred; otherwise choose whose answer.")
            verb = f"Mark the manual labels of {total:,} records as gold"
            run = lambda s: mark_gold(s, task=task.name, annotator=None if who == AGREED else who,  # noqa: E731
                                      **common)
        else:
            annotator = st.text_input("As annotator", value=st.session_state.get(ANNOTATOR_KEY, ""),
                                      max_chars=100, key="data.bulk.annotator",
                                      help="The labels are stored as this annotator's.")
            if action == ASSIGN:
                label = st.selectbox("Label", list(task.labels), key=f"data.bulk.label.{task.name}")
                verb = f"Label {total:,} records “{label}”"
                run = lambda s: assign_label(s, task=task.name, label=label, annotator=annotator,  # noqa: E731
                                             **common)
            else:
                verb = f"Accept weak supervision for {total:,} records"
                run = lambda s: accept_weak_supervision(s, task=task.name, annotator=annotator,  # noqa: E731
                                                        **common)
    sure = st.checkbox(f"I reviewed the filter: change up to {total:,} records", key="data.bulk.sure")
    if st.button(escape_markdown(verb), type="primary", disabled=not sure, key="data.bulk.run",
                 icon=":material/done_all:"):
        try:
            result = run_write(engine(), run)
        except LoupeError as e:
            show_error(e)
            return
        _close()
        flash(result.summary())
        st.rerun()
