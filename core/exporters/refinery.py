"""refinery's record export ("download records") as JSON, CSV and XLSX.

One object per record: the attribute values, then per task
``{attribute}__{task}__{SOURCE}`` columns (the attribute is empty for
whole-record tasks, so those keys start with ``__``):

- ``__MANUAL``: the valid manual label (:mod:`core.valid_labels`);
- ``__WEAK_SUPERVISION`` and ``__WEAK_SUPERVISION__confidence`` (a number);
- ``__INFORMATION_SOURCE__{heuristic}`` per heuristic, ``__MODEL_CALLBACK__{model}`` per model,
  each with ``__confidence`` when that source scores its labels.

Classification values are a label name or ``null``; multi-label values a list
of names; extraction values one BIO tag per spaCy token of the attribute
(``"O"`` outside spans), with a per-token confidence list (0.0 outside spans).
CSV and XLSX hold the same columns, lists JSON-encoded in their cells.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from json.encoder import encode_basestring
from typing import IO, Any

import orjson
from sqlalchemy import func, select
from sqlmodel import col

from core.exporters.options import HEURISTIC, MANUAL, MODEL, WEAK_SUPERVISION
from core.exporters.view import LabelChunk, MachineLabel, ProjectView, SourceKey, source_of
from core.store.models import LabelAssociation, LabelingTask, SourceType, TaskKind
from core.valid_labels import Answer

OUTSIDE = "O"
EXTRACTION = TaskKind.EXTRACTION.value
MULTILABEL = TaskKind.MULTILABEL.value
_ILLEGAL_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class Column:
    """One key of the exported objects: an attribute, or a task's label (or confidence) from one source."""

    key: str
    attribute: str | None = None
    task: LabelingTask | None = None
    source: SourceKey | None = None
    confidence: bool = False


def source_suffix(source: SourceKey) -> str:
    """``MANUAL``, ``WEAK_SUPERVISION``, ``INFORMATION_SOURCE__name`` or ``MODEL_CALLBACK__name``."""
    kind, name = source
    if kind == HEURISTIC:
        return f"INFORMATION_SOURCE__{name}"
    if kind == MODEL:
        return f"MODEL_CALLBACK__{name}"
    return kind


def plan_columns(view: ProjectView) -> list[Column]:
    """The export's keys in order: attributes, then per task its sources (and confidences).

    MANUAL and WEAK_SUPERVISION columns appear for every task; a heuristic's or
    a model's only for the tasks it labeled, with a confidence column when it
    gave any of them a confidence.
    """
    columns = [Column(key=a.name, attribute=a.name) for a in view.attributes]
    machine = _machine_sources(view)
    for task in view.tasks:
        target = view.target(task)
        prefix = f"{target.name if target else ''}__{task.name}"
        for source in view.sources:
            kind = source[0]
            if kind not in (MANUAL, WEAK_SUPERVISION) and (task.id or 0, source) not in machine:
                continue
            key = f"{prefix}__{source_suffix(source)}"
            columns.append(Column(key=key, task=task, source=source))
            scored = kind == WEAK_SUPERVISION or machine.get((task.id or 0, source), False)
            if view.options.confidence and scored:
                columns.append(Column(key=f"{key}__confidence", task=task, source=source, confidence=True))
    return columns


def _machine_sources(view: ProjectView) -> dict[tuple[int, SourceKey], bool]:
    """(task id, heuristic or model source) → whether any of its labels has a confidence."""
    group = (col(LabelAssociation.task_id), col(LabelAssociation.source_type), col(LabelAssociation.heuristic_id),
             col(LabelAssociation.source_name))
    stmt = (
        select(*group, func.max(col(LabelAssociation.confidence)))
        .where(
            col(LabelAssociation.project_id) == (view.project.id or 0),
            col(LabelAssociation.source_type).in_([SourceType.HEURISTIC.value, SourceType.MODEL.value]),
        )
        .group_by(*group)
    )
    out: dict[tuple[int, SourceKey], bool] = {}
    for task_id, stype, heuristic_id, sname, top in view.session.execute(stmt).all():
        key = (int(task_id), source_of(stype, heuristic_id, sname, view.heuristic_names))
        out[key] = out.get(key, False) or top is not None
    return out


