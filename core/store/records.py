"""Read records: pages for the grid, lookups by key, counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from core.errors import NotFoundError, ValidationError
from core.store.models import Attribute, AttributeType, Record
from core.store.tasks import list_attributes

MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class RecordPage:
    """One page of records: ``rows`` are dicts with ``id`` (the record key) and attribute values.

    A project may have an attribute named ``id`` that is not its key; its value then takes the
    ``id`` place in ``rows``. ``keys`` always holds the record keys, in row order: address records
    (``get_record``) with those.
    """

    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int
    keys: list[str] = field(default_factory=list)


def attribute_expr(attribute: Attribute) -> ColumnElement[Any]:
    """SQL expression for an attribute's value, portable across SQLite and PostgreSQL."""
    element = Record.data[attribute.name]  # type: ignore[index]
    if attribute.data_type == AttributeType.INTEGER:
        return element.as_integer()
    if attribute.data_type == AttributeType.FLOAT:
        return element.as_float()
    if attribute.data_type == AttributeType.BOOLEAN:
        return element.as_boolean()
    return element.as_string()


def search_condition(attributes: list[Attribute], text: str) -> ColumnElement[bool]:
    """Case-insensitive substring match on any TEXT or CATEGORY attribute, or on the record key."""
    pattern = f"%{_escape_like(text.strip())}%"
    searchable = [a for a in attributes if a.data_type in (AttributeType.TEXT, AttributeType.CATEGORY)]
    clauses = [attribute_expr(a).ilike(pattern, escape="\\") for a in searchable]
    clauses.append(cast(Record.key, String).ilike(pattern, escape="\\"))
    return or_(*clauses)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def page_records(
    session: Session,
    *,
    project_id: int,
    offset: int = 0,
    limit: int = 100,
    search: str | None = None,
    sort_by: str | None = None,
    descending: bool = False,
) -> RecordPage:
    """A page of records, filtered by a text search and sorted by an attribute, computed in SQL."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"Page size must be between 1 and {MAX_PAGE_SIZE}; got {limit}.")
    if offset < 0:
        raise ValidationError(f"Page offset cannot be negative; got {offset}.")
    attributes = list_attributes(session, project_id)
    conditions: list[ColumnElement[bool]] = [Record.project_id == project_id]  # type: ignore[list-item]
    if search and search.strip():
        conditions.append(search_condition(attributes, search))
    where = and_(*conditions)
    total = int(session.execute(select(func.count()).select_from(Record).where(where)).scalar_one())
    order: list[Any] = []
    if sort_by:
        by_name = {a.name: a for a in attributes}
        if sort_by not in by_name:
            raise ValidationError(f"Cannot sort by {sort_by!r}: not an attribute.")
        expr = attribute_expr(by_name[sort_by])
        # Empty values last in both directions, and on both backends (PostgreSQL puts NULLs first when
        # descending, SQLite when ascending).
        order.append((expr.desc() if descending else expr.asc()).nulls_last())
    order.append(Record.running_id)
    stmt = select(Record.key, Record.data).where(where).order_by(*order).offset(offset).limit(limit)
    names = [a.name for a in attributes]
    found = session.execute(stmt).all()
    rows = [{"id": key, **{n: data.get(n) for n in names}} for key, data in found]
    return RecordPage(rows=rows, total=total, offset=offset, limit=limit, keys=[key for key, _ in found])


def count_records(session: Session, project_id: int) -> int:
    return int(session.execute(select(func.count()).where(Record.project_id == project_id)).scalar_one())


def get_record(session: Session, *, project_id: int, key: str) -> Record:
    """A record by its primary-key value (or running id when the project has no primary key)."""
    stmt = select(Record).where(Record.project_id == project_id, Record.key == str(key))
    record = session.execute(stmt).scalars().first()
    if record is None:
        raise NotFoundError(f"No record with id {key!r} in this project.")
    return record
