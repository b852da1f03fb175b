"""Comments on records: free text a teammate leaves on a record ("label unclear", "duplicate of 42").

A comment belongs to a record (and its project) and, optionally, to the
annotator who wrote it. The browser shows how many comments a record has and
filters on "has comment" (:class:`core.filters.CommentFilter`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

import pandas as pd
from sqlalchemy import Index, Table, delete, func, select
from sqlmodel import Field, Session, SQLModel

from core.errors import NotFoundError, ValidationError
from core.store.models import Record, utcnow
from core.store.tables import ANNOTATOR

MAX_COMMENT_LENGTH = 5000


class Comment(SQLModel, table=True):
    """One comment on one record."""

    __table_args__ = (Index("ix_comment_project_record", "project_id", "record_id"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    record_id: int = Field(foreign_key="record.id", index=True)
    annotator_id: int | None = Field(default=None, foreign_key="annotator.id")
    text: str
    created_at: datetime = Field(default_factory=utcnow)


COMMENT = cast(Table, Comment.__table__)  # type: ignore[attr-defined]


def add_comment(session: Session, *, record_id: int, text: str, annotator_id: int | None = None) -> Comment:
    """Add a comment to a record; empty or overlong text raises :class:`ValidationError`.

    Parameters
    ----------
    record_id
        The record commented on (its database id).
    text
        The comment; surrounding whitespace is dropped.
    annotator_id
        Who wrote it, or None for an anonymous comment.
    """
    cleaned = (text or "").strip()
    if not cleaned:
        raise ValidationError("A comment needs some text; got an empty one.")
    if len(cleaned) > MAX_COMMENT_LENGTH:
        raise ValidationError(
            f"Comments have at most {MAX_COMMENT_LENGTH} characters; got {len(cleaned)}. Shorten it or split it."
        )
    record = session.get(Record, record_id)
    if record is None:
        raise NotFoundError(f"No record with id {record_id}; it may have been deleted.")
    comment = Comment(project_id=record.project_id, record_id=record_id, annotator_id=annotator_id, text=cleaned)
    session.add(comment)
    session.flush()
    return comment


def list_comments(session: Session, *, record_id: int) -> pd.DataFrame:
    """The record's comments, oldest first: ``id``, ``annotator`` (name or None), ``text``, ``created_at``."""
    stmt = (
        select(COMMENT.c.id, ANNOTATOR.c.name, COMMENT.c.text, COMMENT.c.created_at)
        .outerjoin(ANNOTATOR, ANNOTATOR.c.id == COMMENT.c.annotator_id)
        .where(COMMENT.c.record_id == record_id)
        .order_by(COMMENT.c.created_at, COMMENT.c.id)
    )
    return pd.DataFrame(session.execute(stmt).all(), columns=["id", "annotator", "text", "created_at"])


def delete_comment(session: Session, *, comment_id: int) -> None:
    """Delete one comment; raise :class:`NotFoundError` when it does not exist."""
    result = session.execute(delete(COMMENT).where(COMMENT.c.id == comment_id))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFoundError(f"No comment with id {comment_id}; it may have been deleted already.")


def comment_counts(session: Session, *, record_ids: Iterable[int]) -> dict[int, int]:
    """How many comments each of ``record_ids`` has (records without comments are absent)."""
    ids = list(record_ids)
    if not ids:
        return {}
    stmt = (
        select(COMMENT.c.record_id, func.count())
        .where(COMMENT.c.record_id.in_(ids))
        .group_by(COMMENT.c.record_id)
    )
    return {int(r): int(n) for r, n in session.execute(stmt).all()}
