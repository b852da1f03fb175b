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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import func, select
from sqlmodel import col

from core.exporters.options import HEURISTIC, MANUAL, MODEL, WEAK_SUPERVISION
from core.exporters.view import Assoc, ProjectView, RecordView, SourceKey, source_id_expr, source_of
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
    stmt = (
        select(col(LabelAssociation.task_id), col(LabelAssociation.source_type), source_id_expr(),
               col(LabelAssociation.source_name), func.max(col(LabelAssociation.confidence)))
        .where(
            col(LabelAssociation.project_id) == (view.project.id or 0),
            col(LabelAssociation.source_type).in_([SourceType.HEURISTIC.value, SourceType.MODEL.value]),
        )
        .group_by(col(LabelAssociation.task_id), col(LabelAssociation.source_type), source_id_expr(),
                  col(LabelAssociation.source_name))
    )
    out: dict[tuple[int, SourceKey], bool] = {}
    for task_id, stype, sid, sname, top in view.session.execute(stmt).all():
        key = (int(task_id), source_of(stype, sid, sname, view.heuristic_names))
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


class RowBuilder:
    """Turns a :class:`RecordView` into the export's object, following a column plan."""

    def __init__(self, view: ProjectView, columns: list[Column]) -> None:
        self.view = view
        self.columns = columns
        self.attributes = [(c.key, c.attribute) for c in columns if c.attribute is not None]
        # One step per (task, source): plain values read in the hot loop (ORM attributes and enum values are slow).
        steps: dict[tuple[int, SourceKey], list[Any]] = {}
        for c in columns:
            if c.task is None or c.source is None:
                continue
            task = c.task
            step = steps.setdefault(
                (task.id or 0, c.source),
                [task.id or 0, task.kind, task.attribute_id or 0, c.source, c.source == (MANUAL, None), None, None],
            )
            step[6 if c.confidence else 5] = c.key
        self.steps = [tuple(step) for step in steps.values()]

    def row(self, record: RecordView) -> dict[str, Any]:
        data = record.data
        out = {key: data.get(name) for key, name in self.attributes}
        for task_id, kind, attribute_id, source, manual, key, conf_key in self.steps:
            if manual:
                value, confidence = self._manual(record, task_id, kind, attribute_id), None
            else:
                value, confidence = self._machine(record, task_id, kind, attribute_id, source)
            out[key] = value
            if conf_key is not None:
                out[conf_key] = confidence
        return out

    def _manual(self, record: RecordView, task_id: int, kind: str, attribute_id: int) -> Any:
        answer = record.valid.get(task_id)
        if kind == EXTRACTION:
            return bio_tags(len(record.tokens.get(attribute_id, ())), manual_spans(answer))[0]
        if isinstance(answer, frozenset):
            return self.view.label_order(list(answer), task_id) if answer else None
        return answer

    def _machine(self, record: RecordView, task_id: int, kind: str, attribute_id: int,
                 source: SourceKey) -> tuple[Any, Any]:
        assocs = record.groups.get((task_id, source))
        if kind == EXTRACTION:
            spans = [(a.label, a.token_start, a.token_end, a.confidence) for a in assocs or ()
                     if a.token_start is not None and a.token_end is not None]
            return bio_tags(len(record.tokens.get(attribute_id, ())), spans)
        if not assocs:
            return None, None
        if len(assocs) == 1:
            return assocs[0].label, assocs[0].confidence
        if kind == MULTILABEL:
            best: dict[str, Assoc] = {}
            for a in assocs:
                if a.label not in best or (a.confidence or 0.0) > (best[a.label].confidence or 0.0):
                    best[a.label] = a
            names = self.view.label_order(list(best), task_id)
            return names, [best[n].confidence for n in names]
        top = max(assocs, key=lambda a: (a.confidence if a.confidence is not None else -1.0, a.id))
        return top.label, top.confidence


def iter_rows(view: ProjectView, columns: list[Column] | None = None) -> Iterator[dict[str, Any]]:
    """The export's objects, record by record."""
    for chunk in iter_row_chunks(view, columns):
        yield from chunk


def iter_row_chunks(view: ProjectView, columns: list[Column] | None = None) -> Iterator[list[dict[str, Any]]]:
    """The export's objects, a chunk of records at a time."""
    builder = RowBuilder(view, columns or plan_columns(view))
    for chunk in view.chunks(with_times=False):
        yield [builder.row(record) for record in chunk]


def write_json(view: ProjectView, out: IO[bytes]) -> int:
    """A JSON array, one object per line, written record by record; returns the record count."""
    encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    n = 0
    out.write(b"[")
    for rows in iter_row_chunks(view):
        if rows:
            # One write per chunk: joining in memory is cheaper than a write per record.
            out.write((b"\n" if n == 0 else b",\n") + ",\n".join(map(encode, rows)).encode("utf-8"))
            n += len(rows)
    out.write(b"\n]\n" if n else b"]\n")
    return n


def cell(value: Any) -> Any:
    """A CSV/XLSX cell: lists and objects JSON-encoded, booleans as ``true``/``false``, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def write_csv(view: ProjectView, out: IO[str]) -> int:
    """CSV with a header row, written record by record; returns the record count."""
    columns = plan_columns(view)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    n = 0
    for row in iter_rows(view, columns):
        writer.writerow([cell(v) for v in row.values()])
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
    for row in iter_rows(view, columns):
        values = [cell(v) for v in row.values()]
        # Control characters are not allowed in XLSX cells; they carry no meaning in a label export.
        sheet.append([_ILLEGAL_XLSX.sub("", v) if isinstance(v, str) else v for v in values])
        n += 1
    workbook.save(path)
    return n