def bio_tags(
    n_tokens: int, spans: list[tuple[str, int, int, float | None]]
) -> tuple[list[str], list[float]]:
    """BIO tags and per-token confidences of ``n_tokens`` tokens from ``(label, start, end, confidence)`` spans.

    Spans are taken left to right, longer first at one start; a span that would
    overlap an earlier one is left out (BIO cannot hold overlaps).
    """
    tags = [OUTSIDE] * n_tokens
    confs = [0.0] * n_tokens
    for label, start, end, conf in sorted(spans, key=lambda s: (s[1], -(s[2] - s[1]), s[0])):
        end = min(end, n_tokens)
        if start >= end or any(t != OUTSIDE for t in tags[start:end]):
            continue
        tags[start] = f"B-{label}"
        for i in range(start + 1, end):
            tags[i] = f"I-{label}"
        value = 1.0 if conf is None else float(conf)
        for i in range(start, end):
            confs[i] = value
    return tags, confs


def manual_spans(answer: Answer | None) -> list[tuple[str, int, int, float | None]]:
    """``(label, token_start, token_end, None)`` of a valid extraction answer (empty for none)."""
    if not isinstance(answer, tuple):
        return []
    return [(s[0], s[1], s[2], None) for s in answer if s[1] is not None and s[2] is not None]


@dataclass(frozen=True)
class _Step:
    """One (task, source) of a column plan: where its value (and confidence) go in a row."""

    task_id: int
    kind: str
    attribute_id: int
    source: SourceKey
    position: int
    confidence_position: int | None


class RowBuilder:
    """Turns a :class:`LabelChunk` into the export's objects, following a column plan.

    Rows are built column by column (a list per key for the whole chunk, then
    zipped), so the per-record work is a few list lookups, not a dispatch per
    task and source.
    """

    def __init__(self, view: ProjectView, columns: list[Column]) -> None:
        self.view = view
        self.columns = columns
        self.keys = [c.key for c in columns]
        by_name = {a.name: a for a in view.all_attributes}
        attribute_columns = [(i, c.attribute) for i, c in enumerate(columns) if c.attribute is not None]
        # The attributes to read, each once, and the row positions each fills.
        self.attributes = list({name: by_name[name] for _, name in attribute_columns}.values())
        index = {a.name: i for i, a in enumerate(self.attributes)}
        self.attribute_positions = [(i, index[name]) for i, name in attribute_columns]
        steps: dict[tuple[int, SourceKey], list[Any]] = {}
        for i, c in enumerate(columns):
            if c.task is None or c.source is None:
                continue
            step = steps.setdefault((c.task.id or 0, c.source), [c.task, c.source, None, None])
            step[3 if c.confidence else 2] = i
        self.steps = [
            _Step(task.id or 0, task.kind, task.attribute_id or 0, source, position, conf_position)
            for task, source, position, conf_position in steps.values()
            if position is not None
        ]
        # Columns whose every value is a list: tags and confidences of extraction tasks.
        self.list_positions = {p for step in self.steps if step.kind == EXTRACTION
                               for p in (step.position, step.confidence_position) if p is not None}

    def column_values(self, chunk: LabelChunk) -> list[Sequence[Any]]:
        """The chunk's values key by key: one sequence per column of the plan, in record order."""
        n = len(chunk.ids)
        columns: list[Sequence[Any] | None] = [None] * len(self.keys)
        for position, i in self.attribute_positions:
            columns[position] = chunk.values[i]
        for step in self.steps:
            if step.source == (MANUAL, None):
                values, confidences = self._manual(chunk, step), None
            else:
                values, confidences = self._machine(chunk, step)
            columns[step.position] = values
            if step.confidence_position is not None:
                columns[step.confidence_position] = confidences
        # A confidence column without its label column is never planned; keep the rows whole anyway.
        return [[None] * n if column is None else column for column in columns]

    def rows(self, chunk: LabelChunk) -> list[dict[str, Any]]:
        """The chunk's objects, in record order."""
        if not self.keys:
            return [{} for _ in chunk.ids]
        keys = self.keys
        return [dict(zip(keys, values, strict=True)) for values in zip(*self.column_values(chunk), strict=True)]

    def _manual(self, chunk: LabelChunk, step: _Step) -> list[Any]:
        valid = chunk.valid.get(step.task_id, {})
        if step.kind == EXTRACTION:
            tokens = chunk.tokens.get(step.attribute_id, {})
            return [bio_tags(len(tokens.get(rid, ())), manual_spans(valid.get(rid)))[0] for rid in chunk.ids]
        if step.kind == MULTILABEL:
            order = self.view.label_order
            return [order(list(answer), step.task_id) if isinstance(answer, frozenset) and answer else None
                    for answer in map(valid.get, chunk.ids)]
        return list(map(valid.get, chunk.ids))

    def _machine(self, chunk: LabelChunk, step: _Step) -> tuple[list[Any], list[Any]]:
        one_each = chunk.columns.get((step.task_id, step.source))
        if one_each is not None:  # one label per record (never for extraction)
            if step.kind == MULTILABEL:  # a list even with one label, as the manual column has
                return [[name] for name in one_each[0]], [[confidence] for confidence in one_each[1]]
            return list(one_each[0]), list(one_each[1])
        by_record = chunk.machine.get((step.task_id, step.source), {})
        if step.kind == EXTRACTION:
            tokens = chunk.tokens.get(step.attribute_id, {})
            pairs = [bio_tags(len(tokens.get(rid, ())), _spans(by_record.get(rid))) for rid in chunk.ids]
            return [p[0] for p in pairs], [p[1] for p in pairs]
        values: list[Any] = []
        confidences: list[Any] = []
        for rid in chunk.ids:
            labels = by_record.get(rid)
            value: Any
            confidence: Any
            if labels is None:
                value = confidence = None
            elif step.kind == MULTILABEL:  # a list even with one label, as the manual column has
                value, confidence = self._multilabel(labels, step.task_id)
            elif len(labels) == 1:
                value, confidence = labels[0][0], labels[0][1]
            else:
                value, confidence = _top(labels)
            values.append(value)
            confidences.append(confidence)
        return values, confidences

    def _multilabel(self, labels: tuple[MachineLabel, ...], task_id: int) -> tuple[list[str], list[float | None]]:
        """Each label once, with its highest confidence (the first written on ties), in label order."""
        best: dict[str, float | None] = {}
        for label, confidence, _, _ in labels:
            if label not in best or (confidence or 0.0) > (best[label] or 0.0):
                best[label] = confidence
        names = self.view.label_order(list(best), task_id)
        return names, [best[n] for n in names]


