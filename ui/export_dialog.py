"""Download records: the one-click default export and the export dialog.

:func:`render_export_buttons` goes in a project's header. The dialog opens from
a session-state flag (so ``AppTest`` can drive it) and closes on dismiss. Files
are written when the user clicks *Download* (deferred download data), never on
every rerun; exports without a password are cached by project revision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

import streamlit as st

from core.errors import LoupeError
from core.exporters import (
    DEFAULT_SOURCES,
    FORMATS,
    ExportOptions,
    LabelboxFilters,
    LabelboxParams,
    RowSpec,
    available_sources,
    check_export,
    export_bytes,
    export_filename,
    labelstudio_config,
    mime_type,
    parse_range,
)
from core.exporters.labelbox import WORKFLOW_STATUSES
from core.store import make_engine, session_scope
from core.store.projects import get_project
from core.store.tasks import list_attributes, list_tasks
from ui.feedback import show_error
from ui.project import load_refs
from ui.resources import database_url, engine

OPEN = "export.dialog_open"
FORMAT_LABELS = {
    "refinery": "refinery JSON", "csv": "refinery CSV", "xlsx": "refinery XLSX (Excel)",
    "labelstudio": "Label Studio JSON", "labelbox": "Labelbox NDJSON (Export v2)",
    "conll": "CoNLL (extraction tasks)", "spacy": "spaCy DocBin (extraction tasks)",
}  # fmt: skip
ROW_LABELS = {
    "all": "All records", "labeled": "Labeled only (a valid manual label)", "filter": "The current filter",
    "slice": "A saved slice", "min-confidence": "Weak supervision confidence at least …", "gold": "Only gold",
}  # fmt: skip
DEFAULT_HELP = "All attributes and tasks, manual and weak-supervision labels with confidence, as refinery JSON."


@dataclass(frozen=True)
class Choices:
    """What the dialog offers for one project."""

    attributes: list[str]
    tasks: list[str]
    sources: list[str]
    slices: list[str]


@st.cache_data(show_spinner=False, max_entries=32)
def _choices(url: str, project: str, revision: int) -> Choices:
    with session_scope(make_engine(url)) as session:
        pid = get_project(session, project).id or 0
        try:
            from core.store.slices import list_slices

            slices = [s.name for s in list_slices(session, pid)]
        except ImportError:
            slices = []
        return Choices(
            attributes=[a.name for a in list_attributes(session, pid)],
            tasks=[t.name for t in list_tasks(session, pid)],
            sources=available_sources(session, pid),
            slices=slices,
        )


@st.cache_data(show_spinner=False, max_entries=4)
def _cached_export(url: str, project: str, revision: int, options: ExportOptions) -> bytes:
    return export_bytes(make_engine(url), project=project, options=options)[1]


def _revision(project: str) -> int:
    return next((r.revision for r in load_refs() if r.name == project), 0)


def _deferred(project: str, options: ExportOptions) -> Callable[[], bytes]:
    """Download data made on click: the export's bytes (cached unless password-protected)."""
    url, revision = database_url(), _revision(project)
    store = engine()

    def make() -> bytes:
        if options.password:
            # Never keep a password (it is part of the options) in a cache.
            return export_bytes(store, project=project, options=options)[1]
        return _cached_export(url, project, revision, options)

    return make


def _open() -> None:
    st.session_state[OPEN] = True


def _close() -> None:
    st.session_state[OPEN] = False


def render_export_buttons(
    project_name: str, *, filter_json: str | None = None, filter_keys: Sequence[str] | None = None
) -> None:
    """The project header's export controls: *Download records* (default preset, one click) and *Export…*.

    Parameters
    ----------
    project_name
        The project to export.
    filter_json, filter_keys
        The Data page's current filter (:meth:`core.filters.Filter.to_json`) or the record keys it shows;
        with either, the dialog offers "the current filter" as rows.
    """
    default = ExportOptions()
    with st.container(horizontal=True):
        st.download_button(
            "Download records", data=_deferred(project_name, default), file_name=export_filename(project_name, default),
            mime=mime_type(default), on_click="ignore", icon=":material/download:", key="export.default",
            help=DEFAULT_HELP,
        )
        st.button("Export…", key="export.open", on_click=_open, icon=":material/tune:",
                  help="Choose format, columns, sources, rows and a password")
    if st.session_state.get(OPEN):
        export_dialog(project_name, filter_json, tuple(filter_keys) if filter_keys is not None else None)


