"""Workflow of manual labeling: status per record and task, its history, answers and reviews.

A record moves, per labeling task, through ``unlabeled → labeled → in_review →
done``, or back to ``rework`` when a reviewer rejects a label (Labelbox's
``workflow_status`` and ``workflow_history``). Records without a stored status
row are ``labeled`` when they carry a manual label, else ``unlabeled``: imported
labels need no status rows.

:class:`ManualAnswer` holds one row per annotator's answer to a record and task.
Every manual write first upserts that row (``INSERT … ON CONFLICT DO UPDATE``),
which locks it until the transaction ends: two writes of the same annotator to
the same record and task are serialized on SQLite and PostgreSQL alike, while
different annotators never wait on each other. Its ``version`` tells reviews
which state of the answer they judged.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import pandas as pd
from sqlalchemy import JSON, Column, Index, UniqueConstraint, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel

from core.errors import ConflictError
from core.store.models import Annotator, LabelAssociation, SourceType, utcnow


class Status(StrEnum):
    UNLABELED = "unlabeled"
    LABELED = "labeled"
    IN_REVIEW = "in_review"
    DONE = "done"
    REWORK = "rework"


# The moves a record may make; anything else is refused with the allowed targets named.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.UNLABELED: frozenset({Status.LABELED}),
    Status.LABELED: frozenset({Status.UNLABELED, Status.IN_REVIEW, Status.DONE, Status.REWORK}),
    Status.IN_REVIEW: frozenset({Status.LABELED, Status.UNLABELED, Status.DONE, Status.REWORK}),
    Status.DONE: frozenset({Status.LABELED, Status.UNLABELED, Status.REWORK, Status.IN_REVIEW}),
    Status.REWORK: frozenset({Status.LABELED, Status.UNLABELED}),
}


class RecordStatus(SQLModel, table=True):
    """The current workflow status of one record for one task."""

    __table_args__ = (
        UniqueConstraint("record_id", "task_id"),
        Index("ix_recordstatus_task_status", "task_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    record_id: int = Field(foreign_key="record.id")
    task_id: int = Field(foreign_key="labelingtask.id")
    status: str = Status.UNLABELED.value
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: int | None = Field(default=None, foreign_key="annotator.id")


class StatusChange(SQLModel, table=True):
    """One move of a record's status: who, when, from, to."""

    __table_args__ = (Index("ix_statuschange_record_task", "record_id", "task_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    record_id: int = Field(foreign_key="record.id")
    task_id: int = Field(foreign_key="labelingtask.id")
    from_status: str
    to_status: str
    annotator_id: int | None = Field(default=None, foreign_key="annotator.id")
    note: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ManualAnswer(SQLModel, table=True):
    """One annotator's answer to one record and task: the write lock and its version."""

    __table_args__ = (UniqueConstraint("record_id", "task_id", "annotator_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    record_id: int = Field(foreign_key="record.id")
    task_id: int = Field(foreign_key="labelingtask.id", index=True)
    annotator_id: int = Field(foreign_key="annotator.id")
    version: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class ReviewDecision(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class LabelReview(SQLModel, table=True):
    """A reviewer's decision on one annotator's answer (Labelbox ``reviews``)."""

    __table_args__ = (Index("ix_labelreview_record_task", "record_id", "task_id", "annotator_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    record_id: int = Field(foreign_key="record.id")
    task_id: int = Field(foreign_key="labelingtask.id")
    annotator_id: int | None = Field(default=None, foreign_key="annotator.id")
    reviewer_id: int = Field(foreign_key="annotator.id")
    decision: str
    # The answer as it was judged: label names, or [label, token_start, token_end] spans.
    labels: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    answer_version: int = 0
    seconds_to_review: float | None = None
    comment: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


def _insert_for(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ConflictError(f"Concurrent-safe label writes need SQLite or PostgreSQL; this database is {dialect}.")


def lock_answer(session: Session, *, project_id: int, record_id: int, task_id: int, annotator_id: int) -> int:
    """Upsert the annotator's answer row without changing it; returns its version.

    Call it before reading or writing the answer's labels: the row stays locked
    until the transaction ends, so a concurrent write of the same answer waits.
    The version is left alone (the no-op ``DO UPDATE`` still locks the row on
    PostgreSQL and takes the write lock on SQLite): only a write that changes
    the answer bumps it (:func:`bump_answer`), so re-saving the same labels
    does not send a reviewed answer back to review.
    """
    table = ManualAnswer.__table__  # type: ignore[attr-defined]
    stmt = _insert_for(session, table).values(
        project_id=project_id, record_id=record_id, task_id=task_id, annotator_id=annotator_id,
        version=0, updated_at=utcnow(),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["record_id", "task_id", "annotator_id"], set_={"version": table.c.version}
    )
    session.execute(stmt)
    return answer_version(session, record_id=record_id, task_id=task_id, annotator_id=annotator_id)


def bump_answer(session: Session, *, project_id: int, record_id: int, task_id: int, annotator_id: int) -> None:
    """Record that the answer changed: a new version, so reviews of the old one no longer count."""
    now = utcnow()
    table = ManualAnswer.__table__  # type: ignore[attr-defined]
    stmt = _insert_for(session, table).values(
        project_id=project_id, record_id=record_id, task_id=task_id, annotator_id=annotator_id,
        version=1, updated_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["record_id", "task_id", "annotator_id"], set_={"version": table.c.version + 1,
                                                                       "updated_at": now}
    )
    session.execute(stmt)


def answer_version(session: Session, *, record_id: int, task_id: int, annotator_id: int | None) -> int:
    """The version of an answer (0 for answers never written through Loupe, e.g. imported ones)."""
    if annotator_id is None:
        return 0
    stmt = select(ManualAnswer.version).where(
        ManualAnswer.record_id == record_id, ManualAnswer.task_id == task_id, ManualAnswer.annotator_id == annotator_id
    )
    return int(session.execute(stmt).scalar() or 0)


def _has_manual_labels(session: Session, *, record_id: int, task_id: int) -> bool:
    stmt = select(LabelAssociation.id).where(
        LabelAssociation.record_id == record_id,
        LabelAssociation.task_id == task_id,
        LabelAssociation.source_type == SourceType.MANUAL.value,
    )
    return session.execute(stmt.limit(1)).first() is not None


def get_status(session: Session, *, record_id: int, task_id: int) -> Status:
    """The record's status for the task (derived from its manual labels when never stored)."""
    stmt = select(RecordStatus.status).where(RecordStatus.record_id == record_id, RecordStatus.task_id == task_id)
    stored = session.execute(stmt).scalar()
    if stored is not None:
        return Status(stored)
    return Status.LABELED if _has_manual_labels(session, record_id=record_id, task_id=task_id) else Status.UNLABELED


def set_status(
    session: Session,
    *,
    project_id: int,
    record_id: int,
    task_id: int,
    to: Status | str,
    by: int | None = None,
    note: str | None = None,
    current: Status | None = None,
) -> StatusChange | None:
    """Move a record to status ``to`` and log the move; None when it is there already.

    ``current`` is the status before the caller's writes in this transaction
    (the derived status changes as labels are written); read when omitted.
    Raises :class:`ConflictError` for a move :data:`TRANSITIONS` does not allow.
    """
    target = Status(to)
    before = current if current is not None else get_status(session, record_id=record_id, task_id=task_id)
    if before is target:
        return None
    if target not in TRANSITIONS[before]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[before]))
        raise ConflictError(f"A record cannot move from {before.value!r} to {target.value!r}; from {before.value!r} "
                            f"it can move to: {allowed}.")
    now = utcnow()
    stmt = _insert_for(session, RecordStatus.__table__).values(  # type: ignore[attr-defined]
        project_id=project_id, record_id=record_id, task_id=task_id, status=target.value, updated_at=now,
        updated_by=by,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["record_id", "task_id"], set_={"status": target.value, "updated_at": now, "updated_by": by}
    )
    session.execute(stmt)
    change = StatusChange(project_id=project_id, record_id=record_id, task_id=task_id, from_status=before.value,
                          to_status=target.value, annotator_id=by, note=note, created_at=now)
    session.add(change)
    session.flush()
    return change


def status_map(session: Session, *, task_id: int, record_ids: list[int] | None = None) -> dict[int, Status]:
    """Stored statuses of the task's records (records without a row are absent)."""
    stmt = select(RecordStatus.record_id, RecordStatus.status).where(RecordStatus.task_id == task_id)
    if record_ids is not None:
        stmt = stmt.where(RecordStatus.record_id.in_(record_ids))  # type: ignore[attr-defined]
    return {rid: Status(s) for rid, s in session.execute(stmt).all()}


def status_counts(session: Session, *, project_id: int, task_id: int) -> dict[str, int]:
    """How many of the project's records are in each status for the task (all statuses present)."""
    from core.store.models import Record

    labeled = (
        select(LabelAssociation.record_id)
        .where(LabelAssociation.task_id == task_id, LabelAssociation.source_type == SourceType.MANUAL.value)
        .distinct()
        .subquery()
    )
    stmt = (
        select(RecordStatus.status, labeled.c.record_id, func.count())
        .select_from(Record)
        .outerjoin(RecordStatus, and_(RecordStatus.record_id == Record.id, RecordStatus.task_id == task_id))
        .outerjoin(labeled, labeled.c.record_id == Record.id)
        .where(Record.project_id == project_id)
        .group_by(RecordStatus.status, labeled.c.record_id.is_(None))
    )
    counts = {s.value: 0 for s in Status}
    for status, any_labeled, n in session.execute(stmt).all():
        if status is None:
            status = Status.LABELED.value if any_labeled is not None else Status.UNLABELED.value
        counts[status] += int(n)
    return counts


def status_history(session: Session, *, record_id: int, task_id: int | None = None) -> pd.DataFrame:
    """The record's moves, oldest first: task id, from, to, who, when, note."""
    stmt = (
        select(StatusChange.task_id, StatusChange.from_status, StatusChange.to_status, Annotator.name,
               StatusChange.created_at, StatusChange.note)
        .outerjoin(Annotator, Annotator.id == StatusChange.annotator_id)
        .where(StatusChange.record_id == record_id)
        .order_by(StatusChange.id)
    )
    if task_id is not None:
        stmt = stmt.where(StatusChange.task_id == task_id)
    return pd.DataFrame(session.execute(stmt).all(), columns=["task_id", "from", "to", "by", "at", "note"])


def touch_status(session: Session, *, record_id: int, task_id: int) -> None:
    """Lock the record's status row (if stored) so concurrent moves are serialized."""
    session.execute(
        update(RecordStatus)
        .where(RecordStatus.record_id == record_id, RecordStatus.task_id == task_id)  # type: ignore[arg-type]
        .values(updated_at=RecordStatus.updated_at)
    )
