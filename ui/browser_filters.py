"""The data browser's filter: presets, search, sort, the condition builder and the active conditions.

The filter is a :class:`core.filters.Filter` kept in ``st.session_state[FILTER_KEY]`` (UI state: what
the user is looking at). Conditions combine with AND; the values of one condition with OR. This module
owns every ``data.filter``, ``data.add.*``, ``data.preset*``, ``data.chip.*``, search and sort key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import streamlit as st

from core.browse import FilterChoices, TaskChoice
from core.errors import LoupeError
from core.filters import (
    ANY_ATTRIBUTE,
    PRESETS,
    AnnotatorFilter,
    AttributeFilter,
    AttributeOp,
    CommentFilter,
    ConfidenceFilter,
    Filter,
    HeuristicFilter,
    HeuristicsDisagreeFilter,
    LabelMatch,
    ManualLabelFilter,
    ManualWeakMismatchFilter,
    SliceFilter,
    Sort,
    SortBy,
    WeakLabelFilter,
    preset,
)
from ui import browser_cached as cached
from ui.feedback import show_error
from ui.text import escape_markdown

FILTER_KEY = "data.filter"
SEARCH_KEY = "data.search"
SORT_KEY, DESCENDING_KEY, SEED_KEY = "data.sort", "data.descending", "data.seed"
IMPORT_ORDER, RANDOM_ORDER, ANY = "(import order)", "(random, seeded)", "(any attribute)"
OPS = {
    "equals": AttributeOp.EQUALS, "contains": AttributeOp.CONTAINS, "begins with": AttributeOp.BEGINS_WITH,
    "ends with": AttributeOp.ENDS_WITH, "in list": AttributeOp.IN_LIST, "between": AttributeOp.BETWEEN,
    "greater than": AttributeOp.GREATER, "at least": AttributeOp.GREATER_EQUAL, "less than": AttributeOp.LESS,
    "at most": AttributeOp.LESS_EQUAL, "is empty": AttributeOp.IS_EMPTY,
}  # fmt: skip
ONE_BOUND = {AttributeOp.GREATER, AttributeOp.GREATER_EQUAL, AttributeOp.LESS, AttributeOp.LESS_EQUAL}
MATCHES = {"is one of": LabelMatch.ANY_OF, "has any label": LabelMatch.HAS_ANY, "has no label": LabelMatch.HAS_NONE}
NUMERIC = {"INTEGER", "FLOAT"}


def current_filter() -> Filter:
    """The filter the user built (search excluded)."""
    return st.session_state.get(FILTER_KEY) or Filter()


def set_filter(flt: Filter) -> None:
    st.session_state[FILTER_KEY] = flt


def with_search(flt: Filter, search: str) -> Filter:
    """``flt`` and "any attribute or the record id contains ``search``": what the grid shows."""
    return flt.add(AttributeFilter(ANY_ATTRIBUTE, AttributeOp.CONTAINS, (search,))) if search else flt


# --- search, sort, presets ----------------------------------------------------------------------------------------


def search_box() -> str:
    return st.text_input("Search", placeholder="Text or digits in any attribute, or a record id",
                         key=SEARCH_KEY).strip()


def _sort_options(choices: FilterChoices) -> dict[str, Sort]:
    options = {IMPORT_ORDER: Sort()}
    options.update({name: Sort(SortBy.ATTRIBUTE, attribute=name) for name in choices.attributes})
    options.update({f"confidence · {t.name}": Sort(SortBy.CONFIDENCE, task=t.name) for t in choices.tasks})
    options[RANDOM_ORDER] = Sort(SortBy.RANDOM)
    return options


def _sort_label(order: Sort) -> str:
    if order.by is SortBy.ATTRIBUTE:
        return str(order.attribute)
    if order.by is SortBy.CONFIDENCE:
        return f"confidence · {order.task}"
    return RANDOM_ORDER if order.by is SortBy.RANDOM else IMPORT_ORDER


def sort_controls(choices: FilterChoices, sort_col: Any, order_col: Any) -> Sort:
    """"Sort by" (any attribute, a task's confidence, random) and its direction or seed."""
    options = _sort_options(choices)
    if st.session_state.get(SORT_KEY) not in options:  # another project, or a deleted task
        st.session_state.pop(SORT_KEY, None)
    order = options[sort_col.selectbox("Sort by", list(options), key=SORT_KEY)]
    if order.by is SortBy.RANDOM:
        seed = order_col.number_input("Seed", min_value=0, step=1, key=SEED_KEY,
                                      help="The same seed gives the same order, on every page and every visit.")
        return replace(order, seed=int(seed))
    return replace(order, descending=order_col.toggle("Descending", key=DESCENDING_KEY))


def _apply_preset(name: str, task: str) -> None:
    flt, order = preset(name, task=task)
    set_filter(flt)
    st.session_state[SEARCH_KEY] = ""
    st.session_state[SORT_KEY] = _sort_label(order)
    st.session_state[DESCENDING_KEY] = order.descending
    st.session_state[SEED_KEY] = order.seed


def presets(choices: FilterChoices) -> None:
    """One button per common question; each replaces the filter and the order."""
    if not choices.tasks:
        return
    with st.container(horizontal=True, vertical_alignment="center"):
        names = [t.name for t in choices.tasks]
        task = names[0]
        if len(names) > 1:
            task = st.selectbox("Preset task", names, key="data.preset_task", label_visibility="collapsed", width=180)
        for p in PRESETS.values():
            st.button(p.title, key=f"data.preset.{p.name}", on_click=_apply_preset, args=(p.name, task),
                      icon=":material/bolt:", help=f"Replace the filter and the order (task {task}).")


# --- active conditions --------------------------------------------------------------------------------------------


def _remove(position: int) -> None:
    conditions = list(current_filter().conditions)
    del conditions[position]
    set_filter(Filter(tuple(conditions)))


def active_conditions() -> None:
    """The filter's conditions as chips (click one to remove it), AND between them."""
    flt = current_filter()
    if not flt:
        return
    with st.container(horizontal=True, vertical_alignment="center", gap="small"):
        st.caption("All of:", help="Every condition must hold (AND); the values within one condition are "
                                   "alternatives (OR).", width="content")
        for i, text in enumerate(flt.describe()):
            st.button(escape_markdown(text), key=f"data.chip.{i}", icon=":material/close:", on_click=_remove,
                      args=(i,), help="Remove this condition")
        st.button("Clear filter", key="data.chip.clear", on_click=set_filter, args=(Filter(),), type="tertiary",
                  icon=":material/filter_alt_off:")


# --- the condition builder ----------------------------------------------------------------------------------------


def _task(choices: FilterChoices, column: Any = st) -> TaskChoice:
    names = [t.name for t in choices.tasks]
    picked = column.selectbox("Task", names, key="data.add.task")
    return choices.task(picked) or choices.tasks[0]


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _attribute(choices: FilterChoices, values_of: Callable[[str], list[str]]) -> AttributeFilter:
    first, second, third = st.columns([2, 2, 3], vertical_alignment="bottom")
    picked = first.selectbox("Attribute", [ANY, *choices.attributes], key="data.add.attribute")
    name = ANY_ATTRIBUTE if picked == ANY else picked
    dtype = choices.attributes.get(name, "TEXT")
    ops = ["equals"] if dtype == "BOOLEAN" else list(OPS)
    op = OPS[second.selectbox("Operator", ops, key=f"data.add.op.{dtype}")]
    numeric = dtype in NUMERIC or (name == ANY_ATTRIBUTE and (op in ONE_BOUND or op is AttributeOp.BETWEEN))
    kind = "n" if numeric else "t"

    def bound(label: str, key: str, column: Any) -> Any:
        if numeric:
            return _number(column.number_input(label, value=None, key=f"data.add.{key}.n", placeholder="a number"))
        return column.text_input(label, key=f"data.add.{key}.t") or None

    if op is AttributeOp.IS_EMPTY:
        values: tuple[Any, ...] = ()
    elif op is AttributeOp.BETWEEN:
        low_col, high_col = third.columns(2)
        values = tuple(v for v in (bound("From", "low", low_col), bound("To", "high", high_col)) if v is not None)
    elif op in ONE_BOUND:
        values = tuple(v for v in (bound("Value", "bound", third),) if v is not None)
    elif dtype == "BOOLEAN":
        values = (third.selectbox("Value", ["true", "false"], key="data.add.bool"),)
    else:
        options = values_of(name) if dtype == "CATEGORY" else []
        values = tuple(third.multiselect(
            "Values (any of them: OR)", options, accept_new_options=True, key=f"data.add.values.{kind}.{name}",
            placeholder="Pick or type a value, then Enter"))
    text_op = op not in ONE_BOUND and op not in (AttributeOp.BETWEEN, AttributeOp.IS_EMPTY) and dtype != "BOOLEAN"
    case = text_op and st.toggle("Case-sensitive", key="data.add.case")
    return AttributeFilter(name, op, values, case_sensitive=bool(case))


def _labels(choices: FilterChoices, *, manual: bool) -> ManualLabelFilter | WeakLabelFilter:
    first, second, third = st.columns([2, 2, 3], vertical_alignment="bottom")
    task = _task(choices, first)
    match = MATCHES[second.selectbox("Match", list(MATCHES), key="data.add.match")]
    labels = ()
    if match is LabelMatch.ANY_OF:
        labels = tuple(third.multiselect("Labels (any of them: OR)", task.labels, key=f"data.add.labels.{task.name}"))
    if not manual:
        return WeakLabelFilter(task.name, labels, match)
    valid_only = task.kind != "classification" or st.toggle(
        "Valid label only", value=True, key="data.add.valid",
        help="The label annotators agree on, or the gold-starred one. Off: a label any annotator gave.")
    return ManualLabelFilter(task.name, labels, match, valid_only=bool(valid_only))


def _confidence(choices: FilterChoices) -> ConfidenceFilter:
    first, second = st.columns([2, 5], vertical_alignment="bottom")
    task = _task(choices, first)
    low, high = second.slider("Weak-supervision confidence between", 0.0, 1.0, (0.0, 0.6), step=0.05,
                              key="data.add.range")
    return ConfidenceFilter(task.name, minimum=low if low > 0 else None, maximum=high if high < 1 else None)


def _heuristic(choices: FilterChoices) -> HeuristicFilter:
    first, second, third = st.columns([2, 3, 2], vertical_alignment="bottom")
    task = _task(choices, first)
    names = second.multiselect("Heuristics (any of them: OR; none = any heuristic)", task.heuristics,
                               accept_new_options=True, key=f"data.add.heuristics.{task.name}")
    label = third.selectbox("With label", ["(any label)", *task.labels], key=f"data.add.hlabel.{task.name}")
    return HeuristicFilter(task.name, tuple(names), None if label == "(any label)" else label)


def _annotator(choices: FilterChoices) -> AnnotatorFilter:
    first, second = st.columns([5, 2], vertical_alignment="bottom")
    who = first.multiselect("Annotators (any of them: OR)", choices.annotators, key="data.add.annotators")
    task = second.selectbox("For task", ["(any task)", *(t.name for t in choices.tasks)], key="data.add.anytask")
    return AnnotatorFilter(tuple(who), None if task == "(any task)" else task)


def _builders(choices: FilterChoices, values_of: Callable[[str], list[str]]) -> dict[str, Callable[[], Any]]:
    builders: dict[str, Callable[[], Any]] = {"Attribute": lambda: _attribute(choices, values_of)}
    if choices.tasks:
        builders.update({
            "Manual label": lambda: _labels(choices, manual=True),
            "Weak-supervision label": lambda: _labels(choices, manual=False),
            "Confidence": lambda: _confidence(choices),
            "Hit by heuristic": lambda: _heuristic(choices),
            "Heuristics disagree": lambda: HeuristicsDisagreeFilter(_task(choices).name),
            "Manual ≠ weak supervision": lambda: ManualWeakMismatchFilter(_task(choices).name),
            "Annotator": lambda: _annotator(choices),
        })
    builders["Has comment"] = CommentFilter
    if choices.slices:
        builders["In slice"] = lambda: SliceFilter(st.selectbox("Slice", [n for n, _ in choices.slices],
                                                                key="data.add.slice"))
    return builders


def condition_builder(database_url: str, project_id: int, revision: int, choices: FilterChoices) -> None:
    """An expander to add one condition to the filter; names and values are checked by core first."""
    with st.expander("Add a filter condition", icon=":material/filter_alt:"):
        builders = _builders(choices, lambda name: cached.values(database_url, project_id, revision, name))
        kind = st.segmented_control("Condition", list(builders), default="Attribute", key="data.add.kind") \
            or "Attribute"
        condition = builders[kind]()
        negate = st.toggle("Negate (NOT)", key="data.add.negate", help="Keep the records this condition rejects.")
        if st.button("Add condition", type="primary", icon=":material/add:", key="data.add.submit"):
            new = current_filter().add(replace(condition, negate=negate))
            try:
                cached.check_filter(database_url, project_id, new)
            except LoupeError as e:
                show_error(e)
            else:
                set_filter(new)
                st.rerun()
