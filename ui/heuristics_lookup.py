"""Lookup lists: create, fill (one term, or paste many), remove, blacklist, import/export JSON, make a heuristic."""

from __future__ import annotations

import streamlit as st
from sqlmodel import Session

from core import lookup
from core.heuristics import add_lookup_heuristic
from core.store.heuristics import LookupList
from ui import heuristics_data as data
from ui.heuristics_data import ProjectBasics, TaskInfo
from ui.heuristics_runs import write
from ui.resources import database_url
from ui.text import escape_markdown


def lookup_tab(project_id: int, revision: int, task: TaskInfo, basics: ProjectBasics) -> None:
    lists = data.lookup_lists(database_url(), project_id, revision)
    left, right = st.columns([2, 3], gap="large")
    with left:
        if lists.empty:
            st.info("No lookup list yet. Create one, or import a JSON file.", icon=":material/info:")
        else:
            st.dataframe(lists.drop(columns="id"), hide_index=True, width="stretch")
        with st.form("heuristics.lookup.new", clear_on_submit=True):
            name = st.text_input("New list name", placeholder="spam_words", help="Used by name in labeling functions.")
            description = st.text_input("Description")
            if st.form_submit_button("Create list", icon=":material/add:"):
                write(lambda s: lookup.create_list(s, project_id=project_id, name=name, description=description),
                      f"Created lookup list {name.strip()}.")
        upload = st.file_uploader("Import a list (JSON)", type=["json"], key="heuristics.lookup.upload")
        if upload is not None and st.button("Import", key="heuristics.lookup.import"):
            write(lambda s: lookup.import_list(s, project_id=project_id, data=upload.getvalue()),
                  lambda result: f"Imported {result[1]} term(s) into {result[0].name}.")
    with right:
        if lists.empty:
            return
        by_id = dict(zip(lists["id"], lists["name"], strict=True))
        list_id = st.selectbox("List", list(by_id), format_func=by_id.get, key="heuristics.lookup.pick")
        _terms(project_id, revision, int(list_id), by_id[list_id])
        _make_heuristic(project_id, task, basics, by_id[list_id])


def _terms(project_id: int, revision: int, list_id: int, name: str) -> None:
    terms = data.lookup_terms(database_url(), project_id, revision, list_id)

    def target(session: Session) -> LookupList:
        return lookup.get_list(session, project_id=project_id, name=name)

    st.dataframe(terms, hide_index=True, width="stretch", height=min(36 + 35 * max(len(terms), 1), 300))
    add_col, paste_col = st.columns(2)
    with add_col, st.form(f"heuristics.lookup.add.{list_id}", clear_on_submit=True):
        value = st.text_input("Term")
        comment = st.text_input("Comment")
        if st.form_submit_button("Add term", icon=":material/add:"):
            write(lambda s: lookup.add_terms(s, lookup_list=target(s), values=[value], comment=comment),
                  lambda added: f"Added {len(added)} term(s) to {name}.")
    with paste_col, st.form(f"heuristics.lookup.paste.{list_id}", clear_on_submit=True):
        pasted = st.text_area("Paste many (one per line)", height=108)
        if st.form_submit_button("Add all", icon=":material/playlist_add:"):
            write(lambda s: lookup.add_terms(s, lookup_list=target(s), values=lookup.split_pasted(pasted)),
                  lambda added: f"Added {len(added)} term(s) to {name}.")
    chosen = st.multiselect("Selected terms", list(terms["value"]), key=f"heuristics.lookup.chosen.{list_id}")
    buttons = st.columns(4)
    if buttons[0].button("Remove", disabled=not chosen, key=f"heuristics.lookup.remove.{list_id}"):
        write(lambda s: lookup.remove_terms(s, lookup_list=target(s), values=chosen),
              lambda n: f"Removed {n} term(s) from {name}.")
    if buttons[1].button("Blacklist", disabled=not chosen, key=f"heuristics.lookup.black.{list_id}"):
        write(lambda s: lookup.set_blacklisted(s, lookup_list=target(s), values=chosen, blacklisted=True),
              lambda n: f"Blacklisted {n} term(s): they stay in {name} but never match.")
    if buttons[2].button("Allow", disabled=not chosen, key=f"heuristics.lookup.white.{list_id}"):
        write(lambda s: lookup.set_blacklisted(s, lookup_list=target(s), values=chosen, blacklisted=False),
              lambda n: f"{n} term(s) of {name} match again.")
    exported = data.lookup_export(database_url(), project_id, revision, list_id)
    buttons[3].download_button("Export JSON", exported, file_name=f"{name}.json", mime="application/json",
                               key=f"heuristics.lookup.export.{list_id}")
    if st.button("Delete list", icon=":material/delete:", key=f"heuristics.lookup.delete.{list_id}"):
        write(lambda s: lookup.delete_list(s, lookup_list=target(s)), f"Deleted lookup list {name}.")


def _make_heuristic(project_id: int, task: TaskInfo, basics: ProjectBasics, name: str) -> None:
    with st.form(f"heuristics.lookup.heuristic.{task.id}.{name}"):
        st.markdown(f"**Heuristic from {escape_markdown(name)}** on task *{escape_markdown(task.name)}*")
        cols = st.columns(2)
        label = cols[0].selectbox("Label to give", list(task.labels))
        texts = [n for n, kind in basics.attributes if kind == "TEXT"]
        attribute = cols[1].selectbox("Search in", [task.attribute] if task.attribute else texts,
                                      disabled=task.kind == "extraction")
        cols = st.columns(2)
        case = cols[0].checkbox("Case-sensitive", value=False)
        whole = cols[1].checkbox("Whole tokens only", value=True)
        if st.form_submit_button("Add heuristic", icon=":material/rule:"):
            write(lambda s: add_lookup_heuristic(s, project_id=project_id, task_id=task.id, lookup_list=name,
                                                 label=label, attribute=attribute, case_sensitive=case,
                                                 whole_tokens=whole),
                  lambda h: f"Added heuristic {h.name}; run it from the editor or with “Run all heuristics”.")