def _top(labels: tuple[MachineLabel, ...]) -> tuple[str, float | None]:
    """The label with the highest confidence (None lowest), the last written on ties."""
    top = labels[0]
    for candidate in labels[1:]:
        if (candidate[1] if candidate[1] is not None else -1.0) >= (top[1] if top[1] is not None else -1.0):
            top = candidate
    return top[0], top[1]


def _spans(labels: tuple[MachineLabel, ...] | None) -> list[tuple[str, int, int, float | None]]:
    return [(label, start, end, confidence) for label, confidence, start, end in labels or ()
            if start is not None and end is not None]


def iter_rows(view: ProjectView, columns: list[Column] | None = None) -> Iterator[dict[str, Any]]:
    """The export's objects, record by record."""
    for chunk in iter_row_chunks(view, columns):
        yield from chunk


def iter_row_chunks(view: ProjectView, columns: list[Column] | None = None) -> Iterator[list[dict[str, Any]]]:
    """The export's objects, a chunk of records at a time."""
    builder = RowBuilder(view, columns or plan_columns(view))
    for chunk in view.label_chunks(attributes=builder.attributes):
        yield builder.rows(chunk)


def write_json(view: ProjectView, out: IO[bytes]) -> int:
    """A JSON array, one object per line, written a chunk of records at a time; returns the record count."""
    builder = RowBuilder(view, plan_columns(view))
    lines = JsonLines(builder.keys, list_positions=builder.list_positions)
    n = 0
    out.write(b"[")
    # The stored texts of the records can stand for the attribute columns when those come first, in order.
    covered = len(builder.attributes)
    if builder.attribute_positions != [(i, i) for i in range(covered)]:
        covered = 0
    for chunk in view.label_chunks(attributes=builder.attributes):
        if chunk.ids:
            text = lines.encode(builder.column_values(chunk), len(chunk.ids), texts=chunk.texts, covered=covered)
            # One write per chunk: joining in memory is cheaper than a write per record.
            out.write(b"\n" if n == 0 else b",\n")
            out.write(text.encode("utf-8"))
            n += len(chunk.ids)
    out.write(b"\n]\n" if n else b"]\n")
    return n


