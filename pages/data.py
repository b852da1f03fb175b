"""Data: browse the project's records, filtered, sorted and paged in SQL; slices, bulk actions, comments."""

import json
import math

import streamlit as st

from core.errors import LoupeError
from ui import browser_cached as cached
from ui import browser_filters as filters
from ui.browser_bulk import bulk_button
from ui.browser_comments import comments_panel
from ui.browser_slices import slices_panel
from ui.export_dialog import render_export_buttons
from ui.feedback import show_error, show_flash
from ui.grid import browse_grid
from ui.project import PROJECTS_PAGE, project_caption, require_project
from ui.resources import database_url

PAGE_KEY = "data.page"
QUERY_KEY = "data.query"  # the filter, sort and page size the current page number belongs to
PAGE_SIZES = [25, 50, 100]

st.title("Data")
ref = require_project()
project_caption(ref)
show_flash()
url = database_url()
choices = cached.choices(url, ref.id, ref.revision)
if not choices.attributes:
    st.info("This project has no records yet: import a file on the Projects page.")
    st.page_link(PROJECTS_PAGE, label="Go to Projects", icon=":material/folder_open:")
    st.stop()

filters.presets(choices)
search_col, sort_col, order_col, size_col = st.columns([4, 2, 1, 1], vertical_alignment="bottom")
with search_col:
    search = filters.search_box()
order = filters.sort_controls(choices, sort_col, order_col)
page_size = size_col.selectbox("Rows per page", PAGE_SIZES, index=1, key="data.page_size")
filters.condition_builder(url, ref.id, ref.revision, choices)
filters.active_conditions()
flt = filters.with_search(filters.current_filter(), search)
filter_json, sort_json = flt.to_json(), json.dumps(order.to_dict(), sort_keys=True)

# A new filter, sort or page size starts again at page 1.
query = (ref.id, filter_json, sort_json, page_size)
if st.session_state.get(QUERY_KEY) != query:
    st.session_state[QUERY_KEY] = query
    st.session_state.pop(PAGE_KEY, None)
page = st.session_state.get(PAGE_KEY, 1)
header = st.container()  # the count and the pager: filled after the rows, which come first


def fetch(page_no: int):
    return cached.page(url, ref.id, ref.revision, filter_json, sort_json, (page_no - 1) * page_size, page_size)


try:
    result = fetch(page)
    if result.frame.empty and page > 1:  # the data shrank since this page number was chosen: start again
        page = 1
        st.session_state.pop(PAGE_KEY, None)
        result = fetch(page)
except LoupeError as e:
    show_error(e)
    st.stop()

if result.frame.empty:
    st.info("No record matches this filter." if flt else "No records.", icon=":material/filter_alt_off:")
else:
    browse_grid(result.frame, choices.attributes, result.tasks, key=f"data.grid.{ref.id}")

total = cached.count(url, ref.id, ref.revision, filter_json)
pages = max(1, math.ceil(total / page_size))
with header:
    count_col, pager_col = st.columns([1, 1], vertical_alignment="center")
    noun = "record" if total == 1 else "records"
    matching = (" matches" if total == 1 else " match") + " the filter" if flt else ""
    first = result.offset + 1
    shown = f" · showing {first}–{result.offset + len(result.frame)}" if len(result.frame) else ""
    count_col.markdown(f"**{total} {noun}**{matching}{shown} · page {page} of {pages}")
    with pager_col, st.container(horizontal_alignment="right"):
        st.pagination(pages, key=PAGE_KEY, max_visible_pages=7)

slices_tab, bulk_tab, record_tab = st.tabs(["Slices", "Bulk actions and export", "Comments and similar records"])
with slices_tab:
    slices_panel(url, ref, flt, total)
with bulk_tab:
    st.caption("Act on every record the filter matches, not only on this page. Each action is one transaction "
               "and asks to confirm the count first.")
    bulk_button(ref.id, choices, flt, total)
    render_export_buttons(ref.name, filter_json=filter_json if flt else None)
with record_tab:
    comments_panel(ref, result, choices.attributes)
