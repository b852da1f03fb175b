"""Label Studio JSON: tasks with ``data``, ``annotations`` and ``predictions``.

Classification results (``choices``) label the whole record; span results
(``labels``) label character ranges of the attribute their ``to_name`` names.
Annotations become manual labels of their annotator (``completed_by``),
predictions become MODEL labels with their score as confidence.
"""

from __future__ import annotations

from typing import Any

from core.errors import DataImportError
from core.importers.labels import IMPORT_ANNOTATOR, LabelItem, ParsedLabels
from core.importers.readers import RawTable
from core.store.models import SourceType, TaskKind

LS_TASK_KEYS = {"id", "data", "annotations", "completions", "predictions", "meta", "created_at", "updated_at",
                "inner_id", "total_annotations", "cancelled_annotations", "total_predictions", "project",
                "updated_by", "file_upload", "comment_count", "unresolved_comment_count", "last_comment_updated_at",
                "comment_authors", "drafts", "annotators", "is_labeled", "overlap"}


def looks_like_labelstudio(table: RawTable) -> bool:
    """True when every item has a ``data`` object and only Label Studio task keys."""
    return all(isinstance(r.get("data"), dict) and set(r) <= LS_TASK_KEYS for r in table.rows[:50])


def _annotator_name(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        for key in ("email", "username", "id"):
            if completed_by.get(key) not in (None, ""):
                return str(completed_by[key])
    if completed_by in (None, ""):
        return IMPORT_ANNOTATOR
    if isinstance(completed_by, int):
        return f"user {completed_by}"
    return str(completed_by)


def parse_labelstudio(table: RawTable) -> tuple[RawTable, ParsedLabels]:
    """Records (the ``data`` objects) and the labels of annotations and predictions."""
    file = table.file
    rows: list[dict[str, Any]] = []
    parsed = ParsedLabels()
    for index, (task, line) in enumerate(zip(table.rows, table.lines, strict=True)):
        data = task.get("data")
        if not isinstance(data, dict):
            raise DataImportError("a Label Studio task needs a 'data' object", file=file, line=line)
        rows.append(dict(data))
        for annotation in task.get("annotations") or task.get("completions") or []:
            if annotation.get("was_cancelled"):
                continue
            context = {
                "source": SourceType.MANUAL,
                "annotator": _annotator_name(annotation.get("completed_by")),
                "gold": bool(annotation.get("ground_truth")),
                "seconds": _number(annotation.get("lead_time")),
            }
            _parse_results(parsed, annotation.get("result") or [], data, index, context, None, file=file, line=line)
        for prediction in task.get("predictions") or []:
            context = {"source": SourceType.MODEL, "source_name": str(prediction.get("model_version") or "prediction")}
            _parse_results(parsed, prediction.get("result") or [], data, index, context,
                           _number(prediction.get("score")), file=file, line=line)
    columns: dict[str, None] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, None)
    return RawTable(file=file, columns=list(columns), rows=rows, lines=table.lines, typed=True), parsed


def _parse_results(
    parsed: ParsedLabels,
    results: list[Any],
    data: dict[str, Any],
    row: int,
    context: dict[str, Any],
    score: float | None,
    *,
    file: str,
    line: int,
) -> None:
    for result in results:
        if not isinstance(result, dict):
            raise DataImportError("a result must be an object", file=file, line=line)
        kind = result.get("type")
        value = result.get("value") or {}
        task_name = str(result.get("from_name") or "").strip()
        if not task_name:
            raise DataImportError("a result has no 'from_name' (the control tag naming the task)", file=file,
                                  line=line)
        confidence = _number(result.get("score"))
        confidence = score if confidence is None else confidence
        if kind == "choices":
            choices = value.get("choices") or []
            spec = parsed.task(task_name, None, file=file, line=line)
            if len(choices) > 1 or spec.kind is TaskKind.MULTILABEL:
                spec.kind = TaskKind.MULTILABEL
            for choice in choices:
                spec.use(str(choice))
                parsed.items.append(LabelItem(row=row, task=task_name, label=str(choice),
                                              confidence=confidence, **context))
        elif kind == "labels":
            attribute = _span_attribute(result, data, file=file, line=line)
            spec = parsed.task(task_name, attribute, file=file, line=line)
            spec.kind = TaskKind.EXTRACTION
            start, end = value.get("start"), value.get("end")
            text = str(data.get(attribute) or "")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
                raise DataImportError(
                    f"span [{start}, {end}) of task {task_name!r} is outside the {len(text)} characters of "
                    f"{attribute!r}",
                    file=file, line=line,
                )
            if "text" in value and value["text"] != text[start:end]:
                raise DataImportError(
                    f"span [{start}, {end}) of task {task_name!r} should read {value['text']!r} but the record "
                    f"has {text[start:end]!r} there; the offsets do not match the text",
                    file=file, line=line,
                )
            for label in value.get("labels") or []:
                spec.use(str(label))
                parsed.items.append(LabelItem(row=row, task=task_name, label=str(label), char_start=start,
                                              char_end=end, confidence=confidence, **context))
        else:
            raise DataImportError(
                f"result type {kind!r} (task {task_name!r}) is not supported; Loupe imports 'choices' and "
                "'labels' results of text tasks",
                file=file, line=line,
            )


def _span_attribute(result: dict[str, Any], data: dict[str, Any], *, file: str, line: int) -> str:
    to_name = result.get("to_name")
    if to_name in data:
        return str(to_name)
    texts = [k for k, v in data.items() if isinstance(v, str)]
    if len(texts) == 1:
        return texts[0]
    raise DataImportError(
        f"cannot tell which attribute the span result (to_name {to_name!r}) labels; name the data key in to_name",
        file=file, line=line,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
