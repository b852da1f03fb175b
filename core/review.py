"""Review and gold: the verify stream, review decisions, and ground truth.

A reviewer sees annotators' answers (one annotator's labels of one record for
one task) in random order and accepts or rejects each. A rejection removes the
answer's labels (the review keeps a copy) and sends the record to ``rework``,
so it is back in the annotators' queues; when every answer of a record is
accepted it is ``done``. Gold marks one annotator's answer as the record's
valid label (see :mod:`core.valid_labels`); the ground-truth manager marks a
seeded fraction of a filtered set at once, or resets gold.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import delete, select, update
from sqlmodel import Session

from core.errors import NotFoundError, ValidationError
from core.store.models import Annotator, Label, LabelAssociation, LabelingTask, Record, SourceType, TaskKind, utcnow
from core.store.projects import bump_revision
from core.store.workflow import (
    LabelReview,
    ManualAnswer,
    ReviewDecision,
    Status,
    get_status,
    lock_answer,
    set_status,
    touch_status,
)

AnswerKey = tuple[int, int | None]  # (record id, annotator id)


@dataclass(frozen=True)
class AnswerView:
    """One annotator's answer as a reviewer sees it."""

    record_id: int
    annotator_id: int | None
    annotator: str
    labels: tuple[Any, ...]  # label names, or (label, token_start, token_end) spans
    version: int
    is_gold: bool


def _answers(session: Session, *, task: LabelingTask, record_ids: Iterable[int] | None = None) -> dict[
    AnswerKey, AnswerView
]:
    stmt = (
        select(LabelAssociation.record_id, LabelAssociation.annotator_id, Annotator.name, Label.name,
               LabelAssociation.token_start, LabelAssociation.token_end, LabelAssociation.is_gold)
        .join(Label, Label.id == LabelAssociation.label_id)
        .outerjoin(Annotator, Annotator.id == LabelAssociation.annotator_id)
        .where(LabelAssociation.task_id == task.id, LabelAssociation.source_type == SourceType.MANUAL.value)
    )
    if record_ids is not None:
        stmt = stmt.where(LabelAssociation.record_id.in_(list(record_ids)))  # type: ignore[attr-defined]
    parts: dict[AnswerKey, list[Any]] = defaultdict(list)
    names: dict[AnswerKey, str] = {}
    gold: dict[AnswerKey, bool] = defaultdict(bool)
    extraction = task.kind == TaskKind.EXTRACTION
    for rid, aid, who, label, ts, te, is_gold in session.execute(stmt).all():
        key = (rid, aid)
        parts[key].append((label, ts, te) if extraction else label)
        names[key] = who or "(unknown)"
        gold[key] = gold[key] or bool(is_gold)
    versions = {
        (rid, aid): v
        for rid, aid, v in session.execute(
            select(ManualAnswer.record_id, ManualAnswer.annotator_id, ManualAnswer.version)
            .where(ManualAnswer.task_id == task.id)
        ).all()
    }
    return {
        key: AnswerView(record_id=key[0], annotator_id=key[1], annotator=names[key],
                        labels=tuple(sorted(p, key=lambda x: (x[1], x[0]) if extraction else x)),
                        version=versions.get(key, 0), is_gold=gold[key])  # type: ignore[arg-type]
        for key, p in parts.items()
    }


def _task(session: Session, task_id: int) -> LabelingTask:
    task = session.get(LabelingTask, task_id)
    if task is None:
        raise NotFoundError(f"No labeling task with id {task_id}.")
    return task


def _latest_reviews(session: Session, *, task_id: int) -> dict[AnswerKey, LabelReview]:
    stmt = select(LabelReview).where(LabelReview.task_id == task_id).order_by(LabelReview.id)
    return {(r.record_id, r.annotator_id): r for r in session.execute(stmt).scalars().all()}


def answers_of_record(session: Session, *, task_id: int, record_id: int) -> list[AnswerView]:
    """Every annotator's answer to the record for the task, by annotator name."""
    views = _answers(session, task=_task(session, task_id), record_ids=[record_id])
    return sorted(views.values(), key=lambda v: v.annotator)


