"""The labeling-function editor: write or edit code, run it on one record, save, run on all."""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.embedding_heuristics import retrain
from core.errors import LoupeError
from core.heuristics import (
    TOKENS_KEY,
    add_from_bytes,
    add_labeling_functions,
    delete_heuristic,
    preview_code,
    update_heuristic,
)
from core.store import session_scope
from core.store.heuristics import HeuristicKind
from core.store.models import TaskKind
from ui import heuristics_data as data
from ui import heuristics_learners as learners
from ui.feedback import flash, show_error
from ui.heuristics_data import HeuristicInfo, ProjectBasics, TaskInfo
from ui.heuristics_runs import run_all, write
from ui.resources import database_url, engine
from ui.text import escape_markdown

NEW = 0
PICK_NEXT = "heuristics.pick_next"
# Streamlit gives a keyed widget's container the class st-key-<key>: the code areas get a monospace font.
MONOSPACE = """<style>
[class*="st-key-heuristics-code"] textarea {font-family: "Source Code Pro", ui-monospace, monospace;
  font-size: 0.9rem; line-height: 1.4;}
</style>"""


def template(task: TaskInfo, basics: ProjectBasics) -> str:
    """A working starting point for the task's kind, on its text attribute."""
    texts = [name for name, kind in basics.attributes if kind == "TEXT"] or [n for n, _ in basics.attributes]
    texts = texts or ["text"]
    attribute = task.attribute or texts[0]
    label = task.labels[0] if task.labels else "LABEL"
    if task.kind == TaskKind.EXTRACTION:
        return (
            "def capitalized_words(record):\n"
            f'    """Every capitalized token of {attribute} is a {label}."""\n'
            f'    for i, token in enumerate(record["{TOKENS_KEY}"]):\n'
            "        if token.istitle():\n"
            f'            yield "{label}", i, i + 1\n'
        )
    return (
        "def my_heuristic(record):\n"
        f'    """{label} when the text mentions a keyword."""\n'
        f'    if "keyword" in str(record["{attribute}"]).lower():\n'
        f'        return "{label}"\n'
        "    return None\n"
    )


def _help(task: TaskInfo, basics: ProjectBasics, lists: list[str]) -> None:
    st.markdown("**The record**")
    lines = [f'record["{name}"]  # {kind}' for name, kind in basics.attributes]
    if task.kind == TaskKind.EXTRACTION:
        lines.append(f'record["{TOKENS_KEY}"]  # tokens of {task.attribute}')
    st.code("\n".join(lines), language="python")
    if task.kind == TaskKind.EXTRACTION:
        st.caption("Yield `(label, start, end)` over token positions, end exclusive.")
    else:
        st.caption("Return a label name, or `None` to abstain.")
    st.caption("Labels: " + ", ".join(f"`{escape_markdown(x)}`" for x in task.labels))
    if lists:
        st.caption("Lookup lists (lists of terms, by name): " + ", ".join(f"`{x}`" for x in lists))
    st.caption("Every top-level `def` not starting with `_` is one heuristic named after it.")
    if basics.example:
        with st.expander(f"Record {basics.first_record}"):
            st.json(dict(basics.example), expanded=True)


def _preview(project_id: int, task_id: int, code: str, record_key: str) -> None:
    try:
        with st.spinner("Running on one record…"):
            results = preview_code(engine(), project_id=project_id, task_id=task_id, code=code, record_key=record_key)
    except LoupeError as e:
        show_error(e)
        return
    for result in results:
        name = escape_markdown(result.name)
        if result.state != "finished":
            st.error(f"**{name}** {result.state}: {escape_markdown(result.error)}", icon=":material/error:")
        elif result.output in (None, []):
            st.info(f"**{name}** abstains on record {escape_markdown(record_key)}.", icon=":material/remove:")
        elif isinstance(result.output, list) and all(isinstance(x, str) for x in result.output):  # multi-label
            st.success(f"**{name}** → {escape_markdown(', '.join(result.output))}", icon=":material/check:")
        elif isinstance(result.output, list):
            spans = "; ".join(f"{escape_markdown(lab)} {s}:{e} “{escape_markdown(text)}”"
                              for lab, s, e, text in result.output)
            st.success(f"**{name}** → {spans}", icon=":material/check:")
        else:
            st.success(f"**{name}** → {escape_markdown(result.output)}", icon=":material/check:")
        if result.invalid_labels:
            st.warning(f"Not labels of this task (not stored): {escape_markdown(', '.join(result.invalid_labels))}")
        if result.logs.strip():
            st.code(result.logs[-3000:], language="text")


def load_file(project_id: int, task: TaskInfo) -> None:
    """Add one heuristic per public function of an uploaded .py file, as ``loupe heuristics add --file``."""
    with st.expander("Load labeling functions from a .py file", icon=":material/upload_file:"):
        st.caption("Every top-level `def` not starting with `_` becomes one heuristic named after it; the "
                   "functions may use the file's imports, constants and `_` helpers.")
        upload = st.file_uploader("Python file", type=["py"], key=f"heuristics.file.{task.id}")
        replace = st.checkbox("Replace the code of heuristics of the same name",
                              key=f"heuristics.file.replace.{task.id}")
        if upload is not None and st.button("Add heuristics from file", icon=":material/add:",
                                            key=f"heuristics.file.add.{task.id}"):
            write(lambda s: add_from_bytes(s, project_id=project_id, task_id=task.id, filename=upload.name,
                                           data=upload.getvalue(), replace=replace),
                  lambda added: f"Added {len(added)} heuristic(s) from {upload.name}: "
                                + ", ".join(h.name for h in added) + ". Run them to get their votes.")


