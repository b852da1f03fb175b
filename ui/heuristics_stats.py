"""Statistics of a task's heuristics: refinery's and Snorkel's grids, charts and the pairwise matrices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from ui import heuristics_data as data
from ui.resources import database_url

NORMALIZE = {"count": "counts", "records": "share of all", "row_coverage": "share of the row heuristic's votes"}
PERCENT = st.column_config.NumberColumn(format="percent")


def _heatmap(frame: pd.DataFrame, title: str, scale: str, *, diagonal: bool = True) -> None:
    if frame.empty:
        return
    if not diagonal:  # a heuristic's overlap with itself is its coverage: it would flatten the colour scale
        frame = frame.astype(float).mask(np.eye(len(frame), dtype=bool))
    values = frame.to_numpy(dtype=float)
    integral = bool(np.all(np.isnan(values) | (values == np.round(values))))
    figure = px.imshow(frame, text_auto=True if integral else ".2f", color_continuous_scale=scale, aspect="auto",
                       labels={"x": "other heuristic", "y": "heuristic", "color": ""}, title=title)
    figure.update_layout(margin={"l": 0, "r": 0, "t": 40, "b": 0}, height=120 + 40 * len(frame))
    st.plotly_chart(figure, width="stretch")


def stats_tab(project_id: int, revision: int, task_id: int, colors: dict[str, str]) -> None:
    normalize = st.segmented_control("Matrices show", list(NORMALIZE), format_func=NORMALIZE.get, default="count",
                                     key="heuristics.stats.normalize") or "count"
    stats = data.statistics(database_url(), project_id, revision, task_id, normalize)
    cols = st.columns(3)
    cols[0].metric("Records", f"{stats.n_records:,}")
    cols[1].metric("With a valid manual label", f"{stats.n_manual:,}")
    cols[2].metric("Heuristics with votes", len(stats.heuristics))
    if stats.refinery.empty:
        st.info("No heuristic has votes yet: run the heuristics first.", icon=":material/info:")
        return
    unit = "tokens" if stats.unit == "tokens" else "records"
    st.markdown("**Per heuristic and label** (refinery): coverage in records, TP/FP against valid manual labels"
                + (", counted per token" if unit == "tokens" else ""))
    st.dataframe(stats.refinery, hide_index=True, width="stretch", column_config={
        "est_precision": st.column_config.ProgressColumn("est. precision", min_value=0.0, max_value=1.0,
                                                         format="%.2f")})
    chart_col, precision_col = st.columns(2)
    with chart_col:
        figure = px.bar(stats.refinery, x="heuristic", y="coverage", color="label", barmode="group", text="coverage",
                        color_discrete_map=colors, title="Coverage (records labeled)", height=320)
        figure.update_layout(margin={"l": 0, "r": 0, "t": 40, "b": 0})
        st.plotly_chart(figure, width="stretch")
    with precision_col:
        figure = px.bar(stats.refinery, x="heuristic", y="est_precision", color="label", barmode="group",
                        text_auto=".2f", range_y=[0, 1.05], color_discrete_map=colors, title="Estimated precision",
                        height=320)
        figure.update_layout(margin={"l": 0, "r": 0, "t": 40, "b": 0})
        st.plotly_chart(figure, width="stretch")
    st.markdown(f"**Per heuristic** (Snorkel's LF summary, fractions of all {unit})")
    st.dataframe(stats.summary.reset_index(), hide_index=True, width="stretch", column_config={
        "coverage": PERCENT, "overlaps": PERCENT, "conflicts": PERCENT, "emp_acc": PERCENT})
    left, right = st.columns(2)
    with left:
        _heatmap(stats.overlaps, f"Overlaps: {unit} both labeled (diagonal left out)", "Blues", diagonal=False)
    with right:
        _heatmap(stats.conflicts, f"Conflicts: {unit} labeled differently", "Reds")
