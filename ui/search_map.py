"""The embedding map: records in 2D, coloured by a task's labels; a lasso or a box saves a static slice."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core.errors import LoupeError
from core.search import MAP_SAMPLE
from core.slices import save_static_slice
from core.store import session_scope
from core.store.browse import ProjectRef
from ui import search_data as data
from ui.feedback import flash, show_error
from ui.resources import database_url, engine

METHODS = {"pca": "PCA (fast)", "tsne": "t-SNE (slower, clearer clusters)"}
TSNE_SAMPLE = 3000  # t-SNE takes minutes beyond a few thousand points
NONE = "none"
LAYERS: dict[str, str] = {NONE: "Nothing", "manual": "Manual label", "weak_supervision": "Weak-supervision label",
                          "confidence": "Weak-supervision confidence", "heuristic": "A heuristic's votes"}
MISSING = "(no label)"
MISSING_COLOR = "#C8C8C8"
SAVED_KEY = "search.map.saved"  # how many selections were saved: part of the chart's key


def _controls(ref: ProjectRef, tasks: list[data.Task]) -> tuple[str, data.Task | None, str, int | None]:
    cols = st.columns(4, vertical_alignment="bottom")
    method = cols[0].selectbox("Projection", list(METHODS), format_func=METHODS.get, key="search.map.method")
    if not tasks:
        return method, None, NONE, None
    by_id = {t.id: t for t in tasks}
    task = by_id[cols[1].selectbox("Task", list(by_id), format_func=lambda i: by_id[i].name, key="search.map.task")]
    layer = cols[2].selectbox("Colour by", list(LAYERS), format_func=LAYERS.get, key="search.map.color")
    heuristic_id = None
    if layer == "heuristic":
        names = data.heuristics(database_url(), ref.id, ref.revision, task.id)
        heuristic_id = cols[3].selectbox("Heuristic", list(names), format_func=names.get, key="search.map.heuristic",
                                         placeholder="no heuristic has votes yet")
        if heuristic_id is None:
            layer = NONE
    return method, task, layer, heuristic_id


def _figure(points: pd.DataFrame, task: data.Task | None, layer: str) -> object:
    options: dict[str, object] = {}
    if layer == "confidence":
        options = {"color": "value", "color_continuous_scale": "Viridis", "range_color": (0, 1)}
    elif layer != NONE and task is not None:
        order = [name for name, _ in task.colors]
        present = sorted(set(points["value"]), key=lambda v: (v == MISSING, order.index(v) if v in order else 99, v))
        options = {"color": "value", "category_orders": {"value": present},
                   "color_discrete_map": {**dict(task.colors), MISSING: MISSING_COLOR}}
    figure = px.scatter(points, x="x", y="y", custom_data=["record_id", "id", "text"], height=620,
                        render_mode="webgl" if len(points) > 1500 else "svg", labels={"value": LAYERS[layer]},
                        **options)  # type: ignore[arg-type]
    figure.update_traces(marker={"size": 8, "opacity": 0.85, "line": {"width": 0}},
                         hovertemplate="<b>Record %{customdata[1]}</b><br>%{customdata[2]}<extra></extra>")
    # The legend sits above the plot, clear of the mode bar's buttons.
    figure.update_layout(margin={"l": 0, "r": 0, "t": 40, "b": 0}, dragmode="lasso", legend_title_text="",
                         legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
                         xaxis={"visible": False}, yaxis={"visible": False})
    return figure


def map_tab(ref: ProjectRef, space: data.Space, tasks: list[data.Task]) -> None:
    method, task, layer, heuristic_id = _controls(ref, tasks)
    sample = TSNE_SAMPLE if method == "tsne" else MAP_SAMPLE
    try:
        with st.spinner("Projecting the embeddings to 2D…"):
            points = data.map_points(database_url(), ref.id, space, method, sample)
            if task is not None and layer != NONE:
                values = data.colors(database_url(), ref.id, ref.revision, task.id, layer,  # type: ignore[arg-type]
                                     heuristic_id, tuple(int(i) for i in points["record_id"]))
                points = points.assign(value=[values.get(int(i)) for i in points["record_id"]])
                if layer == "confidence":
                    points = points.assign(value=points["value"].astype(float))
                else:
                    points = points.assign(value=points["value"].fillna(MISSING))
    except LoupeError as e:
        show_error(e)
        return
    if points.empty:
        st.info("No record has an embedding yet.", icon=":material/info:")
        return
    shown = f"a sample of {len(points):,}" if len(points) < space.count else f"all {len(points):,}"
    st.caption(f"{METHODS[method].split(' ')[0]} of {shown} embedded records: nearby points are close in meaning. "
               "Hover a point to read it; draw a lasso or a box around points to save them as a data slice.")
    # A saved selection starts a new chart (a new key), so the lasso and the save form go away.
    version = st.session_state.get(SAVED_KEY, 0)
    event = st.plotly_chart(_figure(points, task, layer), key=f"search.map.{space.id}.{method}.{version}",
                            on_select="rerun",
                            selection_mode=("lasso", "box"), config={"displaylogo": False})
    picked = [int(p["customdata"][0]) for p in (event.selection.points if event is not None else [])
              if p.get("customdata")]
    if picked:
        _save_selection(ref, list(dict.fromkeys(picked)))


def _save_selection(ref: ProjectRef, record_ids: list[int]) -> None:
    with st.form("search.map.save", border=True):
        st.markdown(f"**{len(record_ids):,} record(s) selected**")
        name_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
        name = name_col.text_input("Slice name", placeholder="e.g. cluster of refund complaints",
                                   key="search.map.slice_name")
        saved = button_col.form_submit_button("Save as static slice", type="primary", icon=":material/bookmark_add:",
                                              width="stretch")
    if not saved:
        return
    try:
        with session_scope(engine()) as session:
            save_static_slice(session, project_id=ref.id, name=name, record_ids=record_ids)
    except LoupeError as e:
        show_error(e)
        return
    st.session_state[SAVED_KEY] = st.session_state.get(SAVED_KEY, 0) + 1
    flash(f"Saved {len(record_ids):,} record(s) as the static slice “{name.strip()}”.")
    st.rerun()

