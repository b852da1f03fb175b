"""Labelbox Export v2 as NDJSON: one data row per line.

Each line holds ``data_row`` (``id``, ``global_key`` = the record key,
``row_data`` = the record's first text attribute, or all its values as a JSON
string when it has none, and ``details``), ``media_attributes``,
``attachments``, ``metadata_fields`` (the other exported attributes) and
``projects`` → ``{project id: {name, labels, project_details}}``.

A Labelbox label is one annotator's work on the record: classification tasks
become ``radio_answer`` (single label) or ``checklist_answers`` (multi-label)
classifications, extraction spans become ``TextEntity`` objects whose
``location`` has character ``start`` and ``end`` (end inclusive, as Labelbox
writes it) and the covered ``token``. Comments of an annotator on the record
become a ``text_answer``.

Workflow status: Loupe tracks a status per record and task
(:mod:`core.store.workflow`); a data row has one. It is the least finished of
its tasks: ``IN_REWORK`` if a task is in rework, else ``IN_REVIEW`` if one is in
review, else ``TO_LABEL`` if one has no manual label, else ``DONE``. A task
that is labeled but was never sent to review counts as ``DONE``: review is
optional in Loupe. A task without a stored status counts as ``labeled`` when
it has a manual label, else ``unlabeled``. ``workflow_history`` lists the status moves, newest first.

Export params choose the optional blocks; filters (``last_activity_at`` and
``label_created_at`` ranges, ``workflow_status``) combine with AND.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import select
from sqlmodel import col

from core.exporters.options import MANUAL, LabelboxFilters
from core.exporters.view import Assoc, ProjectView, RecordView
from core.store.comments import Comment
from core.store.models import AttributeType, TaskKind
from core.store.workflow import LabelReview, RecordStatus, StatusChange

# Loupe's per-task statuses → Labelbox workflow statuses, and the workflow task each stands for.
LB_STATUS = {"unlabeled": "TO_LABEL", "labeled": "DONE", "in_review": "IN_REVIEW", "done": "DONE",
             "rework": "IN_REWORK"}
LB_TASK_NAME = {"unlabeled": "Initial labeling task", "labeled": "Labeled", "in_review": "Initial review task",
                "done": "Done", "rework": "Rework"}
_SEVERITY = ("IN_REWORK", "IN_REVIEW", "TO_LABEL", "DONE")
WORKFLOW_STATUSES = _SEVERITY
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def lb_time(value: datetime | None) -> str | None:
    """Labelbox's timestamp form, e.g. ``2024-04-10T15:21:31.000+00:00``."""
    if value is None:
        return None
    return as_utc(value).isoformat(timespec="milliseconds")