def _lookup_settings(info: HeuristicInfo) -> None:
    settings = dict(info.settings)
    st.caption(escape_markdown(info.description))
    left, right = st.columns(2)
    case = left.toggle("Case-sensitive", value=bool(settings.get("case_sensitive")), key=f"heuristics.case.{info.id}")
    whole = right.toggle("Whole tokens only", value=bool(settings.get("whole_tokens", True)),
                         key=f"heuristics.whole.{info.id}")
    if (case, whole) != (bool(settings.get("case_sensitive")), bool(settings.get("whole_tokens", True))):
        write(lambda s: update_heuristic(s, heuristic_id=info.id, settings={"case_sensitive": case,
                                                                         "whole_tokens": whole}),
              f"Saved the settings of {info.name}; run it again to update its votes.")


def editor(project_id: int, revision: int, task: TaskInfo, basics: ProjectBasics, frame: Any, lists: list[str]) -> None:
    """Pick a heuristic (or a new labeling function) and work on it."""
    st.html(MONOSPACE)
    names = dict(zip(frame["id"], frame["name"] + " · " + frame["kind"].str.replace("_", " "), strict=True))
    if st.session_state.get(PICK_NEXT) in names:
        st.session_state[f"heuristics.pick.{task.id}"] = st.session_state.pop(PICK_NEXT)
    picked = st.selectbox("Heuristic", [NEW, *names], format_func=lambda i: names.get(i, "New labeling function"),
                          key=f"heuristics.pick.{task.id}")
    info = data.heuristic(database_url(), project_id, revision, picked) if picked else None
    code_col, help_col = st.columns([2, 1], gap="large")
    if info is None or info.kind == HeuristicKind.LABELING_FUNCTION:
        with help_col:
            _help(task, basics, lists)
    with code_col:
        if info is not None:
            enabled = st.toggle("Enabled: takes part in weak supervision", value=info.enabled,
                                key=f"heuristics.enabled.{info.id}")
            if enabled != info.enabled:
                write(lambda s: update_heuristic(s, heuristic_id=info.id, enabled=enabled),
                      f"{info.name} {'takes part' if enabled else 'no longer takes part'} in weak supervision.")
            if info.last_run_state and info.last_run_state != "finished":
                st.error(f"Last run {info.last_run_state}: {escape_markdown(info.last_run_error)}",
                         icon=":material/error:")
        if info is not None and info.kind != HeuristicKind.LABELING_FUNCTION:
            if info.kind == HeuristicKind.LOOKUP_LIST:
                _lookup_settings(info)
            else:
                st.caption(escape_markdown(info.description or "Votes computed elsewhere."))
            buttons = st.columns(2)
            if info.kind == HeuristicKind.LOOKUP_LIST and buttons[0].button("Run on all records", type="primary",
                                                                            key="heuristics.lookup.run"):
                run_all(project_id, task.id, [info.id])
            if dict(info.settings).get("learner") and buttons[0].button(
                    "Retrain on today's labels", type="primary", key="heuristics.learner.retrain",
                    disabled=learners.busy(project_id, task.id)):
                learners.start(project_id, task.id, f"Retraining {info.name}…",
                               lambda s: retrain(s, heuristic_id=info.id))
            if buttons[1].button("Delete", icon=":material/delete:", key="heuristics.lookup.delete"):
                write(lambda s: delete_heuristic(s, heuristic_id=info.id), f"Deleted {info.name}.")
            return
        suffix = f"{task.id}-{picked}"
        description = st.text_input("Description (default: the docstring)", value=info.description if info else "",
                                    key=f"heuristics.description.{suffix}")
        code = st.text_area("Code", value=info.code if info else template(task, basics), height=380,
                            key=f"heuristics-code-{suffix}")
        record_key = st.text_input("Record id for “Run on this record”", value=basics.first_record or "",
                                   key="heuristics.preview.record")
        with st.container(horizontal=True):
            preview = st.button("Run on this record", icon=":material/play_arrow:", key="heuristics.preview")
            save = st.button("Save" if info else "Add", icon=":material/save:", key="heuristics.save")
            save_run = st.button("Save and run on all", type="primary", icon=":material/fast_forward:",
                                 key="heuristics.save_run")
            remove = info is not None and st.button("Delete", icon=":material/delete:", key="heuristics.delete")
    if preview:
        _preview(project_id, task.id, code, record_key)
    if remove and info is not None:
        write(lambda s: delete_heuristic(s, heuristic_id=info.id), f"Deleted {info.name}.")
    if save or save_run:
        _save(project_id, task, info, code, description, run=save_run)


def _save(project_id: int, task: TaskInfo, info: HeuristicInfo | None, code: str, description: str, *,
          run: bool) -> None:
    try:
        with session_scope(engine()) as session:
            if info is None:
                saved = add_labeling_functions(session, project_id=project_id, task_id=task.id, source=code,
                                               description=description)
                ids = [h.id or 0 for h in saved]
            else:
                saved = [update_heuristic(session, heuristic_id=info.id, code=code, description=description)]
                ids = [info.id]
            names = ", ".join(h.name for h in saved)
    except LoupeError as e:
        show_error(e)
        return
    if info is None:
        st.session_state[PICK_NEXT] = ids[0]  # the selectbox exists already: select it on the next run
    if run:
        run_all(project_id, task.id, ids)
        return
    flash(f"Saved {names}.")
    st.rerun()