class JsonLines:
    """Encodes a chunk's columns as JSON objects, one per line, without building them.

    The output is byte for byte ``",\\n".join`` of ``json.JSONEncoder(ensure_ascii=False,
    allow_nan=False).encode(row)`` over the rows as dicts (the tests hold it to that), in a
    fraction of the time: the keys are encoded once, with the punctuation around them, and the
    values a column at a time, those of exact type ``None``, bool, int, float and str as the
    encoder writes them (``repr`` of ints and floats, its own string encoder), anything else by
    the encoder itself. A column of strings only is encoded by orjson in one call and split
    between its items (orjson escapes strings exactly as the encoder does without
    ``ensure_ascii``; its separators differ, which is why it encodes no whole rows); a column
    of a few distinct strings (labels, categories) encodes each of them once. A column of
    lists (extraction tags and confidences) is encoded in one encoder call and split between
    its items; should a label name hold the separator, the count of pieces shows it and that
    column is encoded value by value.
    """

    def __init__(self, keys: list[str], *, list_positions: set[int] | frozenset[int] = frozenset()) -> None:
        self.encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
        self.keys = keys
        self.list_positions = list_positions
        # Repeated keys (an attribute named like a label column) collapse in a dict: leave those to the encoder.
        self.by_columns = len(set(keys)) == len(keys)
        # What a line holds around its values: '{"key": ', ', "next": ', ... and '}'.
        self.constants = [("{" if i == 0 else ", ") + self.encoder.encode(k) + ": " for i, k in enumerate(keys)] + ["}"]
        self.plain: dict[type, Callable[[Any], str]] = {
            str: encode_basestring,  # what the encoder writes for a string when ensure_ascii is False
            int: int.__repr__,
            float: float.__repr__,  # non-finite values are caught below
            bool: lambda v: "true" if v else "false",
        }

    def encode(
        self, columns: list[Sequence[Any]], n: int, *, texts: Sequence[str] | None = None, covered: int = 0
    ) -> str:
        """``n`` objects from their columns (one per key), joined by ``",\\n"``.

        ``texts``, when given, are JSON objects (``{...}``) of the first ``covered`` keys, as this encoder
        writes them, one per line: copied in place of encoding those columns.
        """
        if not self.keys:
            return ",\n".join(["{}"] * n)
        if not self.by_columns:
            return ",\n".join(map(self.encoder.encode, (dict(zip(self.keys, values, strict=True))
                                                         for values in zip(*columns, strict=True))))
        if texts is None or not 0 < covered <= len(self.keys):
            covered = 0
        encoded = [self._lists(column) if i in self.list_positions else self._values(column)
                   for i, column in enumerate(columns) if i >= covered]
        # Each line is its constant pieces (keys and punctuation) interleaved with its values: one join of all
        # of them, about twice as fast as formatting line by line. Copied texts stand for the first constants
        # and values, less their closing brace.
        pieces: list[Iterable[str]] = [] if not covered else [[text[:-1] for text in texts or ()]]
        for constant, values in zip(self.constants[covered:-1], encoded, strict=True):
            pieces += (repeat(constant, n), values)
        pieces.append(repeat(self.constants[-1] + ",\n", n))
        return "".join(chain.from_iterable(zip(*pieces, strict=True)))[:-2]

    def _values(self, column: Sequence[Any]) -> list[str]:
        kinds = set(map(type, column))
        if kinds <= _STRINGS:
            return self._strings(column, with_nulls=_NONE in kinds)
        encode = self.encoder.encode
        if kinds in (_INT, _FLOAT) and column:
            text = _orjson_or_empty(column)
            # orjson writes ints (of 64 bits) as repr does, and floats with repr's digits; but it writes
            # non-finite floats as null, and those below 1e-4 without repr's exponent: leave those to repr.
            if len(text) > 2 and (kinds == _INT or ("e" not in text and "n" not in text
                                                    and ("0.0000" not in text or not _SMALL.search(text)))):
                return text[1:-1].split(",")
        if len(kinds) == 1 and (kind := next(iter(kinds))) in (int, float):
            out = list(map(self.plain[kind], column))  # one type: no dispatch per value
        else:
            get = self.plain.get
            out = ["null" if v is None else f(v) if (f := get(type(v))) is not None else encode(v) for v in column]
        if not _NON_FINITE.isdisjoint(out):  # only a float writes these bare: fail as the encoder does
            for v in column:
                if type(v) is float and not math.isfinite(v):
                    encode(v)
        return out

    def _strings(self, column: Sequence[str | None], *, with_nulls: bool) -> list[str]:
        """A column of strings and None: distinct values encoded once, or all strings in one orjson call."""
        # Labels, categories: a quarter or fewer distinct (a sample tells free text apart before hashing it all).
        if 4 * len(set(column[:64])) <= min(len(column), 64) and 4 * len(distinct := set(column)) <= len(column):
            encoded = {v: "null" if v is None else encode_basestring(v) for v in distinct}
            return list(map(encoded.__getitem__, column))
        if not with_nulls:
            text = _orjson_or_empty(column)  # '["a","b"]'; empty for a lone surrogate (the encoder writes it)
            # Items are split at '","'. Within a string a quote is escaped: a false split point would show as '\","'.
            if text and '\\","' not in text:
                pieces = text[1:-1].replace('","', '"\0"').split("\0")  # NUL is always escaped inside strings
                if len(pieces) == len(column):
                    return pieces
        return ["null" if v is None else encode_basestring(v) for v in column]

    def _lists(self, column: Sequence[Any]) -> list[str]:
        if not column or not all(type(v) is list for v in column):
            return self._values(column)
        text = self.encoder.encode(list(column))  # "[[a, b], [c]]": the items joined by "], ["
        pieces = text[2:-2].split("], [")
        if len(pieces) != len(column):
            return self._values(column)
        return ["[" + piece + "]" for piece in pieces]


