"""Labeling tasks and their labels."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlmodel import Session

from core.errors import ConflictError, NotFoundError, ValidationError
from core.store.models import Attribute, AttributeType, Label, LabelingTask, Project, TaskKind

# Tableau 10: distinguishable and readable on white; label i takes colour i mod 10.
PALETTE = (
    "#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F",
    "#EDC948", "#B07AA1", "#FF9DA7", "#9C755F", "#BAB0AC",
)  # fmt: skip
# Digits first (one hand on the number row), then letters. Streamlit keeps "c" (clear cache) and
# "r" (rerun) for itself, so a label never gets those.
HOTKEYS = tuple("123456789") + tuple("qwetyuiopasdfghjklzxvbnm")
MAX_LABEL_LENGTH = 100


def parse_kind(kind: str) -> TaskKind:
    """Map a user's kind (``classification``, ``multilabel``, ``extraction``) to :class:`TaskKind`."""
    aliases = {"multi-label": "multilabel", "multi_label": "multilabel", "ner": "extraction", "span": "extraction"}
    value = aliases.get(kind.strip().lower(), kind.strip().lower())
    try:
        return TaskKind(value)
    except ValueError as e:
        choices = ", ".join(k.value for k in TaskKind)
        raise ValidationError(f"Unknown task kind {kind!r}; use one of: {choices}.") from e


def list_tasks(session: Session, project_id: int) -> list[LabelingTask]:
    """The project's tasks in creation order."""
    stmt = select(LabelingTask).where(LabelingTask.project_id == project_id).order_by(LabelingTask.id)
    return list(session.execute(stmt).scalars().all())


def find_task(session: Session, project_id: int, name: str) -> LabelingTask | None:
    stmt = select(LabelingTask).where(LabelingTask.project_id == project_id, LabelingTask.name == name)
    return session.execute(stmt).scalars().first()


def get_task(session: Session, project_id: int, name: str) -> LabelingTask:
    """The task of that name in the project; the error lists the tasks that exist."""
    task = find_task(session, project_id, name)
    if task is None:
        names = [t.name for t in list_tasks(session, project_id)]
        known = ", ".join(repr(n) for n in names) if names else "none yet"
        raise NotFoundError(f"No labeling task named {name!r} in this project. Tasks: {known}.")
    return task


def list_labels(session: Session, task_id: int) -> list[Label]:
    stmt = select(Label).where(Label.task_id == task_id).order_by(Label.position, Label.id)
    return list(session.execute(stmt).scalars().all())


def find_attribute(session: Session, project_id: int, name: str) -> Attribute | None:
    stmt = select(Attribute).where(Attribute.project_id == project_id, Attribute.name == name)
    return session.execute(stmt).scalars().first()


def list_attributes(session: Session, project_id: int) -> list[Attribute]:
    stmt = select(Attribute).where(Attribute.project_id == project_id).order_by(Attribute.position)
    return list(session.execute(stmt).scalars().all())


def _clean_label_names(names: Sequence[str]) -> list[str]:
    cleaned: list[str] = []
    for raw in names:
        name = str(raw).strip()
        if not name:
            raise ValidationError("Label names cannot be empty.")
        if len(name) > MAX_LABEL_LENGTH:
            raise ValidationError(f"Label {name[:20]!r}… is longer than {MAX_LABEL_LENGTH} characters.")
        if name in cleaned:
            raise ValidationError(f"Label {name!r} is given twice.")
        cleaned.append(name)
    return cleaned


def create_task(
    session: Session,
    *,
    project: Project,
    name: str,
    kind: str | TaskKind,
    attribute: str | None = None,
    labels: Sequence[str] = (),
) -> LabelingTask:
    """Create a labeling task with its labels.

    Parameters
    ----------
    project
        The project the task belongs to.
    name
        Unique within the project.
    kind
        ``classification``, ``multilabel`` or ``extraction``.
    attribute
        The attribute the task labels; None labels the whole record. Extraction
        needs a TEXT attribute.
    labels
        Label names; hotkeys and colours are assigned in order.
    """
    task_name = (name or "").strip()
    if not task_name:
        raise ValidationError("A labeling task needs a name; got an empty one.")
    if "__" in task_name:
        # refinery's export keys are attr__task__SOURCE: a double underscore would make them ambiguous.
        raise ValidationError(f"Task name {task_name!r} contains '__', which export column names reserve.")
    task_kind = parse_kind(kind) if isinstance(kind, str) else kind
    if find_task(session, project.id or 0, task_name) is not None:
        raise ConflictError(f"Project {project.name!r} has a task named {task_name!r} already.")
    attribute_id = None
    if attribute:
        attr = find_attribute(session, project.id or 0, attribute)
        if attr is None:
            names = ", ".join(a.name for a in list_attributes(session, project.id or 0)) or "none"
            raise NotFoundError(f"No attribute {attribute!r} in project {project.name!r}. Attributes: {names}.")
        if task_kind is TaskKind.EXTRACTION and attr.data_type != AttributeType.TEXT:
            raise ValidationError(
                f"Extraction tasks need a TEXT attribute; {attribute!r} is {attr.data_type}."
            )
        attribute_id = attr.id
    elif task_kind is TaskKind.EXTRACTION:
        raise ValidationError("Extraction tasks label spans of a text: name the attribute (--attribute).")
    task = LabelingTask(project_id=project.id or 0, name=task_name, kind=task_kind.value, attribute_id=attribute_id)
    session.add(task)
    session.flush()
    add_labels(session, task=task, names=labels)
    return task


def add_labels(session: Session, *, task: LabelingTask, names: Sequence[str]) -> list[Label]:
    """Add labels to a task; names already defined are refused."""
    cleaned = _clean_label_names(names)
    existing = list_labels(session, task.id or 0)
    taken = {label.name for label in existing}
    clash = [n for n in cleaned if n in taken]
    if clash:
        raise ConflictError(f"Task {task.name!r} has label(s) {', '.join(map(repr, clash))} already.")
    used_keys = {label.hotkey for label in existing if label.hotkey}
    free_keys = [k for k in HOTKEYS if k not in used_keys]
    start = len(existing)
    created = []
    for i, label_name in enumerate(cleaned):
        position = start + i
        created.append(
            Label(
                task_id=task.id or 0,
                name=label_name,
                color=PALETTE[position % len(PALETTE)],
                hotkey=free_keys[i] if i < len(free_keys) else None,
                position=position,
            )
        )
    session.add_all(created)
    session.flush()
    return created


def count_tasks(session: Session, project_id: int) -> int:
    stmt = select(func.count()).select_from(LabelingTask).where(LabelingTask.project_id == project_id)
    return int(session.execute(stmt).scalar_one())
