"""Manual labeling: annotators, and label writes that are safe under concurrency.

Every write goes to the database at once (there is no save step) and changes
one *answer*: the labels one annotator gave one record for one task. A write
locks the answer's :class:`~core.store.workflow.ManualAnswer` row first, so two
tabs of the same annotator are serialized, while two annotators labeling the
same record both keep their labels. A single-label task holds one label per
record, task and annotator; a multi-label task a set; an extraction task a set
of token spans, where spans of different labels may not overlap.

:func:`run_write` runs a write in its own transaction and retries it when the
database reports a lock or serialization conflict.

A new manual span also adds its text to the lookup list named after its label
(:func:`core.lookup.add_manual_span_terms`), in the same transaction.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session

from core.errors import ConflictError, NotFoundError, ValidationError
from core.store.engine import session_scope
from core.store.models import (
    Annotator,
    Attribute,
    Label,
    LabelAssociation,
    LabelingTask,
    Record,
    SourceType,
    TaskKind,
    utcnow,
)
from core.store.projects import bump_revision
from core.store.workflow import (
    Status,
    _insert_for,
    bump_answer,
    get_status,
    lock_answer,
    set_status,
    touch_status,
)

T = TypeVar("T")
MAX_ANNOTATOR_NAME = 100
# A part of an answer: (label id, token start, token end); the tokens are None outside extraction.
Part = tuple[int, int | None, int | None]


@dataclass(frozen=True)
class WriteResult:
    """What a label write did: whether the answer changed and the record's status after it."""

    changed: bool
    status: Status
    labels: tuple[str, ...] = ()


# --- transactions -------------------------------------------------------------------------------------------------


def _retryable(error: DBAPIError) -> bool:
    if isinstance(error, IntegrityError):
        return True  # a concurrent insert of the same unique row won; the retry sees it
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if code in {"40001", "40P01", "55P03"}:  # serialization failure, deadlock, lock not available
        return True
    message = str(error.orig).lower()
    return isinstance(error, OperationalError) and ("locked" in message or "busy" in message)


def run_write(engine: Engine, write: Callable[[Session], T], *, attempts: int = 8) -> T:
    """Run ``write(session)`` in one transaction, retrying on lock and serialization conflicts."""
    for attempt in range(attempts):
        try:
            with session_scope(engine) as session:
                return write(session)
        except DBAPIError as e:
            if not _retryable(e) or attempt == attempts - 1:
                if _retryable(e):
                    raise ConflictError(
                        f"The database stayed busy through {attempts} attempts; nothing was written. Try again."
                    ) from e
                raise
            # Jittered backoff so two writers do not collide again in lockstep.
            time.sleep(random.uniform(0.01, 0.05) * (2**attempt))
    raise ConflictError("No attempt was made to write.")  # attempts < 1


# --- annotators ---------------------------------------------------------------------------------------------------


def clean_annotator_name(name: str) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise ValidationError("An annotator needs a name; got an empty one.")
    if len(cleaned) > MAX_ANNOTATOR_NAME:
        raise ValidationError(f"Annotator names have at most {MAX_ANNOTATOR_NAME} characters; got {len(cleaned)}.")
    return cleaned


def get_or_create_annotator(session: Session, name: str) -> Annotator:
    """The annotator of that name, created if new (safe when two sessions create it at once)."""
    cleaned = clean_annotator_name(name)
    stmt = _insert_for(session, Annotator.__table__).values(name=cleaned, created_at=utcnow())  # type: ignore[attr-defined]
    session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    return session.execute(select(Annotator).where(Annotator.name == cleaned)).scalars().one()


def find_annotator(session: Session, name: str) -> Annotator | None:
    return session.execute(select(Annotator).where(Annotator.name == " ".join(name.split()))).scalars().first()


def list_annotators(session: Session, *, project_id: int | None = None) -> list[Annotator]:
    """All annotators, or those with manual labels in the project, by name."""
    stmt = select(Annotator).order_by(Annotator.name)
    if project_id is not None:
        used = select(LabelAssociation.annotator_id).where(
            LabelAssociation.project_id == project_id, LabelAssociation.source_type == SourceType.MANUAL.value
        )
        stmt = stmt.where(Annotator.id.in_(used))  # type: ignore[union-attr]
    return list(session.execute(stmt).scalars().all())


