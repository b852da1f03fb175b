"""Light reads the pages make on every run, before anything is served from a cache."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from core.store.models import Project


@dataclass(frozen=True)
class ProjectRef:
    """A project's identity and data version: enough to key a cache, cheap to read."""

    id: int
    name: str
    revision: int


def project_refs(session: Session) -> list[ProjectRef]:
    """Every project's id, name and revision, by name (no counting, unlike ``list_projects``)."""
    stmt = select(Project.id, Project.name, Project.revision).order_by(Project.name)  # type: ignore[call-overload]
    return [ProjectRef(id=pid, name=name, revision=rev) for pid, name, rev in session.execute(stmt).all()]
