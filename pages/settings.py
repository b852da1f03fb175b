"""Settings: download records, create a project snapshot, restore one as a new project."""

import streamlit as st

from core.errors import LoupeError
from core.snapshot import restore_snapshot, snapshot_bytes, snapshot_filename
from ui.export_dialog import render_export_buttons
from ui.feedback import flash, show_error, show_flash
from ui.project import active_project, project_caption
from ui.resources import engine, set_current_project

st.title("Settings")
show_flash()
ref = active_project()

if ref is not None:
    project_caption(ref)
    st.subheader("Download records")
    st.caption("For use outside Loupe: refinery JSON/CSV/XLSX, Label Studio, Labelbox, CoNLL or spaCy.")
    render_export_buttons(ref.name)

    st.subheader("Project snapshot")
    st.caption("A backup of the whole project (records, tasks, labels, heuristics, runs, slices, comments, "
               "review history) that Loupe restores as a new project.")
    with_embeddings = st.checkbox("Include embeddings", key="settings.snapshot.embeddings",
                                  help="A bigger file, but no recomputation after restoring.")
    snapshot_password = st.text_input("Password (optional)", type="password", key="settings.snapshot.password")
    store, name = engine(), ref.name
    st.download_button(
        "Create snapshot",
        # Made on click, not on every rerun.
        data=lambda: snapshot_bytes(store, project=name, with_embeddings=with_embeddings,
                                    password=snapshot_password or None),
        file_name=snapshot_filename(name), mime="application/zip", on_click="ignore",
        icon=":material/backup:", key="settings.snapshot.download",
    )

st.subheader("Restore a snapshot")
upload = st.file_uploader("Snapshot (.zip)", type=["zip"], key="settings.restore.file")
new_name = st.text_input("New project name (optional)", key="settings.restore.name",
                         help="Default: the snapshot's project name, with (2), (3), … when it is taken.")
restore_password = st.text_input("Password", type="password", key="settings.restore.password")
if st.button("Restore", disabled=upload is None, key="settings.restore.run", icon=":material/settings_backup_restore:"):
    try:
        with st.spinner("Checking and restoring the snapshot…"):
            result = restore_snapshot(engine(), upload.getvalue() if upload else b"", name=new_name or None,
                                      password=restore_password or None)
    except LoupeError as e:
        show_error(e)
    else:
        set_current_project(result.project)
        flash(result.summary())
        st.rerun()