def as_utc(value: datetime | None) -> datetime:
    """A datetime in UTC, time-zone aware (naive values are taken as UTC, as the store keeps them).

    None (a time the export did not read) is the earliest time.
    """
    if value is None:
        return EARLIEST
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def slug(text: str) -> str:
    """Labelbox's ``value`` of a feature: lower case, non-alphanumerics as ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_") or "value"


def row_status(task_statuses: list[str]) -> str:
    """The data row's workflow status from its tasks' Loupe statuses (the least finished wins)."""
    if not task_statuses:
        return "TO_LABEL"
    mapped = {LB_STATUS.get(s, "TO_LABEL") for s in task_statuses}
    return next(s for s in _SEVERITY if s in mapped)


@dataclass
class _Workflow:
    """Workflow rows of one chunk of records."""

    status: dict[tuple[int, int], str] = field(default_factory=dict)
    history: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    reviews: dict[tuple[int, int | None], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    review_seconds: dict[tuple[int, int | None], float] = field(default_factory=lambda: defaultdict(float))
    activity: dict[int, datetime] = field(default_factory=dict)
    comments: dict[tuple[int, int | None], list[str]] = field(default_factory=lambda: defaultdict(list))


class DataRowBuilder:
    """Turns records into Labelbox data rows, honouring params and filters."""

    def __init__(self, view: ProjectView) -> None:
        self.view = view
        self.params = view.options.labelbox_params
        self.filters = view.options.labelbox_filters
        self.tasks = {t.id or 0: t for t in view.tasks}
        texts = [a for a in view.all_attributes if a.data_type == AttributeType.TEXT.value]
        self.row_attribute = texts[0] if texts else None
        self.metadata_attributes = [a for a in view.attributes if a is not self.row_attribute]
        self.project_key = f"loupe-project-{view.project.id}"

    def chunk_workflow(self, records: list[RecordView]) -> _Workflow:
        """Statuses, history, reviews and comments of a chunk's records."""
        out = _Workflow()
        ids = [r.id for r in records]
        task_ids = list(self.tasks)
        session = self.view.session
        names = self.view.annotators
        if ids and task_ids:
            statuses = select(col(RecordStatus.record_id), col(RecordStatus.task_id), col(RecordStatus.status)).where(
                col(RecordStatus.record_id).in_(ids), col(RecordStatus.task_id).in_(task_ids)
            )
            out.status = {(r, t): s for r, t, s in session.execute(statuses).all()}
            changes = (
                select(col(StatusChange.record_id), col(StatusChange.task_id), col(StatusChange.from_status),
                       col(StatusChange.to_status), col(StatusChange.annotator_id), col(StatusChange.created_at))
                .where(col(StatusChange.record_id).in_(ids), col(StatusChange.task_id).in_(task_ids))
                .order_by(col(StatusChange.created_at).desc(), col(StatusChange.id).desc())
            )
            for rid, tid, before, after, who, at in session.execute(changes).all():
                out.history[rid].append({
                    "action": _action(before, after),
                    "created_at": lb_time(at),
                    "created_by": names.get(who),
                    "previous_task_name": LB_TASK_NAME.get(before, before),
                    "previous_task_id": before,
                    "next_task_name": LB_TASK_NAME.get(after, after),
                    "next_task_id": after,
                    "labeling_task": self.tasks[tid].name,
                })
                _touch(out.activity, rid, at)
            reviews = (
                select(col(LabelReview.id), col(LabelReview.record_id), col(LabelReview.task_id),
                       col(LabelReview.annotator_id), col(LabelReview.reviewer_id), col(LabelReview.decision),
                       col(LabelReview.seconds_to_review), col(LabelReview.comment), col(LabelReview.created_at))
                .where(col(LabelReview.record_id).in_(ids), col(LabelReview.task_id).in_(task_ids))
                .order_by(col(LabelReview.id))
            )
            for rev_id, rid, tid, annotator, reviewer, decision, seconds, comment, at in session.execute(reviews):
                out.reviews[(rid, annotator)].append({
                    "id": f"loupe-review-{rev_id}",
                    "created_at": lb_time(at),
                    "created_by": names.get(reviewer),
                    "review_action": "Approve" if decision == "accepted" else "Reject",
                    "labeling_task": self.tasks[tid].name,
                    "comment": comment,
                })
                out.review_seconds[(rid, annotator)] += float(seconds or 0.0)
                _touch(out.activity, rid, at)
        if ids:
            comments = (select(col(Comment.record_id), col(Comment.annotator_id), col(Comment.text))
                        .where(col(Comment.record_id).in_(ids)).order_by(col(Comment.id)))
            for rid, who, text in session.execute(comments).all():
                out.comments[(rid, who)].append(str(text))
        return out

    def data_row(self, record: RecordView, wf: _Workflow) -> dict[str, Any] | None:
        """The record's NDJSON object, or None when a filter leaves it out."""
        manual = [a for a in record.labels if a.source == (MANUAL, None)]
        statuses = []
        for tid in self.tasks:
            stored = wf.status.get((record.id, tid))
            if stored is None:
                stored = "labeled" if any(a.task_id == tid for a in manual) else "unlabeled"
            statuses.append(stored)
        status = row_status(statuses)
        last_activity = as_utc(record.updated_at)
        for a in manual:
            last_activity = max(last_activity, as_utc(a.updated_at))
        if record.id in wf.activity:
            last_activity = max(last_activity, wf.activity[record.id])
        if not self._passes(self.filters, last_activity, manual, status):
            return None
        data_row: dict[str, Any] = {
            "id": f"loupe-record-{record.id}",
            "global_key": record.key,
            "row_data": self._row_data(record),
        }
        if self.params.data_row_details:
            data_row["details"] = {
                "dataset_id": self.project_key,
                "dataset_name": self.view.project.name,
                "created_at": lb_time(record.created_at),
                "updated_at": lb_time(record.updated_at),
                "last_activity_at": lb_time(last_activity),
                "created_by": None,
            }
        out: dict[str, Any] = {"data_row": data_row, "media_attributes": {"mime_type": self._mime()}}
        if self.params.attachments:
            out["attachments"] = []
        if self.params.metadata_fields:
            out["metadata_fields"] = [
                {"schema_id": f"loupe-attribute-{a.id}", "schema_name": a.name, "value": record.data.get(a.name)}
                for a in self.metadata_attributes
            ]
        project: dict[str, Any] = {"name": self.view.project.name, "labels": self._labels(record, manual, wf)}
        if self.params.project_details:
            project["project_details"] = {
                "ontology_id": f"loupe-ontology-{self.view.project.id}",
                "task_id": status,
                "task_name": LB_TASK_NAME.get(_task_of(status), status),
                "batch_id": f"loupe-batch-{self.view.project.id}",
                "batch_name": self.view.project.name,
                "workflow_status": status,
                "priority": 5,
                "consensus_expected_label_count": 1,
                "workflow_history": wf.history.get(record.id, []),
            }
        out["projects"] = {self.project_key: project}
        return out

    def _passes(self, filters: LabelboxFilters, last_activity: datetime, manual: list[Assoc], status: str) -> bool:
        if filters.workflow_status and status != filters.workflow_status:
            return False
        if filters.last_activity_at and not _within(last_activity, filters.last_activity_at):
            return False
        if filters.label_created_at:
            window = filters.label_created_at
            return any(_within(a.created_at, window) for a in manual)
        return True

    def _row_data(self, record: RecordView) -> str:
        if self.row_attribute is not None:
            value = record.data.get(self.row_attribute.name)
            return "" if value is None else str(value)
        return json.dumps(record.data, ensure_ascii=False)

    def _mime(self) -> str:
        return "text/plain" if self.row_attribute is not None else "application/json"

    def _labels(self, record: RecordView, manual: list[Assoc], wf: _Workflow) -> list[dict[str, Any]]:
        by_annotator: dict[int | None, list[Assoc]] = defaultdict(list)
        for a in manual:
            by_annotator[a.annotator_id].append(a)
        labels = []
        for annotator_id, assocs in by_annotator.items():
            created = min(as_utc(a.created_at) for a in assocs)
            updated = max(as_utc(a.updated_at) for a in assocs)
            label: dict[str, Any] = {
                "label_kind": "Default",
                "version": "1.0.0",
                "id": f"loupe-label-{record.id}-{annotator_id if annotator_id is not None else 0}",
            }
            if self.params.label_details:
                label["label_details"] = {
                    "created_at": lb_time(created),
                    "updated_at": lb_time(updated),
                    "created_by": self.view.annotators.get(annotator_id) if annotator_id is not None else None,
                    "content_last_updated_at": lb_time(updated),
                    "reviews": wf.reviews.get((record.id, annotator_id), []),
                }
            if self.params.performance_details:
                seconds = sum(a.seconds_spent or 0.0 for a in assocs)
                label["performance_details"] = {
                    "seconds_to_create": round(seconds),
                    "seconds_to_review": round(wf.review_seconds.get((record.id, annotator_id), 0.0)),
                    "skipped": False,
                }
            label["annotations"] = self._annotations(record, assocs, wf.comments.get((record.id, annotator_id), []))
            labels.append(label)
        return labels

    def _annotations(self, record: RecordView, assocs: list[Assoc], comments: list[str]) -> dict[str, Any]:
        objects: list[dict[str, Any]] = []
        classifications: list[dict[str, Any]] = []
        by_task: dict[int, list[Assoc]] = defaultdict(list)
        for a in assocs:
            by_task[a.task_id].append(a)
        for task_id, items in by_task.items():
            task = self.tasks[task_id]
            schema = f"loupe-task-{task_id}"
            if task.kind == TaskKind.EXTRACTION.value:
                for a in items:
                    location = self._location(record, task.attribute_id or 0, a)
                    if location is None:
                        continue
                    objects.append({
                        "feature_id": f"loupe-assoc-{a.id}", "feature_schema_id": f"loupe-label-{a.label_id}",
                        "name": a.label, "value": slug(a.label), "annotation_kind": "TextEntity",
                        "classifications": [], "location": location,
                    })
                continue
            base = {"feature_id": f"loupe-answer-{record.id}-{task_id}-{items[0].annotator_id or 0}",
                    "feature_schema_id": schema, "name": task.name, "value": slug(task.name)}
            ordered = sorted(items, key=lambda a: self.view.label_position.get(a.label_id, 0))
            if task.kind == TaskKind.MULTILABEL.value:
                base["checklist_answers"] = [_answer(a) for a in ordered]
            else:
                base["radio_answer"] = _answer(ordered[-1])
            classifications.append(base)
        if comments:
            classifications.append({
                "feature_id": f"loupe-comment-{record.id}", "feature_schema_id": "loupe-comment",
                "name": "Comment", "value": "comment", "text_answer": {"content": "\n".join(comments)},
            })
        return {"objects": objects, "classifications": classifications, "relationships": []}

    def _location(self, record: RecordView, attribute_id: int, a: Assoc) -> dict[str, Any] | None:
        attr = self.view.attribute_by_id.get(attribute_id)
        text = "" if attr is None or record.data.get(attr.name) is None else str(record.data.get(attr.name))
        start, end = a.char_start, a.char_end
        if start is None or end is None:
            offsets = record.tokens.get(attribute_id, [])
            if a.token_start is None or a.token_end is None or a.token_end > len(offsets):
                return None
            start, end = offsets[a.token_start][0], offsets[a.token_end - 1][1]
        return {"start": start, "end": end - 1, "token": text[start:end]}