def review_queue(
    session: Session,
    *,
    task_id: int,
    annotator_ids: Sequence[int] | None = None,
    label_names: Sequence[str] | None = None,
    record_ids: Iterable[int] | None = None,
    reviewer_id: int | None = None,
    include_reviewed: bool = False,
    seed: int = 0,
) -> list[AnswerKey]:
    """Answers waiting for review, in seeded random order (Label Studio's verify stream).

    An answer waits while no review judged its current version. Filters combine
    with AND: annotators, answers containing any of ``label_names``, records.
    The reviewer's own answers are left out.
    """
    task = _task(session, task_id)
    answers = _answers(session, task=task, record_ids=record_ids)
    latest = _latest_reviews(session, task_id=task_id) if not include_reviewed else {}
    wanted = set(label_names or ())
    out = []
    for key, view in sorted(answers.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        if annotator_ids is not None and view.annotator_id not in set(annotator_ids):
            continue
        if reviewer_id is not None and view.annotator_id == reviewer_id:
            continue
        if wanted and not wanted & {p[0] if isinstance(p, tuple) else p for p in view.labels}:
            continue
        review = latest.get(key)
        if review is not None and review.answer_version == view.version:
            continue
        out.append(key)
    random.Random(seed).shuffle(out)
    return out


def start_review(session: Session, *, task_id: int, record_id: int, reviewer_id: int) -> Status:
    """Move a labeled record to ``in_review`` when a reviewer opens it; returns its status."""
    task = _task(session, task_id)
    touch_status(session, record_id=record_id, task_id=task_id)
    status = get_status(session, record_id=record_id, task_id=task_id)
    if status is Status.LABELED:
        set_status(session, project_id=task.project_id, record_id=record_id, task_id=task_id, to=Status.IN_REVIEW,
                   by=reviewer_id, current=status)
        return Status.IN_REVIEW
    return status


def review_answer(
    session: Session,
    *,
    task_id: int,
    record_id: int,
    annotator_id: int | None,
    reviewer_id: int,
    decision: ReviewDecision | str,
    seconds_to_review: float | None = None,
    comment: str | None = None,
) -> Status:
    """Accept or reject one annotator's answer; returns the record's status afterwards.

    Rejecting deletes the answer's labels (the review keeps them) and moves the
    record to ``rework``. Accepting moves it to ``done`` once every answer of
    the record is accepted, else to ``in_review``.
    """
    decision = ReviewDecision(decision)
    task = _task(session, task_id)
    if annotator_id is not None:
        lock_answer(session, project_id=task.project_id, record_id=record_id, task_id=task_id,
                    annotator_id=annotator_id)
    touch_status(session, record_id=record_id, task_id=task_id)
    before = get_status(session, record_id=record_id, task_id=task_id)
    answers = _answers(session, task=task, record_ids=[record_id])
    view = answers.get((record_id, annotator_id))
    if view is None:
        raise NotFoundError("This answer has no labels any more (removed or rejected meanwhile); nothing to review.")
    now = utcnow()
    session.add(LabelReview(
        project_id=task.project_id, record_id=record_id, task_id=task_id, annotator_id=annotator_id,
        reviewer_id=reviewer_id, decision=decision.value, labels=[list(p) if isinstance(p, tuple) else p
                                                                   for p in view.labels],
        answer_version=view.version, seconds_to_review=seconds_to_review, comment=comment, created_at=now,
    ))
    if decision is ReviewDecision.REJECTED:
        owner = [LabelAssociation.task_id == task_id, LabelAssociation.record_id == record_id,
                 LabelAssociation.source_type == SourceType.MANUAL.value]
        owner.append(LabelAssociation.annotator_id.is_(None) if annotator_id is None  # type: ignore[union-attr]
                     else LabelAssociation.annotator_id == annotator_id)
        session.execute(delete(LabelAssociation).where(*owner))
        if annotator_id is not None:
            session.execute(update(ManualAnswer).where(
                ManualAnswer.record_id == record_id, ManualAnswer.task_id == task_id,  # type: ignore[arg-type]
                ManualAnswer.annotator_id == annotator_id,  # type: ignore[arg-type]
            ).values(version=ManualAnswer.version + 1, updated_at=now))
        after = Status.REWORK
    else:
        session.flush()
        latest = _latest_reviews(session, task_id=task_id)
        all_accepted = all(
            (r := latest.get(key)) is not None and r.answer_version == v.version
            and r.decision == ReviewDecision.ACCEPTED.value
            for key, v in answers.items()
        )
        after = before if before is Status.REWORK else (Status.DONE if all_accepted else Status.IN_REVIEW)
    set_status(session, project_id=task.project_id, record_id=record_id, task_id=task_id, to=after, by=reviewer_id,
               note=f"{decision.value} {view.annotator}'s label", current=before)
    bump_revision(session, task.project_id)
    return after


def reviews_frame(session: Session, *, task_id: int) -> pd.DataFrame:
    """Every review of the task, newest first: record key, annotator, reviewer, decision, labels, seconds, time."""
    reviewer = select(Annotator.id, Annotator.name).subquery()
    stmt = (
        select(Record.key, Annotator.name, reviewer.c.name, LabelReview.decision, LabelReview.labels,
               LabelReview.seconds_to_review, LabelReview.created_at)
        .join(Record, Record.id == LabelReview.record_id)
        .outerjoin(Annotator, Annotator.id == LabelReview.annotator_id)
        .join(reviewer, reviewer.c.id == LabelReview.reviewer_id)
        .where(LabelReview.task_id == task_id)
        .order_by(LabelReview.id.desc())  # type: ignore[union-attr]
    )
    columns = ["record", "annotator", "reviewer", "decision", "labels", "seconds_to_review", "at"]
    return pd.DataFrame(session.execute(stmt).all(), columns=columns)


# --- gold ---------------------------------------------------------------------------------------------------------


def set_gold(session: Session, *, task_id: int, record_id: int, annotator_id: int | None) -> int:
    """Mark the annotator's answer as the record's gold label (and nobody else's); returns labels starred."""
    task = _task(session, task_id)
    base = [LabelAssociation.task_id == task_id, LabelAssociation.record_id == record_id,
            LabelAssociation.source_type == SourceType.MANUAL.value]
    mine = (LabelAssociation.annotator_id.is_(None) if annotator_id is None  # type: ignore[union-attr]
            else LabelAssociation.annotator_id == annotator_id)
    count = session.execute(select(LabelAssociation.id).where(*base, mine)).all()
    if not count:
        raise NotFoundError("That annotator has not labeled this record for the task; there is nothing to star.")
    session.execute(update(LabelAssociation).where(*base).values(is_gold=False))
    session.execute(update(LabelAssociation).where(*base, mine).values(is_gold=True))
    bump_revision(session, task.project_id)
    return len(count)


def reset_gold(session: Session, *, task_id: int, record_ids: Iterable[int] | None = None) -> int:
    """Remove the gold star from the task's manual labels (of ``record_ids`` only, if given); returns how many."""
    task = _task(session, task_id)
    conditions = [LabelAssociation.task_id == task_id, LabelAssociation.source_type == SourceType.MANUAL.value,
                  LabelAssociation.is_gold.is_(True)]  # type: ignore[attr-defined]
    if record_ids is not None:
        conditions.append(LabelAssociation.record_id.in_(list(record_ids)))  # type: ignore[attr-defined]
    result = session.execute(update(LabelAssociation).where(*conditions).values(is_gold=False))
    bump_revision(session, task.project_id)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def mark_gold_fraction(
    session: Session,
    *,
    task_id: int,
    fraction: float,
    seed: int = 0,
    annotator_ids: Sequence[int | None] | None = None,
    label_names: Sequence[str] | None = None,
    record_ids: Iterable[int] | None = None,
) -> int:
    """Ground-truth manager: star a seeded ``fraction`` of the filtered labeled records; returns how many.

    Filters (AND): answers by any of ``annotator_ids`` (None: everyone's),
    answers containing any of ``label_names``, ``record_ids``. On each chosen
    record the filtered answer is starred; when several pass the filters, the
    one most of them gave (ties: the earliest annotator).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValidationError(f"The gold fraction is between 0 and 1; got {fraction}.")
    task = _task(session, task_id)
    wanted = set(label_names or ())
    who = None if annotator_ids is None else set(annotator_ids)
    by_record: dict[int, list[AnswerView]] = defaultdict(list)
    for (rid, aid), view in _answers(session, task=task, record_ids=record_ids).items():
        if who is not None and aid not in who:
            continue
        if wanted and not wanted & {p[0] if isinstance(p, tuple) else p for p in view.labels}:
            continue
        by_record[rid].append(view)
    candidates = sorted(by_record)
    chosen = random.Random(seed).sample(candidates, round(len(candidates) * fraction))
    for rid in chosen:
        views = by_record[rid]
        common = Counter(v.labels for v in views)
        best = max(views, key=lambda v: (common[v.labels], -(v.annotator_id or 0)))
        set_gold(session, task_id=task_id, record_id=rid, annotator_id=best.annotator_id)
    return len(chosen)
