"""The records grid: one page of records in AgGrid, read-only, text shown as text."""

from __future__ import annotations

from typing import Any

import pandas as pd
from st_aggrid import AgGrid

MAX_CELL_CHARS = 300  # longer texts are cut so one record cannot fill the screen
FIT_ROWS = 12  # up to this many rows the grid grows to fit them; more scroll inside a fixed height
NUMERIC_TYPES = {"INTEGER", "FLOAT"}


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[: MAX_CELL_CHARS - 1] + "…"
    return value


def column_defs(attribute_types: dict[str, str]) -> list[dict[str, Any]]:
    """The id column pinned first, text columns wide and wrapped, the others narrow."""
    defs: list[dict[str, Any]] = [{"field": "id", "headerName": "id", "pinned": "left", "width": 110, "minWidth": 80}]
    for name, data_type in attribute_types.items():
        if name == "id":  # an attribute called "id" fills the id column (core's page rows share the name)
            continue
        column: dict[str, Any] = {"field": name, "headerName": name, "tooltipField": name}
        if data_type == "TEXT":
            column.update(flex=3, minWidth=320, wrapText=True, autoHeight=True)
        else:
            column.update(flex=1, minWidth=120)
        if data_type in NUMERIC_TYPES:
            column["type"] = "numericColumn"
        defs.append(column)
    return defs


def records_grid(rows: list[dict[str, Any]], attribute_types: dict[str, str], *, key: str, height: int = 600) -> None:
    """Show one page of records.

    Sorting and filtering happen in SQL (the page holds one page only), so the
    grid's own sorting and filtering are off. Cells are rendered as text by
    AgGrid's default renderer: markup in the data is never interpreted.
    """
    columns = ["id", *(name for name in attribute_types if name != "id")]
    frame = pd.DataFrame([{c: _shorten(row.get(c)) for c in columns} for row in rows], columns=columns)
    options = {
        "columnDefs": column_defs(attribute_types),
        "defaultColDef": {"sortable": False, "filter": False, "resizable": True, "suppressHeaderMenuButton": True},
        # Attribute names come from files and may contain dots: they are column names, not paths.
        "suppressFieldDotNotation": True,
        "enableCellTextSelection": True,
        "tooltipShowDelay": 400,
        "rowHeight": 34,
        # Rows grow to fit wrapped text; animating that re-layout makes rows overlap for a moment.
        "animateRows": False,
    }
    fit = len(rows) <= FIT_ROWS
    AgGrid(frame, gridOptions=options, height=None if fit else height, key=key, update_on=[], theme="streamlit")
