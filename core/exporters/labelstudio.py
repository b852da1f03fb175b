"""Label Studio JSON tasks and the labeling config that shows them.

One task per record: ``data`` holds the attribute values; ``annotations`` holds
one annotation per annotator and gold star (``completed_by``; an annotator's
gold-starred labels form an annotation of their own with ``ground_truth``
true, so the star stays on exactly those labels when the file is imported
again; ``lead_time`` the seconds spent);
``predictions`` holds one prediction per machine source (weak supervision,
each heuristic, each model) with its ``score``. Classification results are
``choices``; spans are ``labels`` results with character offsets (end
exclusive) and the covered ``text``.

Label Studio has no attribute-level classification: such a task's result
points (``to_name``) at its attribute, and it comes back as a whole-record
task when the file is imported again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any
from xml.sax.saxutils import quoteattr

from core.errors import ValidationError
from core.exporters.labelbox import as_utc
from core.exporters.options import HEURISTIC, MANUAL, WEAK_SUPERVISION
from core.exporters.view import Assoc, ProjectView, RecordView, SourceKey
from core.store.models import Attribute, AttributeType, LabelingTask, TaskKind

WEAK_SUPERVISION_VERSION = "weak_supervision"


def ls_time(value: datetime | None) -> str | None:
    """Label Studio's timestamp form: ISO 8601 in UTC with a ``Z``."""
    if value is None:
        return None
    return as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def object_attributes(view: ProjectView) -> list[Attribute]:
    """Attributes shown as ``<Text>`` objects: the exported text attributes and every task target."""
    targets = {t.attribute_id for t in view.tasks if t.attribute_id}
    shown = [a for a in view.all_attributes
             if a.id in targets or (a in view.attributes and a.data_type == AttributeType.TEXT.value)]
    if not shown and view.all_attributes:
        texts = [a for a in view.all_attributes if a.data_type == AttributeType.TEXT.value]
        shown = [(texts or view.attributes or view.all_attributes)[0]]
    return shown


def _to_name(view: ProjectView, task: LabelingTask, objects: list[Attribute]) -> str:
    target = view.target(task)
    if target is not None:
        return target.name
    return objects[0].name if objects else "text"