# --- reading answers ----------------------------------------------------------------------------------------------


def task_labels(session: Session, task_id: int) -> list[Label]:
    return list(session.execute(select(Label).where(Label.task_id == task_id).order_by(Label.position, Label.id))
                .scalars().all())


def resolve_label(session: Session, *, task: LabelingTask, label: str | int | Label) -> Label:
    """A label of the task, given as a Label, an id or a name; the error lists the task's labels."""
    if isinstance(label, Label):
        if label.task_id != task.id:
            raise ValidationError(f"Label {label.name!r} belongs to another task than {task.name!r}.")
        return label
    labels = task_labels(session, task.id or 0)
    for candidate in labels:
        if (isinstance(label, int) and candidate.id == label) or candidate.name == label:
            return candidate
    names = ", ".join(repr(lb.name) for lb in labels) or "none"
    raise NotFoundError(f"Task {task.name!r} has no label {label!r}. Labels: {names}.")


def answer_parts(session: Session, *, task_id: int, record_id: int, annotator_id: int) -> set[Part]:
    """The annotator's current answer as (label id, token start, token end) parts."""
    stmt = select(LabelAssociation.label_id, LabelAssociation.token_start, LabelAssociation.token_end).where(
        LabelAssociation.task_id == task_id,
        LabelAssociation.record_id == record_id,
        LabelAssociation.annotator_id == annotator_id,
        LabelAssociation.source_type == SourceType.MANUAL.value,
    )
    return {(lid, ts, te) for lid, ts, te in session.execute(stmt).all()}


def record_token_offsets(session: Session, *, task: LabelingTask, record: Record) -> list[list[int]]:
    """Token character offsets of the task's attribute in the record, tokenizing it when not stored yet."""
    from core.store.models import Project
    from core.tokenize import get_nlp, load_tokens, store_tokens

    if task.attribute_id is None:
        return []
    offsets = load_tokens(session, attribute_id=task.attribute_id, record_ids=[record.id or 0])
    if record.id in offsets:
        return offsets[record.id or 0]
    attribute = session.get(Attribute, task.attribute_id)
    project = session.get(Project, record.project_id)
    if attribute is None or project is None:
        return []
    text = record.data.get(attribute.name)
    stored = store_tokens(session, attribute=attribute, records=[(record.id or 0, "" if text is None else str(text))],
                          nlp=get_nlp(project.tokenizer))
    return stored.get(record.id or 0, [])


# --- writing answers ----------------------------------------------------------------------------------------------


def _load(session: Session, task_id: int, record_id: int) -> tuple[LabelingTask, Record]:
    task = session.get(LabelingTask, task_id)
    if task is None:
        raise NotFoundError(f"No labeling task with id {task_id}.")
    record = session.get(Record, record_id)
    if record is None or record.project_id != task.project_id:
        raise NotFoundError(f"No record with id {record_id} in the task's project.")
    return task, record


