"""Data slices: named subsets of a project's records.

One table serves refinery's three kinds:

- ``static``: frozen record ids (``record_ids``);
- ``dynamic``: a saved filter (``filter``, JSON), evaluated when the slice is opened;
- ``outlier``: record ids with an outlier score each (``record_ids`` and ``scores``, best first).

Record ids are the store's ``Record.id`` values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, select
from sqlmodel import Field, Session, SQLModel

from core.errors import ConflictError, NotFoundError, ValidationError
from core.store.models import utcnow

MAX_SLICE_NAME = 100


class SliceKind(StrEnum):
    STATIC = "static"
    DYNAMIC = "dynamic"
    OUTLIER = "outlier"


class DataSlice(SQLModel, table=True):
    """A named subset of a project's records (static ids, a saved filter, or outliers with scores)."""

    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_dataslice_project_name"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    name: str = Field(max_length=MAX_SLICE_NAME)
    kind: str = SliceKind.STATIC.value
    # Dynamic slices: the saved filter, in whatever JSON form the data browser defines.
    filter: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    record_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Outlier slices: one score per record id, in the same order.
    scores: list[float] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


def _check(name: str, kind: str | SliceKind, record_ids: Sequence[int], scores: Sequence[float] | None,
           filter: dict[str, Any] | None) -> tuple[str, SliceKind]:
    cleaned = (name or "").strip()
    if not cleaned:
        raise ValidationError("A data slice needs a name; got an empty one.")
    if len(cleaned) > MAX_SLICE_NAME:
        raise ValidationError(f"Slice names have at most {MAX_SLICE_NAME} characters; got {len(cleaned)}.")
    try:
        slice_kind = SliceKind(str(kind))
    except ValueError as e:
        choices = ", ".join(k.value for k in SliceKind)
        raise ValidationError(f"Unknown slice kind {kind!r}; use one of: {choices}.") from e
    if scores is not None and len(scores) != len(record_ids):
        raise ValidationError(
            f"An outlier slice needs one score per record, but got {len(record_ids)} record ids "
            f"and {len(scores)} scores."
        )
    if slice_kind is SliceKind.DYNAMIC and filter is None:
        raise ValidationError("A dynamic slice is a saved filter: pass the filter.")
    return cleaned, slice_kind


def find_slice(session: Session, *, project_id: int, name: str) -> DataSlice | None:
    stmt = select(DataSlice).where(DataSlice.project_id == project_id, DataSlice.name == name.strip())  # type: ignore[arg-type]
    return session.execute(stmt).scalars().first()


def get_slice(session: Session, *, project_id: int, name: str) -> DataSlice:
    """The slice of that name; the error lists the project's slices."""
    found = find_slice(session, project_id=project_id, name=name)
    if found is None:
        names = ", ".join(repr(s.name) for s in list_slices(session, project_id)) or "none yet"
        raise NotFoundError(f"No data slice named {name!r} in this project. Slices: {names}.")
    return found


def list_slices(session: Session, project_id: int, *, kind: str | SliceKind | None = None) -> list[DataSlice]:
    """The project's slices by name, optionally of one kind."""
    stmt = select(DataSlice).where(DataSlice.project_id == project_id)  # type: ignore[arg-type]
    if kind is not None:
        stmt = stmt.where(DataSlice.kind == str(kind))  # type: ignore[arg-type]
    return list(session.execute(stmt.order_by(DataSlice.name)).scalars().all())  # type: ignore[arg-type]


def save_slice(
    session: Session,
    *,
    project_id: int,
    name: str,
    kind: str | SliceKind,
    record_ids: Sequence[int] = (),
    scores: Sequence[float] | None = None,
    filter: dict[str, Any] | None = None,
    replace: bool = False,
) -> DataSlice:
    """Create a slice, or overwrite one of the same name when ``replace`` is true.

    Raises
    ------
    ConflictError
        A slice of that name exists and ``replace`` is false.
    ValidationError
        Empty name, unknown kind, scores not matching the ids, or a dynamic slice without a filter.
    """
    cleaned, slice_kind = _check(name, kind, record_ids, scores, filter)
    ids = [int(r) for r in record_ids]
    values = [float(s) for s in scores] if scores is not None else None
    existing = find_slice(session, project_id=project_id, name=cleaned)
    if existing is not None and not replace:
        raise ConflictError(f"A data slice named {cleaned!r} exists already; choose another name or replace it.")
    if existing is None:
        existing = DataSlice(project_id=project_id, name=cleaned)
        session.add(existing)
    existing.kind = slice_kind.value
    existing.record_ids = ids
    existing.scores = values
    existing.filter = filter
    existing.updated_at = utcnow()
    session.flush()
    return existing


def delete_slice(session: Session, *, project_id: int, name: str) -> None:
    """Delete a slice by name; raise :class:`NotFoundError` if there is none."""
    session.delete(get_slice(session, project_id=project_id, name=name))
    session.flush()
