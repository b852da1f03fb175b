"""Read a file into rows of Python values, remembering each row's line.

Every reader raises :class:`~core.errors.DataImportError` naming the file and
the line for malformed input, so an import can be refused before anything is
written.
"""

from __future__ import annotations

import csv
import io
import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import DataImportError

FORMATS = ("csv", "tsv", "json", "jsonl", "xlsx", "txt", "refinery", "labelstudio")
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
    ".txt": "txt",
}


@dataclass
class RawTable:
    """Rows read from one file: ``rows[i]`` came from line ``lines[i]`` (1-based)."""

    file: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]
    # Values in CSV-like files are strings and need type conversion; JSON values are typed.
    typed: bool = True
    # Spreadsheets and CSV hold lists (multi-label answers, per-token tags) as JSON text in a cell.
    lists_as_text: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def format_from_name(name: str) -> str:
    """The format implied by a file name's extension; raise for unsupported ones."""
    suffix = Path(name).suffix.lower()
    if suffix not in EXTENSIONS:
        supported = ", ".join(sorted(EXTENSIONS))
        raise DataImportError(
            f"unsupported file extension {suffix or '(none)'!r}; supported: {supported} "
            "(or name the format with --format)",
            file=name,
        )
    return EXTENSIONS[suffix]


def decode(data: bytes, *, file: str) -> str:
    """UTF-8 text of the file (a BOM is dropped); a decoding error names the line."""
    if not data or data.isspace():  # isspace() scans without copying a large file, as strip() would
        raise DataImportError("the file is empty; nothing to import", file=file)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataImportError(
            f"not valid UTF-8 (byte 0x{data[e.start]:02x} at position {e.start}); "
            "save the file with UTF-8 encoding and import it again",
            file=file,
            line=line,
        ) from e


def read_delimited(data: bytes, *, file: str, delimiter: str) -> RawTable:
    """CSV or TSV with a header row; every row must have as many fields as the header."""
    text = decode(data, file=file)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataImportError("the file is empty; nothing to import", file=file) from None
    except csv.Error as e:
        raise DataImportError(f"malformed header: {e}", file=file, line=1) from e
    columns = [h.strip() for h in header]
    _check_header(columns, file=file)
    width = len(columns)
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    line = reader.line_num
    try:
        # The loop of a large import: checks ordered so a good row costs one comparison.
        for fields in reader:
            start = line + 1
            line = reader.line_num
            if len(fields) != width:
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue  # blank line
                raise DataImportError(
                    f"expected {width} columns as in the header, found {len(fields)}",
                    file=file,
                    line=start,
                )
            rows.append(dict(zip(columns, [v or None for v in fields], strict=False)))  # "" → None; width checked
            lines.append(start)
    except csv.Error as e:
        raise DataImportError(f"malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {e}", file=file,
                              line=reader.line_num) from e
    _require_rows(rows, file=file)
    return RawTable(file=file, columns=columns, rows=rows, lines=lines, typed=False, lists_as_text=True)


def read_json_array(data: bytes, *, file: str) -> RawTable:
    """A JSON array of objects; each object's line is where it starts."""
    text = decode(data, file=file)
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line_of(pos: int) -> int:
        return bisect_right(newlines, pos - 1) + 1

    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        if pos < len(text) and text[pos] == "{":
            raise DataImportError(
                "expected a JSON array of objects ([{...}, ...]) but the file holds one object; "
                "wrap it in [ ] or save it as JSONL",
                file=file,
                line=line_of(pos),
            )
        raise DataImportError("expected a JSON array of objects ([{...}, ...])", file=file, line=line_of(pos))
    items: list[Any] = []
    lines: list[int] = []
    pos = _skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        raise DataImportError("the JSON array is empty; nothing to import", file=file)
    while True:
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataImportError(f"malformed JSON: {e.msg} (column {e.colno})", file=file, line=e.lineno) from e
        items.append(item)
        lines.append(line_of(pos))
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            if _skip_ws(text, pos + 1) != len(text):
                raise DataImportError("unexpected content after the JSON array", file=file,
                                      line=line_of(pos + 1))
            break
        raise DataImportError("malformed JSON: expected ',' or ']' after an item", file=file,
                              line=line_of(min(pos, len(text) - 1)))
    return _objects_to_table(items, lines, file=file)


def read_jsonl(data: bytes, *, file: str) -> RawTable:
    """One JSON object per line; blank lines are skipped."""
    text = decode(data, file=file)
    items: list[Any] = []
    lines: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            items.append(json.loads(raw))
        except json.JSONDecodeError as e:
            raise DataImportError(f"malformed JSON: {e.msg} (column {e.colno})", file=file, line=number) from e
        lines.append(number)
    return _objects_to_table(items, lines, file=file)


def read_xlsx(data: bytes, *, file: str) -> RawTable:
    """The first sheet of an Excel workbook; row 1 is the header."""
    import pandas as pd

    if not data:
        raise DataImportError("the file is empty; nothing to import", file=file)
    try:
        frame = pd.read_excel(io.BytesIO(data), sheet_name=0, dtype=object, engine="openpyxl")
    except Exception as e:  # openpyxl raises zipfile/KeyError/ValueError for damaged files
        raise DataImportError(f"not a readable XLSX workbook ({type(e).__name__}: {e})", file=file) from e
    columns = [str(c).strip() for c in frame.columns]
    _check_header(columns, file=file)
    frame.columns = columns
    frame = frame.astype(object).where(frame.notna(), None)
    rows = frame.to_dict(orient="records")
    lines = [i + 2 for i in range(len(rows))]  # header is sheet row 1
    _require_rows(rows, file=file)
    return RawTable(file=file, columns=columns, rows=rows, lines=lines, typed=True, lists_as_text=True)


def read_text_lines(data: bytes, *, file: str) -> RawTable:
    """Plain text: one record per non-blank line, in an attribute named ``text``."""
    text = decode(data, file=file)
    rows, lines = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            rows.append({"text": raw.rstrip("\r")})
            lines.append(number)
    _require_rows(rows, file=file)
    return RawTable(file=file, columns=["text"], rows=rows, lines=lines, typed=True)


def _objects_to_table(items: list[Any], lines: list[int], *, file: str) -> RawTable:
    columns: dict[str, None] = {}
    for item, line in zip(items, lines, strict=True):
        if not isinstance(item, dict):
            raise DataImportError(
                f"expected an object ({{...}}) per record, found {type(item).__name__}", file=file, line=line
            )
        for key in item:
            columns.setdefault(str(key), None)
    _require_rows(items, file=file)
    return RawTable(file=file, columns=list(columns), rows=items, lines=lines, typed=True)


def _check_header(columns: list[str], *, file: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(columns, start=1):
        if not name:
            raise DataImportError(f"column {i} of the header has no name; name every column", file=file, line=1)
        if name in seen:
            raise DataImportError(f"column {name!r} appears twice in the header", file=file, line=1)
        seen.add(name)


def _require_rows(rows: list[Any], *, file: str) -> None:
    if not rows:
        raise DataImportError("the file has no records (only a header or blank lines)", file=file)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def unzip_upload(data: bytes, *, name: str, password: str | None = None) -> tuple[str, bytes]:
    """The single data file inside an uploaded ``.zip`` (AES-encrypted or plain): its name and bytes."""
    from core.archive import unzip_single
    from core.errors import ArchiveError

    try:
        return unzip_single(data, name=name, password=password)
    except ArchiveError as e:
        raise DataImportError(str(e)) from e
