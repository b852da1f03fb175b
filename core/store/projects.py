"""Create, find, list and delete projects."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlmodel import Session, SQLModel

from core.errors import ConflictError, NotFoundError, ValidationError
from core.store.models import LabelAssociation, LabelingTask, Project, Record

MAX_NAME_LENGTH = 100


@dataclass(frozen=True)
class ProjectSummary:
    """What the Projects page and ``loupe projects`` show for one project."""

    id: int
    name: str
    description: str
    records: int
    tasks: int
    manual_labels: int
    revision: int

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "records": self.records,
            "tasks": self.tasks,
            "manual_labels": self.manual_labels,
            "revision": self.revision,
        }


def validate_project_name(name: str) -> str:
    """Strip and check a project name; raise :class:`ValidationError` if unusable."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise ValidationError("A project needs a name; got an empty one.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValidationError(
            f"Project names have at most {MAX_NAME_LENGTH} characters; got {len(cleaned)}."
        )
    return cleaned


def create_project(session: Session, *, name: str, description: str = "") -> Project:
    """Create an empty project; raise :class:`ConflictError` if the name is taken."""
    name = validate_project_name(name)
    if find_project(session, name) is not None:
        raise ConflictError(f"A project named {name!r} exists already; choose another name.")
    from core.tokenize import default_tokenizer

    project = Project(name=name, description=description, tokenizer=default_tokenizer())
    session.add(project)
    session.flush()
    return project


def find_project(session: Session, name: str) -> Project | None:
    """The project of that name, or None."""
    return session.exec(select(Project).where(Project.name == name.strip())).scalars().first()  # type: ignore[call-overload]


def get_project(session: Session, name: str) -> Project:
    """The project of that name; raise :class:`NotFoundError` naming the ones that exist."""
    project = find_project(session, name)
    if project is None:
        names = [p.name for p in session.exec(select(Project).order_by(Project.name)).scalars()]  # type: ignore[call-overload]
        known = ", ".join(repr(n) for n in names) if names else "none yet"
        raise NotFoundError(f"No project named {name!r}. Projects: {known}.")
    return project


def get_project_by_id(session: Session, project_id: int) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFoundError(f"No project with id {project_id}.")
    return project


def list_projects(session: Session) -> list[ProjectSummary]:
    """All projects with their record, task and manual-label counts, by name."""
    records = dict(
        session.execute(select(Record.project_id, func.count()).group_by(Record.project_id)).all()
    )
    tasks = dict(
        session.execute(
            select(LabelingTask.project_id, func.count()).group_by(LabelingTask.project_id)
        ).all()
    )
    manual = dict(
        session.execute(
            select(LabelAssociation.project_id, func.count())
            .where(LabelAssociation.source_type == "MANUAL")
            .group_by(LabelAssociation.project_id)
        ).all()
    )
    projects = session.execute(select(Project).order_by(Project.name)).scalars().all()
    return [
        ProjectSummary(
            id=p.id or 0,
            name=p.name,
            description=p.description,
            records=int(records.get(p.id, 0)),
            tasks=int(tasks.get(p.id, 0)),
            manual_labels=int(manual.get(p.id, 0)),
            revision=p.revision,
        )
        for p in projects
    ]


def bump_revision(session: Session, project_id: int) -> None:
    """Mark the project's data as changed (cache keys of the pages include the revision)."""
    session.execute(
        update(Project).where(Project.id == project_id).values(revision=Project.revision + 1)  # type: ignore[arg-type]
    )


def delete_project(session: Session, *, name: str) -> None:
    """Delete a project, every row that belongs to it, and its Chroma collections.

    Walks all tables in reverse dependency order, so tables added by later
    modules (heuristics, slices, ...) are covered as long as they carry a
    ``project_id``, ``record_id`` or ``task_id`` column.
    """
    project = get_project(session, name)
    pid = project.id
    # Its search index is derived from the rows below; left behind, it would outlive them.
    from core.index import drop_project_indexes

    drop_project_indexes(session, project_id=pid or 0)
    record_ids = select(Record.id).where(Record.project_id == pid).scalar_subquery()
    task_ids = select(LabelingTask.id).where(LabelingTask.project_id == pid).scalar_subquery()
    for table in reversed(SQLModel.metadata.sorted_tables):
        if table.name == Project.__tablename__:
            continue
        columns = table.c
        if "project_id" in columns:
            session.execute(delete(table).where(columns.project_id == pid))
        elif "record_id" in columns:
            session.execute(delete(table).where(columns.record_id.in_(record_ids)))
        elif "task_id" in columns:
            session.execute(delete(table).where(columns.task_id.in_(task_ids)))
    session.execute(delete(Project).where(Project.id == pid))  # type: ignore[arg-type]
