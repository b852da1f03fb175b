"""What an annotator sees: the queue of records to label, and what machines suggest for a record.

Queues: the records the annotator has not labeled for a task, the records
nobody has labeled by hand, a saved data slice, or the records weak
supervision is least sure of; ordered sequentially
(running id), randomly (seeded, so a refresh gives the same order) or least
confident first. Suggestions are the labels heuristics (source ``HEURISTIC``,
``MODEL``) and weak supervision (``WEAK_SUPERVISION``) gave the record.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from core.errors import ConflictError, NotFoundError, ValidationError
from core.labeling import Part, merge_span, task_labels
from core.store.models import Label, LabelAssociation, LabelingTask, Record, SourceType, TaskKind

DEFAULT_MAX_CONFIDENCE = 0.8


class QueueSource(StrEnum):
    UNLABELED = "unlabeled"  # no manual label by this annotator
    UNLABELED_ALL = "unlabeled_all"  # no manual label by anyone
    SLICE = "slice"
    UNCERTAIN = "uncertain"


class QueueOrder(StrEnum):
    SEQUENTIAL = "sequential"
    RANDOM = "random"
    LEAST_CONFIDENT = "least_confident"


@dataclass(frozen=True)
class Suggestion:
    """One machine label of a record: its source, the label and its confidence (spans for extraction)."""

    source: str  # HEURISTIC, MODEL or WEAK_SUPERVISION
    name: str  # heuristic name, model version, or "weak supervision"
    label: str
    label_id: int
    confidence: float | None
    token_start: int | None = None
    token_end: int | None = None


# --- slices -------------------------------------------------------------------------------------------------------


def list_slices(session: Session, *, project_id: int) -> list[tuple[int, str]]:
    """``(id, name)`` of the project's saved data slices, by name."""
    from core.store.slices import list_slices as stored

    return [(s.id or 0, s.name) for s in stored(session, project_id)]


def slice_record_ids(session: Session, *, slice_id: int) -> list[int]:
    """Record ids of a saved slice in its own order (a dynamic slice is evaluated now)."""
    from core.slices import slice_record_ids as resolve

    return resolve(session, slice_id=slice_id)


# --- queues -------------------------------------------------------------------------------------------------------


def labeled_by(session: Session, *, task_id: int, annotator_id: int | None) -> set[int]:
    """Records with a manual label for the task from the annotator (from anyone when None)."""
    stmt = select(LabelAssociation.record_id).where(
        LabelAssociation.task_id == task_id, LabelAssociation.source_type == SourceType.MANUAL.value
    )
    if annotator_id is not None:
        stmt = stmt.where(LabelAssociation.annotator_id == annotator_id)
    return set(session.execute(stmt.distinct()).scalars().all())


def ws_confidence(session: Session, *, task: LabelingTask) -> dict[int, float]:
    """Per record, how sure weak supervision is: the top label's confidence, or the weakest span's."""
    agg = func.min if task.kind == TaskKind.EXTRACTION else func.max
    stmt = (
        select(LabelAssociation.record_id, agg(func.coalesce(LabelAssociation.confidence, 0.0)))
        .where(LabelAssociation.task_id == task.id,
               LabelAssociation.source_type == SourceType.WEAK_SUPERVISION.value)
        .group_by(LabelAssociation.record_id)
    )
    return {int(r): float(c) for r, c in session.execute(stmt).all()}