def update_answer(
    session: Session,
    *,
    task_id: int,
    record_id: int,
    annotator_id: int,
    change: Callable[[set[Part], LabelingTask, Record], set[Part]],
    seconds_spent: float | None = None,
) -> WriteResult:
    """Lock the answer, compute its new parts with ``change(current, task, record)`` and write the difference.

    Unchanged parts keep their rows (and time spent); new rows carry
    ``seconds_spent`` and the answer's gold star. The record's status follows:
    ``labeled`` while any manual label remains, else ``unlabeled``.
    """
    task, record = _load(session, task_id, record_id)
    lock_answer(session, project_id=task.project_id, record_id=record_id, task_id=task_id, annotator_id=annotator_id)
    touch_status(session, record_id=record_id, task_id=task_id)
    before = get_status(session, record_id=record_id, task_id=task_id)
    current = answer_parts(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id)
    new = change(set(current), task, record)
    if new == current:
        return WriteResult(changed=False, status=before, labels=_names(session, task, new))
    gold = _is_gold(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id)
    removed, added = current - new, new - current
    owner = (
        LabelAssociation.task_id == task_id,
        LabelAssociation.record_id == record_id,
        LabelAssociation.annotator_id == annotator_id,
        LabelAssociation.source_type == SourceType.MANUAL.value,
    )
    for label_id, ts, te in removed:
        session.execute(delete(LabelAssociation).where(
            *owner, LabelAssociation.label_id == label_id,
            LabelAssociation.token_start.is_(None) if ts is None else LabelAssociation.token_start == ts,  # type: ignore[union-attr]
            LabelAssociation.token_end.is_(None) if te is None else LabelAssociation.token_end == te,  # type: ignore[union-attr]
        ))
    offsets = record_token_offsets(session, task=task, record=record) if task.kind == TaskKind.EXTRACTION else []
    now = utcnow()
    for label_id, ts, te in sorted(added, key=lambda p: (p[1] or 0, p[0])):
        chars = (offsets[ts][0], offsets[te - 1][1]) if ts is not None and te is not None and offsets else (None, None)
        session.add(LabelAssociation(
            project_id=task.project_id, record_id=record_id, task_id=task_id, label_id=label_id,
            source_type=SourceType.MANUAL.value, annotator_id=annotator_id, token_start=ts, token_end=te,
            char_start=chars[0], char_end=chars[1], is_gold=gold, created_at=now, updated_at=now,
            seconds_spent=seconds_spent,
        ))
    bump_answer(session, project_id=task.project_id, record_id=record_id, task_id=task_id, annotator_id=annotator_id)
    session.flush()
    _feed_lookup_lists(session, task=task, record_id=record_id, spans=added, offsets=offsets)
    labeled = bool(new) or _others_labeled(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id)
    after = Status.LABELED if labeled else Status.UNLABELED
    if after is not before:
        set_status(session, project_id=task.project_id, record_id=record_id, task_id=task_id, to=after,
                   by=annotator_id, current=before)
    bump_revision(session, task.project_id)
    return WriteResult(changed=True, status=after, labels=_names(session, task, new))


def _feed_lookup_lists(session: Session, *, task: LabelingTask, record_id: int, spans: set[Part],
                       offsets: list[list[int]]) -> None:
    """Add the text of each new manual span to the lookup list named after its label (refinery does the same).

    Every manual span write goes through :func:`update_answer`, so this one call covers
    :func:`add_span`, :func:`label` and accepting a suggestion. A span longer than a
    lookup term may be (a whole paragraph) labels the record but feeds no list.
    """
    from core.lookup import MAX_TERM_LENGTH, add_manual_span_terms

    if task.kind != TaskKind.EXTRACTION or task.attribute_id is None:
        return
    names = {lb.id: lb.name for lb in task_labels(session, task.id or 0)}
    for label_id, start, end in sorted(spans, key=lambda p: (p[1] or 0, p[0])):
        if start is None or end is None or end > len(offsets) or \
                offsets[end - 1][1] - offsets[start][0] > MAX_TERM_LENGTH:
            continue
        add_manual_span_terms(session, task_id=task.id or 0, record_id=record_id, label=names[label_id],
                              token_start=start, token_end=end)


def _names(session: Session, task: LabelingTask, parts: set[Part]) -> tuple[str, ...]:
    names = {lb.id: lb.name for lb in task_labels(session, task.id or 0)}
    return tuple(names[p[0]] for p in sorted(parts, key=lambda p: (p[1] or 0, p[0])))


def _is_gold(session: Session, *, task_id: int, record_id: int, annotator_id: int) -> bool:
    stmt = select(LabelAssociation.id).where(
        LabelAssociation.task_id == task_id, LabelAssociation.record_id == record_id,
        LabelAssociation.annotator_id == annotator_id, LabelAssociation.source_type == SourceType.MANUAL.value,
        LabelAssociation.is_gold.is_(True),  # type: ignore[attr-defined]
    )
    return session.execute(stmt.limit(1)).first() is not None