_NON_FINITE = frozenset({"nan", "inf", "-inf"})
_NONE = type(None)
_STRINGS = frozenset({str, _NONE})
_INT = frozenset({int})
_FLOAT = frozenset({float})
_SMALL = re.compile(r"[\[,]-?0\.0000")  # a float below 1e-4 written without an exponent


def _orjson_or_empty(values: Sequence[Any]) -> str:
    """orjson's compact JSON array of ``values``, or "" when it cannot encode them (ints beyond 64 bits,
    lone surrogates), which the caller then leaves to the standard encoder."""
    try:
        return orjson.dumps(values).decode()
    except orjson.JSONEncodeError:
        return ""


def cell(value: Any) -> Any:
    """A CSV/XLSX cell: lists and objects JSON-encoded, booleans as ``true``/``false``, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def iter_value_rows(view: ProjectView, columns: list[Column]) -> Iterator[tuple[Any, ...]]:
    """Each record's values in the order of ``columns``, one per column.

    Positional, unlike :func:`iter_rows`: when an attribute is named like a
    label column (``__task__MANUAL``) a dict would keep one of the two values
    and the cells would shift under the header.
    """
    builder = RowBuilder(view, columns)
    for chunk in view.label_chunks(attributes=builder.attributes):
        if not chunk.ids:
            continue
        if not columns:
            yield from (() for _ in chunk.ids)
            continue
        yield from zip(*builder.column_values(chunk), strict=True)


def write_csv(view: ProjectView, out: IO[str]) -> int:
    """CSV with a header row, written a chunk of records at a time; returns the record count."""
    columns = plan_columns(view)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    n = 0
    for values in iter_value_rows(view, columns):
        writer.writerow([cell(v) for v in values])
        n += 1
    return n


def write_xlsx(view: ProjectView, path: str) -> int:
    """An XLSX workbook (one sheet, header in row 1) written in openpyxl's streaming mode."""
    from openpyxl import Workbook

    columns = plan_columns(view)
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("records")
    sheet.append([c.key for c in columns])
    n = 0
    for row in iter_value_rows(view, columns):
        values = [cell(v) for v in row]
        # Control characters are not allowed in XLSX cells; they carry no meaning in a label export.
        sheet.append([_ILLEGAL_XLSX.sub("", v) if isinstance(v, str) else v for v in values])
        n += 1
    workbook.save(path)
    return n