def build_queue(
    session: Session,
    *,
    task_id: int,
    annotator_id: int | None,
    source: QueueSource | str = QueueSource.UNLABELED,
    order: QueueOrder | str = QueueOrder.SEQUENTIAL,
    seed: int = 0,
    slice_id: int | None = None,
    only_unlabeled: bool = True,
    max_confidence: float = DEFAULT_MAX_CONFIDENCE,
) -> list[int]:
    """Record ids to label, in order.

    Parameters
    ----------
    source
        ``unlabeled``: records the annotator has not labeled for the task;
        ``unlabeled_all``: records nobody has labeled by hand for the task;
        ``slice``: the records of ``slice_id``; ``uncertain``: records whose weak
        supervision confidence is below ``max_confidence`` (or that it left unlabeled).
    order
        ``sequential`` (running id; a slice's own order), ``random`` (seeded) or ``least_confident``
        (weak supervision confidence ascending; records it did not label first).
    only_unlabeled
        For ``slice`` and ``uncertain``: leave out records the annotator labeled already.
    """
    source, order = QueueSource(source), QueueOrder(order)
    task = session.get(LabelingTask, task_id)
    if task is None:
        raise NotFoundError(f"No labeling task with id {task_id}.")
    ids = list(session.execute(
        select(Record.id).where(Record.project_id == task.project_id).order_by(Record.running_id)
    ).scalars().all())
    confidence: dict[int, float] | None = None
    if source is QueueSource.SLICE:
        if slice_id is None:
            raise ValidationError("A slice queue needs a slice; pick one.")
        # The slice's own order: an outlier slice lists the most unusual records first.
        ids = slice_record_ids(session, slice_id=slice_id)
    elif source is QueueSource.UNCERTAIN:
        confidence = ws_confidence(session, task=task)
        ids = [i for i in ids if confidence.get(i, 0.0) < max_confidence]
    if source is QueueSource.UNLABELED_ALL:
        done = labeled_by(session, task_id=task_id, annotator_id=None)
        ids = [i for i in ids if i not in done]
    elif source is QueueSource.UNLABELED or only_unlabeled:
        done = labeled_by(session, task_id=task_id, annotator_id=annotator_id)
        ids = [i for i in ids if i not in done]
    if order is QueueOrder.RANDOM:
        random.Random(seed).shuffle(ids)
    elif order is QueueOrder.LEAST_CONFIDENT:
        confidence = confidence if confidence is not None else ws_confidence(session, task=task)
        ids.sort(key=lambda i: confidence.get(i, 0.0))  # stable: ties stay in running-id order
    return ids


# --- suggestions --------------------------------------------------------------------------------------------------


def suggestions(session: Session, *, task_id: int, record_id: int) -> list[Suggestion]:
    """What heuristics and weak supervision say about the record for the task; weak supervision first."""
    stmt = (
        select(LabelAssociation.source_type, LabelAssociation.source_name, LabelAssociation.source_id, Label.name,
               Label.id, LabelAssociation.confidence, LabelAssociation.token_start, LabelAssociation.token_end)
        .join(Label, Label.id == LabelAssociation.label_id)
        .where(LabelAssociation.task_id == task_id, LabelAssociation.record_id == record_id,
               LabelAssociation.source_type != SourceType.MANUAL.value)
    )
    out = []
    for src, source_name, source_id, name, label_id, conf, ts, te in session.execute(stmt).all():
        if src == SourceType.WEAK_SUPERVISION.value:
            who = "weak supervision"
        else:
            who = source_name or (f"{src.lower()} #{source_id}" if source_id is not None else src.lower())
        out.append(Suggestion(source=src, name=who, label=name, label_id=label_id, confidence=conf,
                              token_start=ts, token_end=te))
    rank = {SourceType.WEAK_SUPERVISION.value: 0}
    out.sort(key=lambda s: (rank.get(s.source, 1), s.name, s.token_start or 0, -(s.confidence or 0.0)))
    return out


def suggested_answer(task: LabelingTask, items: list[Suggestion]) -> set[Part]:
    """The answer "accept suggestion" writes: weak supervision's, else what the heuristics agree on most.

    Classification: the single top label; multi-label: every suggested label;
    extraction: the spans, dropping any that overlap a heavier span of another label.
    """
    ws = [s for s in items if s.source == SourceType.WEAK_SUPERVISION.value]
    pool = ws or items
    if not pool:
        return set()
    if task.kind == TaskKind.CLASSIFICATION:
        votes = Counter(s.label_id for s in pool)
        weight = {s.label_id: max(x.confidence or 0.0 for x in pool if x.label_id == s.label_id) for s in pool}
        best = max(votes, key=lambda lid: (votes[lid], weight[lid]))
        return {(best, None, None)}
    if task.kind == TaskKind.MULTILABEL:
        return {(s.label_id, None, None) for s in pool}
    answer: set[Part] = set()
    for s in sorted(pool, key=lambda s: -(s.confidence or 0.0)):
        if s.token_start is None or s.token_end is None:
            continue
        try:
            answer = merge_span(answer, (s.label_id, s.token_start, s.token_end))
        except ConflictError:
            continue  # a heavier span of another label covers these tokens already
    return answer