def _others_labeled(session: Session, *, task_id: int, record_id: int, annotator_id: int) -> bool:
    stmt = select(LabelAssociation.id).where(
        LabelAssociation.task_id == task_id, LabelAssociation.record_id == record_id,
        LabelAssociation.source_type == SourceType.MANUAL.value,
        (LabelAssociation.annotator_id != annotator_id) | LabelAssociation.annotator_id.is_(None),  # type: ignore[union-attr]
    )
    return session.execute(stmt.limit(1)).first() is not None


def _require_kind(task: LabelingTask, *kinds: TaskKind) -> None:
    if task.kind not in {k.value for k in kinds}:
        wanted = " or ".join(k.value for k in kinds)
        raise ValidationError(f"Task {task.name!r} is a {task.kind} task; this action needs a {wanted} task.")


def set_label(session: Session, *, task_id: int, record_id: int, annotator_id: int, label: str | int | Label,
              seconds_spent: float | None = None) -> WriteResult:
    """Give the record this label for a single-label task, replacing the annotator's previous one."""

    def change(current: set[Part], task: LabelingTask, _record: Record) -> set[Part]:
        _require_kind(task, TaskKind.CLASSIFICATION)
        return {(resolve_label(session, task=task, label=label).id or 0, None, None)}

    return update_answer(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id, change=change,
                         seconds_spent=seconds_spent)


def set_labels(session: Session, *, task_id: int, record_id: int, annotator_id: int,
               labels: Sequence[str | int | Label], seconds_spent: float | None = None) -> WriteResult:
    """Replace the annotator's label set (multi-label; a classification task takes exactly one label)."""

    def change(current: set[Part], task: LabelingTask, _record: Record) -> set[Part]:
        _require_kind(task, TaskKind.CLASSIFICATION, TaskKind.MULTILABEL)
        if task.kind == TaskKind.CLASSIFICATION and len(labels) != 1:
            raise ValidationError(f"Task {task.name!r} takes one label per record; got {len(labels)}.")
        return {(resolve_label(session, task=task, label=lb).id or 0, None, None) for lb in labels}

    return update_answer(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id, change=change,
                         seconds_spent=seconds_spent)


def toggle_label(session: Session, *, task_id: int, record_id: int, annotator_id: int, label: str | int | Label,
                 seconds_spent: float | None = None) -> WriteResult:
    """Add the label to the annotator's set for a multi-label task, or remove it if there."""

    def change(current: set[Part], task: LabelingTask, _record: Record) -> set[Part]:
        _require_kind(task, TaskKind.MULTILABEL)
        part = (resolve_label(session, task=task, label=label).id or 0, None, None)
        return current - {part} if part in current else current | {part}

    return update_answer(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id, change=change,
                         seconds_spent=seconds_spent)


def merge_span(current: set[Part], new: Part, *, names: dict[int, str] | None = None) -> set[Part]:
    """Add span ``new`` to ``current``: overlapping spans of the same label merge, of another label are refused."""
    label_id, start, end = new
    if start is None or end is None:
        raise ValidationError("A span needs a token start and end.")
    names = names or {}
    merged_start, merged_end, keep = start, end, set()
    for part in current:
        other_label, s, e = part
        if s is None or e is None or e <= start or s >= end:
            keep.add(part)
            continue
        if other_label != label_id:
            other = names.get(other_label, f"label {other_label}")
            raise ConflictError(
                f"The new span on {_tokens(start, end)} overlaps the {other!r} span on {_tokens(s, e)}; spans of "
                "different labels cannot overlap. Remove that span first or pick other tokens."
            )
        merged_start, merged_end = min(merged_start, s), max(merged_end, e)
    return keep | {(label_id, merged_start, merged_end)}


def _tokens(start: int, end: int) -> str:
    return f"token {start}" if end - start == 1 else f"tokens {start}–{end - 1}"