@st.dialog("Export records", width="large", on_dismiss=_close)
def export_dialog(project_name: str, filter_json: str | None, filter_keys: tuple[str, ...] | None) -> None:
    """Preset or custom columns, rows, format, password; then download."""
    choices = _choices(database_url(), project_name, _revision(project_name))
    preset = st.radio("Preset", ["default", "custom"], horizontal=True, key="export.preset",
                      captions=[DEFAULT_HELP, "Pick attributes, tasks, sources and rows."])
    fmt = st.selectbox("Format", list(FORMATS), format_func=FORMAT_LABELS.__getitem__, key="export.format")
    has_filter = filter_json is not None or filter_keys is not None
    try:
        options = ExportOptions(format=fmt)
        if preset == "custom":
            options = _custom(options, choices, has_filter=has_filter, filter_json=filter_json,
                              filter_keys=filter_keys)
        password = st.text_input("Password (optional)", type="password", key="export.password",
                                 help="The file is put in a zip encrypted with AES-256; importing it asks for it.")
        options = replace(options, password=password or None)
        check_export(engine(), project=project_name, options=options)
    except LoupeError as e:
        show_error(e)
        return
    file_name = export_filename(project_name, options)
    st.caption(f"File: `{file_name}`")
    st.download_button("Download", data=_deferred(project_name, options), file_name=file_name,
                       mime=mime_type(options), on_click="ignore", type="primary", icon=":material/download:",
                       key="export.download")
    if fmt == "labelstudio":
        try:
            config = labelstudio_config(engine(), project=project_name, options=options)
        except LoupeError as e:
            show_error(e)
        else:
            st.download_button("Labeling config (XML)", data=config, mime="application/xml", on_click="ignore",
                               file_name=export_filename(project_name, replace(options, password=None))
                               .replace(".json", "_config.xml"), key="export.config")


def _custom(options: ExportOptions, choices: Choices, *, has_filter: bool, filter_json: str | None,
            filter_keys: tuple[str, ...] | None) -> ExportOptions:
    attributes = st.multiselect("Attributes", choices.attributes, default=choices.attributes, key="export.attributes")
    tasks = st.multiselect("Tasks", choices.tasks, default=choices.tasks, key="export.tasks")
    sources = st.multiselect("Sources", choices.sources, default=list(DEFAULT_SOURCES), key="export.sources",
                             help="MANUAL: the valid manual label. HEURISTIC:name and MODEL:name: one source each.")
    confidence = st.checkbox("Confidence columns", value=True, key="export.confidence")
    kinds = [k for k in ROW_LABELS if k != "filter" or has_filter]
    if not choices.slices:
        kinds.remove("slice")
    kind = st.selectbox("Rows", kinds, format_func=ROW_LABELS.__getitem__, key="export.rows")
    rows = RowSpec(kind)
    if kind == "slice":
        rows = RowSpec("slice", st.selectbox("Slice", choices.slices, key="export.slice"))
    elif kind == "min-confidence":
        rows = RowSpec("min-confidence", float(st.slider("Threshold", 0.0, 1.0, 0.8, 0.05, key="export.threshold")))
    options = replace(options, attributes=tuple(attributes), tasks=tuple(tasks), sources=tuple(sources),
                      confidence=confidence, rows=rows,
                      filter_json=filter_json if kind == "filter" else None,
                      record_keys=filter_keys if kind == "filter" and filter_json is None else None)
    if options.format == "labelbox":
        options = _labelbox(options)
    return options


def _labelbox(options: ExportOptions) -> ExportOptions:
    with st.expander("Labelbox export params and filters"):
        blocks = LabelboxParams.__dataclass_fields__
        included = {name: st.checkbox(name, value=True, key=f"export.lb.{name}") for name in blocks}
        activity = st.date_input("Last activity between", value=[], key="export.lb.activity")
        created = st.date_input("Label created between", value=[], key="export.lb.created")
        status = st.selectbox("Workflow status", ["any", *WORKFLOW_STATUSES], key="export.lb.status")
    return replace(options, labelbox_params=LabelboxParams(**included), labelbox_filters=LabelboxFilters(
        last_activity_at=_range(activity), label_created_at=_range(created),
        workflow_status=None if status == "any" else status,
    ))


def _range(value: object) -> tuple[datetime | None, datetime | None] | None:
    days = [d for d in (value if isinstance(value, tuple) else (value,)) if isinstance(d, date)]
    if not days:
        return None
    return parse_range(days[0].isoformat(), days[-1].isoformat())
