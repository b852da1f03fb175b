"""The valid manual label of each record for one task, as refinery defines it.

- one annotator labeled the record: that annotator's label;
- several annotators: the gold-star label, if one is marked;
- no gold: the label all annotators agree on;
- otherwise: none.

Only valid manual labels are reference data for statistics, metrics and exports.
For multi-label tasks an annotator's answer is their set of labels; for
extraction it is their set of spans. Answers are compared as wholes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from core.store.models import Label, LabelAssociation, LabelingTask, SourceType, TaskKind

Span = tuple[str, int, int, int | None, int | None]  # label, token start, token end, char start, char end
Answer = str | frozenset[str] | tuple[Span, ...]


def resolve_answers(answers: dict[Any, Answer], gold: Answer | None) -> Answer | None:
    """The valid answer among annotators' ``answers`` (keyed by annotator), given a gold answer or None."""
    if not answers:
        return None
    if len(answers) == 1:
        return next(iter(answers.values()))
    if gold is not None:
        return gold
    distinct = set(answers.values())
    return distinct.pop() if len(distinct) == 1 else None


def valid_manual_labels(session: Session, *, task_id: int) -> dict[int, Answer]:
    """Map record id → valid manual answer for the task; records without one are absent.

    Classification answers are label names, multi-label answers frozensets of
    names, extraction answers sorted tuples of spans ``(label, token_start,
    token_end, char_start, char_end)``.
    """
    task = session.get(LabelingTask, task_id)
    if task is None:
        return {}
    stmt = (
        select(
            LabelAssociation.record_id,
            LabelAssociation.annotator_id,
            Label.name,
            LabelAssociation.is_gold,
            LabelAssociation.token_start,
            LabelAssociation.token_end,
            LabelAssociation.char_start,
            LabelAssociation.char_end,
        )
        .join(Label, Label.id == LabelAssociation.label_id)
        .where(LabelAssociation.task_id == task_id, LabelAssociation.source_type == SourceType.MANUAL.value)
    )
    parts: dict[int, dict[Any, list[Any]]] = defaultdict(lambda: defaultdict(list))
    gold_parts: dict[int, list[Any]] = defaultdict(list)
    extraction = task.kind == TaskKind.EXTRACTION.value
    for record_id, annotator_id, name, is_gold, ts, te, cs, ce in session.execute(stmt).all():
        part = (name, ts, te, cs, ce) if extraction else name
        parts[record_id][annotator_id].append(part)
        if is_gold:
            gold_parts[record_id].append(part)
    out: dict[int, Answer] = {}
    for record_id, by_annotator in parts.items():
        answers = {a: _answer(task.kind, p) for a, p in by_annotator.items()}
        gold = _answer(task.kind, gold_parts[record_id]) if gold_parts.get(record_id) else None
        valid = resolve_answers(answers, gold)
        if valid is not None:
            out[record_id] = valid
    return out


def _answer(kind: str, parts: list[Any]) -> Answer:
    if kind == TaskKind.CLASSIFICATION.value:
        # A single-label task holds one label per annotator; the latest write wins if a race left two.
        return parts[-1]
    if kind == TaskKind.MULTILABEL.value:
        return frozenset(parts)
    return tuple(sorted(set(parts), key=lambda s: (s[1] if s[1] is not None else -1, s[0])))
