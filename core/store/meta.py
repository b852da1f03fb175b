"""Facts about the store itself rather than about a project, e.g. that the demo was loaded once."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, Session, SQLModel

from core.store.models import utcnow


class StoreFlag(SQLModel, table=True):
    """A named one-time event of this store (its presence is the fact)."""

    name: str = Field(primary_key=True, max_length=100)
    created_at: datetime = Field(default_factory=utcnow)


def has_flag(session: Session, name: str) -> bool:
    return session.get(StoreFlag, name) is not None


def set_flag(session: Session, name: str) -> None:
    """Record the event (once; setting it again changes nothing)."""
    if session.get(StoreFlag, name) is None:
        session.add(StoreFlag(name=name))
        session.flush()