def add_span(session: Session, *, task_id: int, record_id: int, annotator_id: int, label: str | int | Label,
             token_start: int, token_end: int, seconds_spent: float | None = None) -> WriteResult:
    """Mark tokens ``[token_start, token_end)`` of the task's attribute with a label (extraction).

    The span's text is added to the lookup list named after the label (created when missing).
    """

    def change(current: set[Part], task: LabelingTask, record: Record) -> set[Part]:
        _require_kind(task, TaskKind.EXTRACTION)
        chosen = resolve_label(session, task=task, label=label)
        n_tokens = len(record_token_offsets(session, task=task, record=record))
        if not 0 <= token_start < token_end <= n_tokens:
            raise ValidationError(
                f"A span covers tokens start..end-1 with 0 ≤ start < end ≤ {n_tokens} (the text's token count); "
                f"got start={token_start}, end={token_end}."
            )
        names = {lb.id or 0: lb.name for lb in task_labels(session, task.id or 0)}
        return merge_span(current, (chosen.id or 0, token_start, token_end), names=names)

    return update_answer(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id, change=change,
                         seconds_spent=seconds_spent)


def remove_span(session: Session, *, task_id: int, record_id: int, annotator_id: int, label: str | int | Label,
                token_start: int, token_end: int) -> WriteResult:
    """Remove one of the annotator's spans; raises :class:`NotFoundError` when there is no such span."""

    def change(current: set[Part], task: LabelingTask, _record: Record) -> set[Part]:
        part = (resolve_label(session, task=task, label=label).id or 0, token_start, token_end)
        if part not in current:
            raise NotFoundError(f"No span on {_tokens(token_start, token_end)} with that label to remove.")
        return current - {part}

    return update_answer(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id, change=change)


def clear_answer(session: Session, *, task_id: int, record_id: int, annotator_id: int) -> WriteResult:
    """Remove all of the annotator's labels of the record for the task."""
    return update_answer(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id,
                         change=lambda _current, _task, _record: set())


def replace_answer(session: Session, *, task_id: int, record_id: int, annotator_id: int, parts: set[Part],
                   seconds_spent: float | None = None) -> WriteResult:
    """Write ``parts`` as the annotator's whole answer (used to accept a suggestion)."""
    return update_answer(session, task_id=task_id, record_id=record_id, annotator_id=annotator_id,
                         change=lambda _current, _task, _record: set(parts), seconds_spent=seconds_spent)


# --- the public one-call API (CLI and scripts) --------------------------------------------------------------------


def label(
    engine: Engine,
    *,
    project: str,
    task: str,
    record: str,
    labels: Sequence[str],
    annotator: str,
    span: tuple[int, int] | None = None,
    seconds_spent: float | None = None,
) -> WriteResult:
    """Label a record addressed by names, as ``loupe label`` does.

    Parameters
    ----------
    project, task
        Names of the project and the labeling task.
    record
        The record's key: its primary-key value, or its running id.
    labels
        One label for a classification task or an extraction span; one or more
        (the whole set) for a multi-label task.
    annotator
        Who labels; created on first use.
    span
        ``(token_start, token_end)`` for extraction tasks, end exclusive.
    """
    from core.store.projects import get_project
    from core.store.records import get_record
    from core.store.tasks import get_task

    if not labels:
        raise ValidationError("Give at least one label.")

    def write(session: Session) -> WriteResult:
        proj = get_project(session, project)
        the_task = get_task(session, proj.id or 0, task)
        the_record = get_record(session, project_id=proj.id or 0, key=record)
        who = get_or_create_annotator(session, annotator)
        ids = {"task_id": the_task.id or 0, "record_id": the_record.id or 0, "annotator_id": who.id or 0}
        if the_task.kind == TaskKind.EXTRACTION:
            if span is None or len(labels) != 1:
                raise ValidationError("Extraction tasks take one label and a token span (--span START:END).")
            return add_span(session, **ids, label=labels[0], token_start=span[0], token_end=span[1],
                            seconds_spent=seconds_spent)
        if span is not None:
            raise ValidationError(f"Task {task!r} is a {the_task.kind} task; spans are for extraction tasks.")
        return set_labels(session, **ids, labels=list(labels), seconds_spent=seconds_spent)

    return run_write(engine, write)