def _answer(a: Assoc) -> dict[str, Any]:
    return {"feature_id": f"loupe-assoc-{a.id}", "feature_schema_id": f"loupe-label-{a.label_id}",
            "name": a.label, "value": slug(a.label), "classifications": []}


def _action(before: str, after: str) -> str:
    if before == "in_review" and after == "done":
        return "Approve"
    if after == "rework":
        return "Reject"
    return "Move"


def _task_of(status: str) -> str:
    return {"TO_LABEL": "unlabeled", "IN_REVIEW": "in_review", "IN_REWORK": "rework", "DONE": "done"}[status]


def _touch(activity: dict[int, datetime], rid: int, at: datetime | None) -> None:
    if at is not None:
        at = as_utc(at)
        activity[rid] = max(activity.get(rid, at), at)


def _within(value: datetime | None, window: tuple[datetime | None, datetime | None]) -> bool:
    value = as_utc(value)
    start, end = window
    return (start is None or value >= as_utc(start)) and (end is None or value <= as_utc(end))


def iter_data_rows(view: ProjectView) -> Iterator[dict[str, Any]]:
    """The Labelbox data rows that pass the filters, record by record."""
    builder = DataRowBuilder(view)
    for chunk in view.chunks(sources=[(MANUAL, None)]):
        wf = builder.chunk_workflow(chunk)
        for record in chunk:
            row = builder.data_row(record, wf)
            if row is not None:
                yield row


def write_labelbox(view: ProjectView, out: IO[bytes]) -> int:
    """NDJSON, one data row per line; returns the number of data rows written."""
    encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    n = 0
    for row in iter_data_rows(view):
        out.write(encode(row).encode("utf-8") + b"\n")
        n += 1
    return n
