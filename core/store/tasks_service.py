"""Create a labeling task in one transaction: the task, its labels and, for extraction, the tokens.

The CLI (``loupe task add``) and the Overview page both call :func:`add_task`,
so a task made either way is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from core.errors import ValidationError
from core.store.engine import session_scope
from core.store.models import Attribute, TaskKind
from core.store.projects import bump_revision, get_project
from core.store.tasks import create_task, list_labels


@dataclass(frozen=True)
class CreatedTask:
    """What :func:`add_task` made, for the CLI's line and the page's message."""

    project: str
    name: str
    kind: str
    attribute: str | None
    labels: list[str]
    tokenized: int = 0

    def summary(self) -> str:
        target = f"attribute {self.attribute!r}" if self.attribute else "the whole record"
        names = ", ".join(self.labels)
        return f"Created {self.kind} task {self.name!r} on {target} with {len(self.labels)} label(s): {names}"


def split_labels(text: str | None) -> list[str]:
    """Label names from a comma-separated string; blanks between commas are dropped."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def add_task(
    engine: Engine,
    *,
    project: str,
    name: str,
    kind: str | TaskKind,
    attribute: str | None = None,
    labels: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> CreatedTask:
    """Create a labeling task with its labels and bump the project's revision.

    Parameters
    ----------
    project
        Name of an existing project.
    name, kind, attribute, labels
        As for :func:`core.store.tasks.create_task`; ``attribute=None`` labels the whole record.
    progress
        Called with ``(done, total)`` records while an extraction task's attribute is tokenized.

    Raises
    ------
    core.errors.LoupeError
        Unknown project or attribute, a taken name, bad labels; nothing is written.
    """
    from core.tokenize import ensure_tokens, get_nlp

    if not labels:
        raise ValidationError("A labeling task needs at least one label; got none. Give names separated by commas.")
    with session_scope(engine) as session:
        target = get_project(session, project)
        task = create_task(session, project=target, name=name, kind=kind, attribute=attribute, labels=labels)
        tokenized = 0
        if task.kind == TaskKind.EXTRACTION and task.attribute_id is not None:
            attr = session.get(Attribute, task.attribute_id)
            if attr is not None:
                tokenized = ensure_tokens(session, attribute=attr, nlp=get_nlp(target.tokenizer), progress=progress)
        bump_revision(session, target.id or 0)
        label_names = [label.name for label in list_labels(session, task.id or 0)]
    return CreatedTask(
        project=target.name,
        name=task.name,
        kind=task.kind,
        attribute=attribute or None,
        labels=label_names,
        tokenized=tokenized,
    )
