"""The Dashboard's sections: each one a title, a sentence on how to read it, and its chart or table.

Every section is a function of a :class:`View`; the page lays them out two per row, or, in the
"present" layout, one per screen (``big`` charts, larger text). Owns the ``dashboard.errors*`` keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st

from core.errors import LoupeError
from core.metrics import TaskMetrics
from ui import browser_cached as cached
from ui.browser_charts import annotator_chart, confidence_chart, confusion_chart, distribution_chart
from ui.feedback import show_error
from ui.similar import record_grid
from ui.text import escape_markdown


@dataclass(frozen=True)
class View:
    """What every section reads: the numbers, where they come from, and the layout."""

    metrics: TaskMetrics
    database_url: str
    project_id: int
    revision: int
    slice_name: str | None
    big: bool = False

    def chart(self, figure: object, key: str) -> None:
        st.plotly_chart(figure, width="stretch", key=f"dashboard.{key}", config={"displaylogo": False})


def _head(view: View, title: str, how_to_read: str) -> None:
    st.subheader(title)
    st.caption(how_to_read)


def progress(view: View) -> None:
    _head(view, "Progress", "How far labeling has got in these records: labeled by anyone, with a valid label "
          "(one annotator, all agreeing, or a gold star), and with a weak-supervision label. The bar is the "
          "share labeled manually.")
    m = view.metrics
    shown = dict(zip(m.progress["measure"], m.progress["records"], strict=True))
    cols = st.columns(4)
    cols[0].metric("Records", f"{shown['records']:,}")
    cols[1].metric("Labeled manually", f"{shown['labeled manually']:,}",
                   help="Records with a manual label from at least one annotator.")
    cols[2].metric("Valid manual label", f"{shown['valid manual label']:,}",
                   help="One annotator, the gold-starred answer, or the answer all annotators agree on.")
    cols[3].metric("Weakly supervised", f"{shown['weakly supervised']:,}")
    if m.records:
        st.progress(min(1.0, m.labeled_share), text=f"{m.labeled_share:.0%} labeled manually")


def distribution(view: View) -> None:
    _head(view, "Label distribution", "How often each label occurs: blue bars count valid manual labels, orange "
          "bars weak-supervision labels. Compare the shape more than the heights: far fewer records are labeled "
          "by hand; a label whose share differs a lot is one weak supervision over- or under-predicts.")
    if view.metrics.distribution.to_numpy().sum():
        view.chart(distribution_chart(view.metrics.distribution, big=view.big), "distribution")
    else:
        st.info("No labels yet.")


def confidence(view: View) -> None:
    _head(view, "Weak-supervision confidence", "How sure weak supervision is: its labels per confidence band. "
          "Tall bars on the left mean many uncertain labels: review them with the low-confidence preset of the "
          "Data page.")
    if view.metrics.confidence["count"].sum():
        view.chart(confidence_chart(view.metrics.confidence, big=view.big), "confidence")
    else:
        st.info("No weak-supervision labels yet: run a label model on the Heuristics page.")


def confusion(view: View) -> None:
    m = view.metrics
    level = {"token": "per token (O = outside every span)", "label set": "per record, as label sets"}.get(
        m.confusion_level, "per record")
    _head(view, "Manual labels vs weak supervision", f"Rows are valid manual labels, columns what weak "
          f"supervision said for the same records ({level}); each cell shows the count and the share of its row, "
          "which sets the colour. A dark diagonal means weak supervision agrees with people; dark cells off it "
          "show which labels it confuses.")
    if m.confusion.to_numpy().sum():
        view.chart(confusion_chart(m.confusion, m.confusion_rates, big=view.big), "confusion")
    else:
        st.info("No record has both a valid manual label and a weak-supervision label yet.")


def annotators(view: View) -> None:
    _head(view, "Progress by annotator", "Records each annotator has labeled manually in these records.")
    if view.metrics.by_annotator.empty:
        st.info("No manual labels yet.")
    else:
        view.chart(annotator_chart(view.metrics.by_annotator, big=view.big), "annotators")


def agreement(view: View) -> None:
    _head(view, "Annotator agreement", "How often two annotators gave the same label to the same record: percent "
          "and Cohen's κ per pair (1 = always agree, 0 = no better than chance); Krippendorff's α sums up all.")
    report = view.metrics.agreement
    if report is None or report.pairs.empty:
        st.info("Agreement needs records labeled by two annotators or more.")
        return
    st.metric("Krippendorff's alpha", "–" if np.isnan(report.alpha) else f"{report.alpha:.2f}",
              help=f"Over {report.items:,} record(s) labeled by two or more annotators ({report.level} level).")
    st.dataframe(report.pairs, hide_index=True, width="stretch",
                 column_config={"percent": st.column_config.NumberColumn("agreement %", format="%.1f"),
                                "cohen_kappa": st.column_config.NumberColumn("Cohen's κ", format="%.2f")})


def heuristics(view: View) -> None:
    _head(view, "Heuristics", "Per heuristic: coverage (records it labeled), overlaps and conflicts with other "
          "heuristics, and precision estimated on the manually labeled records it hit. High coverage with low "
          "precision hurts weak supervision most.")
    if view.metrics.heuristics.empty:
        st.info("No heuristic has labeled these records yet.")
        return
    st.dataframe(view.metrics.heuristics, hide_index=True, width="stretch",
                 column_config={"est_precision": st.column_config.ProgressColumn(
                     "est. precision", min_value=0.0, max_value=1.0, format="%.2f")})


def label_errors(view: View) -> None:
    m = view.metrics
    if m.kind != "classification":
        _head(view, "Likely label errors", f"Label errors are searched for classification tasks; "
              f"{escape_markdown(m.task)} is a task of kind {m.kind}.")
        return
    _head(view, "Likely label errors", "Manual labels that a classifier on the records' embeddings, "
          "cross-validated, confidently disagrees with (confident learning), with the label it suggests. Lowest "
          "score first: the most likely errors. Select a row to review that record on the Labeling page.")
    key = f"dashboard.errors.{view.project_id}.{m.task}.{view.slice_name}"
    if st.button("Find likely label errors", icon=":material/troubleshoot:", key="dashboard.find_errors"):
        st.session_state[key] = True
    if not st.session_state.get(key):
        return
    try:
        with st.spinner("Cross-validating a classifier on the embeddings…"):
            errors = cached.label_errors(view.database_url, view.project_id, view.revision, m.task, view.slice_name)
    except LoupeError as error:
        show_error(error)
        return
    if errors.empty:
        st.success("No likely label errors found.")
        return
    record_grid(errors.drop(columns=["record_id"]), key="dashboard.errors_table", caption="", column_config={
        "id": "record", "label": "manual label", "suggested": "suggested label",
        "score": st.column_config.NumberColumn(format="%.3f"),
        "self_confidence": st.column_config.NumberColumn(format="%.2f"),
        "suggested_confidence": st.column_config.NumberColumn(format="%.2f")})


SECTIONS: dict[str, Callable[[View], None]] = {
    "Progress": progress, "Label distribution": distribution, "Confidence": confidence,
    "Manual vs weak supervision": confusion, "Annotators": annotators, "Agreement": agreement,
    "Heuristics": heuristics, "Label errors": label_errors,
}  # fmt: skip
ROWS = [["Progress"], ["Label distribution", "Confidence"], ["Manual vs weak supervision"],
        ["Annotators", "Agreement"], ["Heuristics"], ["Label errors"]]

PRESENT_CSS = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"]
  {display: none;}
[data-testid="stMainBlockContainer"] {max-width: 100%; padding: 2rem 4rem;}
[data-testid="stMain"] h3 {font-size: 2.4rem;}
[data-testid="stMain"] [data-testid="stCaptionContainer"] p {font-size: 1.4rem; line-height: 1.5;}
[data-testid="stMain"] [data-testid="stMetricValue"] * {font-size: 4.5rem; line-height: 1.2;}
[data-testid="stMain"] [data-testid="stMetricLabel"] * {font-size: 1.5rem;}
[data-testid="stMain"] [data-testid="stProgress"] p {font-size: 1.4rem;}
</style>"""


def render_normal(view: View) -> None:
    """Every section, two per row where they fit."""
    for row in ROWS:
        columns = st.columns(len(row), gap="large") if len(row) > 1 else [st.container()]
        for name, column in zip(row, columns, strict=True):
            with column:
                SECTIONS[name](view)


def render_present(view: View, slide: str) -> None:
    """One section on the screen, large, for a meeting."""
    st.html(PRESENT_CSS)
    SECTIONS[slide](view)
