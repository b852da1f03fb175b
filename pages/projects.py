"""Projects: pick the current project, create one, import a file, load the demo."""

from pathlib import Path

import streamlit as st

from core.demo import DEMO_PROJECT, load_demo
from core.errors import ConflictError, LoupeError
from core.importers import FORMATS, import_file
from core.store import session_scope
from core.store.projects import create_project, validate_project_name
from ui import cached
from ui.export_dialog import render_export_buttons
from ui.feedback import flash, show_error, show_flash
from ui.project import active_project, load_refs
from ui.resources import database_url, engine, set_current_project

PICKER_KEY = "projects.picker"
UPLOAD_ROUND_KEY = "projects.upload_round"  # a new key empties the uploader after an import
UPLOAD_TYPES = ["csv", "tsv", "json", "jsonl", "xlsx", "txt", "zip"]


def _pick() -> None:
    set_current_project(st.session_state[PICKER_KEY])


st.title("Projects")
show_flash()
refs = load_refs()
current = active_project(refs)

if current is None:
    st.info("No projects yet. Load the demo project, create an empty project or import a file below.")
else:
    table = cached.projects_table(database_url(), tuple((r.id, r.revision) for r in refs))
    names = [r.name for r in refs]
    st.session_state[PICKER_KEY] = current.name
    row = table[table["Project"] == current.name].iloc[0]
    picker, records, tasks, manual = st.columns([3, 1, 1, 1], vertical_alignment="bottom", gap="medium")
    picker.selectbox("Current project", names, key=PICKER_KEY, on_change=_pick)
    records.metric("Records", f"{row['Records']:,}")
    tasks.metric("Labeling tasks", f"{row['Tasks']:,}")
    manual.metric("Manual labels", f"{row['Manual labels']:,}")
    render_export_buttons(current.name)  # one click: all attributes and tasks, manual + weak supervision
    counts = {c: st.column_config.NumberColumn(c, format="localized") for c in ("Records", "Tasks", "Manual labels")}
    st.dataframe(table, hide_index=True, width="stretch", column_config=counts)

st.divider()
upload_col, side_col = st.columns([3, 2], gap="large")

with upload_col:
    st.subheader("Import a file")
    round_no = st.session_state.setdefault(UPLOAD_ROUND_KEY, 0)
    upload = st.file_uploader(
        "CSV, TSV, JSON, JSONL, XLSX, TXT (one record per line), or one of them in a ZIP (AES password zips too)",
        type=UPLOAD_TYPES,
        key=f"projects.upload.{round_no}",
    )
    targets = ["The current project", "A new project"] if current else ["A new project"]
    target = st.radio("Import into", targets, horizontal=True)
    new_name = ""
    if target == "A new project":
        suggested = Path(upload.name).stem if upload else ""
        new_name = st.text_input("New project name", value=suggested, max_chars=100)
    fmt_col, key_col, password_col = st.columns(3)
    fmt = fmt_col.selectbox("Format", ["auto", *FORMATS], help="auto: from the file's extension and content.")
    primary_key = key_col.text_input(
        "Primary key (optional)", help="A column whose values identify records: importing again updates them."
    )
    password = password_col.text_input("Zip password (optional)", type="password",
                                       help="For a password-protected ZIP, e.g. a Loupe or refinery export.")
    if st.button("Import", type="primary", disabled=upload is None, icon=":material/upload:"):
        bar = st.progress(0.0, text="Starting the import…")

        def report(fraction: float, message: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=message)

        try:
            if target == "A new project":
                project = validate_project_name(new_name)
                if any(r.name == project for r in refs):
                    raise ConflictError(f"A project named {project!r} exists already; pick it as the current one.")
            else:
                project = current.name if current else ""
            result = import_file(
                engine(),
                project=project,
                data=upload.getvalue() if upload else b"",
                name=upload.name if upload else "upload",
                fmt=fmt,
                primary_key=primary_key.strip() or None,
                progress=report,
                password=password or None,
            )
        except LoupeError as e:
            bar.empty()
            show_error(e)
        else:
            set_current_project(result.project)
            st.session_state[UPLOAD_ROUND_KEY] = round_no + 1
            flash(result.summary())
            st.rerun()

with side_col:
    st.subheader("New empty project")
    with st.form("projects.new", clear_on_submit=True, border=False):
        name = st.text_input("Project name", max_chars=100)
        created = st.form_submit_button("Create project", icon=":material/add:")
    if created:
        try:
            with session_scope(engine()) as session:
                project_name = create_project(session, name=name).name
        except LoupeError as e:
            show_error(e)
        else:
            set_current_project(project_name)
            flash(f"Created the empty project {project_name!r}; import a file into it.")
            st.rerun()

    st.subheader("Demo project")
    st.caption("1956 YouTube comments (UCI YouTube Spam Collection), 10% labeled spam or ham by hand.")
    if st.button("Load demo project", icon=":material/science:"):
        try:
            with st.spinner("Importing the demo comments…"):
                loaded = load_demo(engine())
        except LoupeError as e:
            show_error(e)
        else:
            set_current_project(DEMO_PROJECT)
            flash(
                loaded.summary() if loaded else f"The demo project {DEMO_PROJECT!r} is there already.",
                kind="success" if loaded else "info",
            )
            st.rerun()
