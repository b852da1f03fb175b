"""HTML of a record for the labeling and review pages: every value escaped, spans in label colours.

Record values come from users' files: they are escaped before they reach the
page, so markup and scripts in the data show as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_COLOR = "#4E79A7"
Highlight = tuple[int, int, str, str]  # char start, char end (exclusive), label, colour


def safe_color(color: str | None) -> str:
    """A ``#rrggbb`` colour, or the default: colours from the database end up inside a style attribute."""
    return color if color and _HEX.match(color) else DEFAULT_COLOR


def _text(value: Any) -> str:
    if value is None:
        return '<span style="color:#999">—</span>'
    return html.escape(str(value))


def highlighted(text: str, spans: Iterable[Highlight]) -> str:
    """``text`` escaped, with each span wrapped in a ``<mark>`` in its label's colour and tagged with the label."""
    out, cursor = [], 0
    for start, end, label, color in sorted(spans):
        if start < cursor or start >= end:
            continue  # overlapping spans never come from one annotator; skip rather than garble the text
        c = safe_color(color)
        out.append(html.escape(text[cursor:start]))
        out.append(
            f'<mark style="background:{c}33;border-bottom:2px solid {c};padding:1px 2px;border-radius:3px">'
            f"{html.escape(text[start:end])}"
            f'<span style="font-size:0.7em;font-weight:600;color:{c};margin-left:4px">{html.escape(label)}</span>'
            "</mark>"
        )
        cursor = end
    out.append(html.escape(text[cursor:]))
    return "".join(out)


def record_html(values: Sequence[tuple[str, str, Any]], *, spans: dict[str, list[Highlight]] | None = None,
                title: str | None = None) -> str:
    """The record's attributes as a card; ``spans`` maps an attribute name to highlights in its text."""
    spans = spans or {}
    rows = []
    for name, data_type, value in values:
        body = highlighted("" if value is None else str(value), spans[name]) if spans.get(name) else _text(value)
        size = "1.05rem" if data_type == "TEXT" else "0.95rem"
        rows.append(
            '<div style="margin-bottom:0.8rem">'
            f'<div style="font-size:0.75rem;color:#6b6f76;text-transform:uppercase;letter-spacing:0.04em">'
            f"{html.escape(name)}</div>"
            f'<div style="white-space:pre-wrap;word-break:break-word;font-size:{size};line-height:1.7">{body}</div>'
            "</div>"
        )
    heading = (f'<div style="font-size:0.8rem;color:#6b6f76;margin-bottom:0.6rem">{html.escape(title)}</div>'
               if title else "")
    return (
        '<div style="border:1px solid #e3e5e8;border-radius:0.5rem;padding:1rem 1.2rem;background:#fff">'
        f"{heading}{''.join(rows)}</div>"
    )


def token_texts(text: str, offsets: Sequence[tuple[int, int]]) -> list[str]:
    """The text of each token, for the token picker."""
    return [text[s:e] for s, e in offsets]