def accept_suggestion(session: Session, *, task_id: int, record_id: int, annotator_id: int,
                      seconds_spent: float | None = None) -> Any:
    """Write the suggested answer as the annotator's manual answer; raises when there is nothing to accept."""
    from core.labeling import replace_answer

    task = session.get(LabelingTask, task_id)
    if task is None:
        raise NotFoundError(f"No labeling task with id {task_id}.")
    parts = suggested_answer(task, suggestions(session, task_id=task_id, record_id=record_id))
    if not parts:
        raise NotFoundError("No heuristic or weak-supervision label for this record yet: nothing to accept.")
    return replace_answer(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id, parts=parts,
                          seconds_spent=seconds_spent)


def label_names(session: Session, *, task_id: int) -> dict[int, str]:
    return {lb.id or 0: lb.name for lb in task_labels(session, task_id)}


# --- everything the labeling page shows about one record ------------------------------------------------------------


@dataclass(frozen=True)
class LabelInfo:
    id: int
    name: str
    color: str
    hotkey: str | None


@dataclass(frozen=True)
class TaskState:
    """One task as the annotator sees it on a record: labels, their own answer, status and suggestions."""

    id: int
    name: str
    kind: str
    attribute: str | None
    labels: tuple[LabelInfo, ...]
    mine: frozenset[Part]
    status: str
    suggestions: tuple[Suggestion, ...]
    tokens: tuple[tuple[int, int], ...] = ()  # character offsets, extraction tasks only

    def label(self, label_id: int) -> LabelInfo:
        return next(lb for lb in self.labels if lb.id == label_id)


@dataclass(frozen=True)
class RecordContext:
    """A record with its attributes (in column order) and the state of every task of its project."""

    id: int
    key: str
    running_id: int
    values: tuple[tuple[str, str, Any], ...]  # (attribute, type, value)
    tasks: tuple[TaskState, ...]


def record_context(session: Session, *, record_id: int, annotator_id: int | None) -> RecordContext:
    """Read what the labeling page shows for one record and one annotator."""
    from core.labeling import answer_parts, record_token_offsets
    from core.store.tasks import list_attributes, list_tasks
    from core.store.workflow import get_status

    record = session.get(Record, record_id)
    if record is None:
        raise NotFoundError(f"No record with id {record_id}; it may have been deleted.")
    attributes = list_attributes(session, record.project_id)
    names = {a.id: a.name for a in attributes}
    states = []
    for task in list_tasks(session, record.project_id):
        tid = task.id or 0
        labels = tuple(LabelInfo(id=lb.id or 0, name=lb.name, color=lb.color, hotkey=lb.hotkey)
                       for lb in task_labels(session, tid))
        mine = answer_parts(session, task_id=tid, record_id=record_id, annotator_id=annotator_id) \
            if annotator_id is not None else set()
        tokens = record_token_offsets(session, task=task, record=record) if task.kind == TaskKind.EXTRACTION else []
        states.append(TaskState(
            id=tid, name=task.name, kind=task.kind, attribute=names.get(task.attribute_id), labels=labels,
            mine=frozenset(mine), status=get_status(session, record_id=record_id, task_id=tid).value,
            suggestions=tuple(suggestions(session, task_id=tid, record_id=record_id)),
            tokens=tuple((s, e) for s, e in tokens),
        ))
    values = tuple((a.name, a.data_type, record.data.get(a.name)) for a in attributes)
    return RecordContext(id=record_id, key=record.key, running_id=record.running_id, values=values,
                         tasks=tuple(states))
