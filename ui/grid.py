"""The records grid: one page of records in AgGrid, read-only, text shown as text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from st_aggrid import AgGrid

from core.browse import COMMENTS_COLUMN, KEY_COLUMN, TASK_PARTS, column_name

MAX_CELL_CHARS = 300  # longer texts are cut so one record cannot fill the screen
FIT_ROWS = 12  # up to this many rows the grid grows to fit them; more scroll inside a fixed height
NUMERIC_TYPES = {"INTEGER", "FLOAT"}
TASK_PART_WIDTHS = {"manual": 120, "weak supervision": 130, "confidence": 115, "heuristics": 220,
                    "annotators": 200, "status": 115}


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[: MAX_CELL_CHARS - 1] + "…"
    return value


def _attribute_def(name: str, data_type: str) -> dict[str, Any]:
    column: dict[str, Any] = {"field": name, "headerName": name, "tooltipField": name}
    if data_type == "TEXT":
        column.update(flex=3, minWidth=320, wrapText=True, autoHeight=True)
    else:
        column.update(flex=1, minWidth=120)
    if data_type in NUMERIC_TYPES:
        column["type"] = "numericColumn"
    return column


def column_defs(attribute_types: dict[str, str]) -> list[dict[str, Any]]:
    """The id column pinned first, text columns wide and wrapped, the others narrow."""
    defs: list[dict[str, Any]] = [{"field": "id", "headerName": "id", "pinned": "left", "width": 110, "minWidth": 80}]
    for name, data_type in attribute_types.items():
        if name == "id":  # an attribute called "id" fills the id column (core's page rows share the name)
            continue
        defs.append(_attribute_def(name, data_type))
    return defs


def browse_column_defs(attribute_types: dict[str, str], tasks: Sequence[str]) -> list[dict[str, Any]]:
    """The record key pinned first, text attributes, one column group per task, other attributes, comments.

    The labels come right after the texts they label, so both show without scrolling sideways.
    """
    texts = {name: kind for name, kind in attribute_types.items() if kind == "TEXT" and name != KEY_COLUMN}
    others = {name: kind for name, kind in attribute_types.items() if kind != "TEXT" and name != KEY_COLUMN}
    defs: list[dict[str, Any]] = [
        {"field": KEY_COLUMN, "headerName": "id", "pinned": "left", "width": 110, "minWidth": 80},
        *(_attribute_def(name, kind) for name, kind in texts.items()),
    ]
    for task in tasks:
        children = []
        for part in TASK_PARTS:
            field = column_name(task, part)
            child: dict[str, Any] = {"field": field, "headerName": part, "tooltipField": field,
                                     "width": TASK_PART_WIDTHS[part], "minWidth": 90}
            if part in ("heuristics", "annotators"):
                child.update(wrapText=True, autoHeight=True)
            if part == "confidence":
                child["type"] = "numericColumn"
            children.append(child)
        defs.append({"headerName": task, "marryChildren": True, "children": children})
    defs += [_attribute_def(name, kind) for name, kind in others.items()]
    defs.append({"field": COMMENTS_COLUMN, "headerName": "comments", "type": "numericColumn", "width": 115})
    return defs


def _show(frame: pd.DataFrame, defs: list[dict[str, Any]], *, key: str, height: int) -> None:
    options = {
        "columnDefs": defs,
        "defaultColDef": {"sortable": False, "filter": False, "resizable": True, "suppressHeaderMenuButton": True},
        # Attribute names come from files and may contain dots: they are column names, not paths.
        "suppressFieldDotNotation": True,
        "enableCellTextSelection": True,
        "tooltipShowDelay": 400,
        "rowHeight": 34,
        # Rows grow to fit wrapped text; animating that re-layout makes rows overlap for a moment.
        "animateRows": False,
    }
    fit = len(frame) <= FIT_ROWS
    AgGrid(frame, gridOptions=options, height=None if fit else height, key=key, update_on=[], theme="streamlit")


def records_grid(rows: list[dict[str, Any]], attribute_types: dict[str, str], *, key: str, height: int = 600) -> None:
    """Show one page of records (``core.store.records.RecordPage`` rows).

    Sorting and filtering happen in SQL (the page holds one page only), so the
    grid's own sorting and filtering are off. Cells are rendered as text by
    AgGrid's default renderer: markup in the data is never interpreted.
    """
    columns = ["id", *(name for name in attribute_types if name != "id")]
    frame = pd.DataFrame([{c: _shorten(row.get(c)) for c in columns} for row in rows], columns=columns)
    _show(frame, column_defs(attribute_types), key=key, height=height)


def browse_grid(
    frame: pd.DataFrame, attribute_types: dict[str, str], tasks: Sequence[str], *, key: str, height: int = 600
) -> None:
    """Show one page of the data browser (:func:`core.browse.browse_page`'s frame), as :func:`records_grid` does."""
    shown = frame.reset_index(drop=True).astype(object)
    shown = shown.where(shown.notna(), None).map(_shorten)
    for name, data_type in attribute_types.items():
        if data_type == "INTEGER" and name in shown:
            # pandas stores whole numbers with gaps as floats: show 14, not 14.0.
            shown[name] = [None if v is None else int(v) for v in shown[name]]
    _show(shown, browse_column_defs(attribute_types, tasks), key=key, height=height)
