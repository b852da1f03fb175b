"""Data: the current project's records, one page at a time, searched and sorted in SQL."""

import math

import streamlit as st

from core.errors import LoupeError
from ui import cached
from ui.grid import records_grid
from ui.project import PROJECTS_PAGE, project_caption, require_project
from ui.resources import database_url
from ui.text import escape_markdown

PAGE_KEY = "data.page"
QUERY_KEY = "data.query"  # the search, sort and page size the current page number belongs to
PAGE_SIZES = [25, 50, 100]
IMPORT_ORDER = "(import order)"

st.title("Data")
ref = require_project()
project_caption(ref)
url = database_url()
types = cached.attribute_types(url, ref.id, ref.revision)
if not types:
    st.info("This project has no records yet: import a file on the Projects page.")
    st.page_link(PROJECTS_PAGE, label="Go to Projects", icon=":material/folder_open:")
    st.stop()

search_col, sort_col, order_col, size_col = st.columns([4, 2, 1, 1], vertical_alignment="bottom")
search = search_col.text_input(
    "Search", placeholder="Text in any text or category attribute, or a record id", key="data.search"
).strip()
sort_by = sort_col.selectbox("Sort by", [IMPORT_ORDER, *types], key="data.sort")
descending = order_col.toggle("Descending", key="data.descending", disabled=sort_by == IMPORT_ORDER)
page_size = size_col.selectbox("Rows per page", PAGE_SIZES, index=1, key="data.page_size")

# A new search, sort or page size starts again at page 1.
query = (ref.id, search, sort_by, descending, page_size)
if st.session_state.get(QUERY_KEY) != query:
    st.session_state[QUERY_KEY] = query
    st.session_state.pop(PAGE_KEY, None)
page = st.session_state.get(PAGE_KEY, 1)


def fetch(page_no: int):
    return cached.record_page(
        url, ref.id, ref.revision, offset=(page_no - 1) * page_size, limit=page_size, search=search,
        sort_by=None if sort_by == IMPORT_ORDER else sort_by, descending=descending,
    )  # fmt: skip


try:
    result = fetch(page)
    pages = max(1, math.ceil(result.total / page_size))
    if page > pages:  # the data shrank since this page number was chosen: start again
        page = 1
        st.session_state.pop(PAGE_KEY, None)
        result = fetch(page)
except LoupeError as e:
    st.error(escape_markdown(str(e)))
    st.stop()

count_col, pager_col = st.columns([1, 1], vertical_alignment="center")
noun = "record" if result.total == 1 else "records"
matching = f" match “{escape_markdown(search)}”" if search else ""
shown = f" · showing {result.offset + 1}–{result.offset + len(result.rows)}" if result.rows else ""
count_col.markdown(f"**{result.total} {noun}**{matching}{shown} · page {page} of {pages}")
with pager_col, st.container(horizontal_alignment="right"):
    st.pagination(pages, key=PAGE_KEY, max_visible_pages=7)

if result.rows:
    records_grid(result.rows, types, key=f"data.grid.{ref.id}")
else:
    st.info("No record matches this search.")
