"""Plotly figures of the dashboard, built from core's DataFrames (no computing here).

Every figure takes ``big``: the dashboard's "present" layout draws one chart per screen, taller
and with larger text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

MANUAL_COLOR, WEAK_COLOR = "#4E79A7", "#F28E2B"
MARGIN = {"l": 0, "r": 0, "t": 10, "b": 0}
BIG_HEIGHT, BIG_FONT = 500, 20


def _style(figure: go.Figure, *, height: int, big: bool) -> go.Figure:
    figure.update_layout(margin=MARGIN, height=BIG_HEIGHT if big else height)
    if big:  # Streamlit's chart theme sets its own tick and title sizes: override each of them
        figure.update_layout(font_size=BIG_FONT, legend_font_size=BIG_FONT)
        figure.update_traces(textfont_size=BIG_FONT)
        for axes in (figure.update_xaxes, figure.update_yaxes):
            axes(tickfont_size=BIG_FONT, title_font_size=BIG_FONT)
    return figure


def distribution_chart(distribution: pd.DataFrame, *, big: bool = False) -> go.Figure:
    """Grouped bars: valid manual labels next to weak-supervision labels, per label."""
    frame = distribution.reset_index().melt(id_vars="label", var_name="source", value_name="count")
    frame["source"] = frame["source"].map({"manual": "manual (valid)", "weak_supervision": "weak supervision"})
    figure = px.bar(frame, x="label", y="count", color="source", barmode="group", text="count",
                    color_discrete_sequence=[MANUAL_COLOR, WEAK_COLOR])
    figure.update_layout(legend_title_text="")
    return _style(figure, height=320, big=big)


def confidence_chart(histogram: pd.DataFrame, *, big: bool = False) -> go.Figure:
    """Bars of the weak-supervision confidence histogram on a numeric 0–1 axis.

    Bars sit between their edges so the axis reads as a number line; text labels per bin
    ("0.0–0.1" ten times) ran into each other on a half-width chart.
    """
    start, end = histogram["bin_start"].to_numpy(float), histogram["bin_end"].to_numpy(float)
    ranges = [f"{a:.1f}–{b:.1f}" for a, b in zip(start, end, strict=True)]
    figure = go.Figure(go.Bar(
        x=(start + end) / 2, y=histogram["count"], width=end - start, text=histogram["count"],
        customdata=ranges, marker={"color": WEAK_COLOR, "line": {"color": "white", "width": 1}},
        hovertemplate="confidence %{customdata}: %{y} labels<extra></extra>",
    ))
    figure.update_layout(xaxis_title="confidence", yaxis_title="labels",
                         xaxis={"range": [-0.01, 1.01], "dtick": 0.1, "tickformat": ".1f"})
    return _style(figure, height=320, big=big)


def confusion_chart(counts: pd.DataFrame, rates: pd.DataFrame, *, big: bool = False) -> go.Figure:
    """Heatmap coloured by row rate, each cell showing its count and rate."""
    z = rates.to_numpy(dtype=float)
    text = [[f"{int(c)}<br>{'' if np.isnan(r) else f'{r:.0%}'}" for c, r in zip(crow, rrow, strict=True)]
            for crow, rrow in zip(counts.to_numpy(), z, strict=True)]
    figure = go.Figure(go.Heatmap(
        z=np.nan_to_num(z), x=[str(c) for c in counts.columns], y=[str(i) for i in counts.index], text=text,
        texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1, colorbar={"title": "row rate"},
        hovertemplate="manual %{y}, weak supervision %{x}: %{text}<extra></extra>",
    ))
    figure.update_layout(xaxis_title="weak supervision", yaxis_title="valid manual label",
                         yaxis_autorange="reversed")
    return _style(figure, height=120 + 40 * len(counts), big=big)


def annotator_chart(by_annotator: pd.DataFrame, *, big: bool = False) -> go.Figure:
    """Bars: records labeled manually per annotator."""
    figure = px.bar(by_annotator, x="annotator", y="records", text="records", color_discrete_sequence=[MANUAL_COLOR])
    return _style(figure, height=260, big=big)
