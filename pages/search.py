"""Search: embed a text attribute, then search by meaning, find similar records and outliers, and map them."""

import streamlit as st

from ui import cached
from ui import search_data as data
from ui.feedback import show_flash
from ui.project import PROJECTS_PAGE, project_caption, require_project
from ui.resources import database_url
from ui.search_map import map_tab
from ui.search_panels import embeddings_bar, index_line, index_progress, outliers_tab, semantic_tab, similar_tab

TABS = ["Search by meaning", "Find similar", "Outliers", "Map"]

st.title("Search")
ref = require_project()
project_caption(ref)
show_flash()
types = cached.attribute_types(database_url(), ref.id, ref.revision)
texts = [name for name, kind in types.items() if kind == "TEXT"]
if not texts:
    st.info("Search works on text: this project has no text attribute yet. Import records with text first.",
            icon=":material/info:")
    st.page_link(PROJECTS_PAGE, label="Go to Projects", icon=":material/folder_open:")
    st.stop()

space = embeddings_bar(ref, texts, data.spaces(ref.id))
if space is None:
    st.stop()
rebuilding = index_line(ref, space)  # a missing or stale index is rebuilt in the background
progress_slot = st.container()

tasks = data.tasks(database_url(), ref.id, ref.revision)
# Bound to the URL: a refresh or a shared link opens the same tab.
semantic, similar, outliers, embedding_map = st.tabs(TABS, key="search.view", on_change="rerun",
                                                     bind="query-params")
# Only the open tab runs: a hidden map is not projected, a hidden search not repeated.
if semantic.open:
    with semantic:
        semantic_tab(ref, space, rebuilding=rebuilding)
if similar.open:
    with similar:
        similar_tab(ref, space, rebuilding=rebuilding)
if outliers.open:
    with outliers:
        outliers_tab(ref, space, tasks)
if embedding_map.open:
    with embedding_map:
        map_tab(ref, space, tasks)
with progress_slot:
    index_progress(space)  # last: when the rebuild ends it reruns the page, after this run's search was taken in