def labeling_config(view: ProjectView) -> str:
    """The ``<View>`` XML that displays the exported tasks in Label Studio.

    Raises
    ------
    ValidationError
        When a task and an attribute share a name (Label Studio tag names must be unique).
    """
    objects = object_attributes(view)
    clash = {a.name for a in objects} & {t.name for t in view.tasks}
    if clash:
        raise ValidationError(
            f"Label Studio needs distinct tag names, but {', '.join(map(repr, sorted(clash)))} names both an "
            "attribute and a task; rename the task to export a labeling config."
        )
    hotkeys = [label.hotkey for labels in view.labels.values() for label in labels if label.hotkey]
    unique_keys = {k for k in hotkeys if hotkeys.count(k) == 1}
    lines = ["<View>"]
    for attr in objects:
        lines.append(f"  <Header value={quoteattr(attr.name)}/>")
        lines.append(f"  <Text name={quoteattr(attr.name)} value={quoteattr('$' + attr.name)}/>")
    for task in view.tasks:
        to_name = quoteattr(_to_name(view, task, objects))
        name = quoteattr(task.name)
        if task.kind == TaskKind.EXTRACTION.value:
            lines.append(f"  <Labels name={name} toName={to_name}>")
            tag = "Label"
        else:
            choice = "multiple" if task.kind == TaskKind.MULTILABEL.value else "single-radio"
            lines.append(f"  <Header value={quoteattr(task.name)}/>")
            lines.append(f"  <Choices name={name} toName={to_name} choice=\"{choice}\" showInline=\"true\">")
            tag = "Choice"
        for label in view.labels.get(task.id or 0, []):
            hotkey = f" hotkey={quoteattr(label.hotkey)}" if label.hotkey in unique_keys else ""
            lines.append(f"    <{tag} value={quoteattr(label.name)} background={quoteattr(label.color)}{hotkey}/>")
        lines.append("  </Labels>" if tag == "Label" else "  </Choices>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


class TaskBuilder:
    """Turns a :class:`RecordView` into a Label Studio task."""

    def __init__(self, view: ProjectView) -> None:
        self.view = view
        self.objects = object_attributes(view)
        self.tasks = {t.id or 0: t for t in view.tasks}
        self.to_name = {tid: _to_name(view, t, self.objects) for tid, t in self.tasks.items()}
        # Spans point into their attribute, so task targets are in ``data`` even when not picked.
        needed = {a.name for a in view.attributes} | {a.name for a in self.objects}
        self.data_names = [a.name for a in view.all_attributes if a.name in needed]

    def task(self, record: RecordView) -> dict[str, Any]:
        # Label Studio's ground_truth flag belongs to a whole annotation, Loupe's gold star to each label: one
        # annotation per annotator and gold-ness, so a star on one task does not spread to the others on import.
        manual: dict[tuple[int | None, bool], list[Assoc]] = defaultdict(list)
        machine: dict[SourceKey, list[Assoc]] = defaultdict(list)
        for a in record.labels:
            if a.source == (MANUAL, None):
                manual[(a.annotator_id, bool(a.is_gold))].append(a)
            else:
                machine[a.source].append(a)
        annotations = []
        for n, ((annotator_id, gold), assocs) in enumerate(manual.items(), start=1):
            name = self.view.annotators.get(annotator_id) if annotator_id is not None else None
            seconds = [a.seconds_spent for a in assocs if a.seconds_spent is not None]
            annotations.append({
                "id": record.running_id * 1000 + n,
                "completed_by": _user(annotator_id, name),
                "result": self._results(record, assocs, f"{record.running_id}-a{n}"),
                "was_cancelled": False,
                "ground_truth": gold,
                "created_at": ls_time(min(as_utc(a.created_at) for a in assocs)),
                "updated_at": ls_time(max(as_utc(a.updated_at) for a in assocs)),
                "lead_time": float(sum(seconds)) if seconds else None,
            })
        predictions = []
        for n, (source, assocs) in enumerate(machine.items(), start=1):
            scores = [a.confidence for a in assocs if a.confidence is not None]
            predictions.append({
                "id": record.running_id * 1000 + n,
                "model_version": _model_version(source),
                "score": round(sum(scores) / len(scores), 6) if scores else None,
                "result": self._results(record, assocs, f"{record.running_id}-p{n}", scored=True),
                "created_at": ls_time(min(as_utc(a.created_at) for a in assocs)),
            })
        return {
            "id": record.running_id,
            "data": {name: record.data.get(name) for name in self.data_names},
            "annotations": annotations,
            "predictions": predictions,
            "created_at": ls_time(record.created_at),
            "updated_at": ls_time(record.updated_at),
        }

    def _results(self, record: RecordView, assocs: list[Assoc], prefix: str, *, scored: bool = False) -> list[Any]:
        results: list[dict[str, Any]] = []
        choices: dict[int, list[Assoc]] = defaultdict(list)
        for a in assocs:
            task = self.tasks[a.task_id]
            if task.kind != TaskKind.EXTRACTION.value:
                choices[a.task_id].append(a)
                continue
            span = self._chars(record, task, a)
            if span is None:
                continue
            start, end, text = span
            item: dict[str, Any] = {
                "id": f"{prefix}-{len(results) + 1}", "from_name": task.name, "to_name": self.to_name[a.task_id],
                "type": "labels", "value": {"start": start, "end": end, "text": text, "labels": [a.label]},
            }
            if scored and a.confidence is not None:
                item["score"] = a.confidence
            results.append(item)
        for task_id, items in choices.items():
            task = self.tasks[task_id]
            names = self.view.label_order(sorted({a.label for a in items}), task_id)
            if task.kind == TaskKind.CLASSIFICATION.value:
                names = names[-1:] if len(names) > 1 else names
            item = {
                "id": f"{prefix}-{len(results) + 1}", "from_name": task.name, "to_name": self.to_name[task_id],
                "type": "choices", "value": {"choices": names},
            }
            scores = [a.confidence for a in items if a.confidence is not None and a.label in names]
            if scored and scores:
                item["score"] = max(scores)
            results.append(item)
        return results

    def _chars(self, record: RecordView, task: LabelingTask, a: Assoc) -> tuple[int, int, str] | None:
        text = record.data.get(self.to_name[task.id or 0])
        text = "" if text is None else str(text)
        start, end = a.char_start, a.char_end
        if start is None or end is None:
            offsets = record.tokens.get(task.attribute_id or 0, [])
            if a.token_start is None or a.token_end is None or a.token_end > len(offsets):
                return None
            start, end = offsets[a.token_start][0], offsets[a.token_end - 1][1]
        return start, end, text[start:end]


def _user(annotator_id: int | None, name: str | None) -> dict[str, Any] | None:
    if annotator_id is None or name is None:
        return None
    return {"id": annotator_id, "username": name, "email": name if "@" in name else ""}


def _model_version(source: SourceKey) -> str:
    kind, name = source
    if kind == WEAK_SUPERVISION:
        return WEAK_SUPERVISION_VERSION
    if kind == HEURISTIC:
        return f"heuristic:{name}"
    return str(name)


def iter_tasks(view: ProjectView) -> Iterator[dict[str, Any]]:
    """The Label Studio tasks, record by record."""
    builder = TaskBuilder(view)
    for chunk in view.chunks():
        for record in chunk:
            yield builder.task(record)


def write_labelstudio(view: ProjectView, out: IO[bytes]) -> int:
    """A JSON array of Label Studio tasks, written record by record; returns the task count."""
    encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    n = 0
    out.write(b"[")
    for task in iter_tasks(view):
        out.write((b"\n" if n == 0 else b",\n") + encode(task).encode("utf-8"))
        n += 1
    out.write(b"\n]\n" if n else b"]\n")
    return n
