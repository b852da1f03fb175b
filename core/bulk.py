"""Bulk actions on the browser's filtered set, each a handful of set-based SQL statements.

Every action runs inside the caller's session and never commits: wrap it in
:func:`core.store.session_scope` (or :func:`core.labeling.run_write`, which
retries on lock conflicts) and the whole action is **one transaction** — all
records change, or none. The filter is evaluated once, in SQL; no record list
travels through Python, so an action on a million records costs a few
statements, not a million.

Pass ``expected_count`` (the count the user confirmed) and an action refuses
to run when the filtered set has changed size since, instead of writing to
records nobody looked at.

Manual writes follow :mod:`core.labeling`'s protocol: the annotator's
:class:`~core.store.workflow.ManualAnswer` rows are upserted first (locking
them, bumping their version), new labels keep the answer's gold star, and
records whose stored workflow status is not ``labeled`` move there, with a
history row each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, literal, not_, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from core.errors import ConflictError, ValidationError
from core.filters import Filter, FilterContext, compile_filter
from core.store.models import LabelingTask, Record, SourceType, TaskKind, utcnow
from core.store.projects import bump_revision
from core.store.tables import ASSOC, RECORD
from core.store.workflow import ManualAnswer, RecordStatus, Status, StatusChange

MANUAL = SourceType.MANUAL.value
WEAK = SourceType.WEAK_SUPERVISION.value


@dataclass(frozen=True)
class BulkResult:
    """What a bulk action did.

    Attributes
    ----------
    matched
        Records in the filtered set.
    changed
        Records whose data changed (the others already had it, or were skipped).
    skipped
        Records left alone for a reason ``message`` gives.
    """

    action: str
    matched: int
    changed: int
    skipped: int = 0
    message: str = ""

    def summary(self) -> str:
        text = f"{self.action}: {self.changed} of {self.matched} record(s) changed"
        if self.skipped:
            text += f", {self.skipped} skipped"
        return text + (f" ({self.message})" if self.message else "") + "."


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ConflictError(f"Bulk label writes need SQLite or PostgreSQL; this database is {dialect}.")


def _matched(session: Session, where: Any, expected_count: int | None, action: str) -> int:
    count = int(session.execute(select(func.count()).select_from(Record).where(where)).scalar_one())
    if expected_count is not None and count != expected_count:
        raise ConflictError(
            f"{action}: the filter now matches {count} record(s), not the {expected_count} you confirmed "
            "(someone changed the data meanwhile). Review the records and confirm again."
        )
    return count


def _annotator_id(session: Session, name: str) -> int:
    from core.labeling import get_or_create_annotator

    return get_or_create_annotator(session, name).id or 0


def _mine(alias: Any, task_id: int, annotator_id: int) -> list[Any]:
    return [alias.c.task_id == task_id, alias.c.source_type == MANUAL, alias.c.annotator_id == annotator_id]


def _lock_answers(session: Session, *, task: LabelingTask, annotator_id: int, changed: Any, now: datetime) -> int:
    """Upsert the annotator's answer rows of the ``changed`` records (locks them); returns how many."""
    table = ManualAnswer.__table__  # type: ignore[attr-defined]
    source = select(
        literal(task.project_id), RECORD.c.id, literal(task.id), literal(annotator_id), literal(1), literal(now)
    ).where(RECORD.c.id.in_(changed))
    stmt = _insert(session, table).from_select(
        ["project_id", "record_id", "task_id", "annotator_id", "version", "updated_at"], source
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["record_id", "task_id", "annotator_id"],
        set_={"version": table.c.version + 1, "updated_at": now},
    )
    session.execute(stmt)
    marked = select(func.count()).select_from(table).where(
        table.c.task_id == task.id, table.c.annotator_id == annotator_id, table.c.updated_at == now
    )
    return int(session.execute(marked).scalar_one())


def _locked(task: LabelingTask, annotator_id: int, now: datetime) -> Any:
    """The records this action marked in :func:`_lock_answers`: its set of changed records, evaluated once."""
    table = ManualAnswer.__table__  # type: ignore[attr-defined]
    return select(table.c.record_id).where(
        table.c.task_id == task.id, table.c.annotator_id == annotator_id, table.c.updated_at == now
    )


def _move_to_labeled(session: Session, *, task: LabelingTask, annotator_id: int, records: Any, note: str) -> None:
    """Stored statuses other than ``labeled`` move to ``labeled`` (history first, then the status)."""
    status = RecordStatus.__table__  # type: ignore[attr-defined]
    moving = and_(status.c.task_id == task.id, status.c.record_id.in_(records), status.c.status != Status.LABELED.value)
    now = utcnow()
    history = select(
        status.c.project_id, status.c.record_id, status.c.task_id, status.c.status,
        literal(Status.LABELED.value), literal(annotator_id), literal(note), literal(now),
    ).where(moving)
    session.execute(insert(StatusChange.__table__).from_select(  # type: ignore[attr-defined]
        ["project_id", "record_id", "task_id", "from_status", "to_status", "annotator_id", "note", "created_at"],
        history,
    ))
    session.execute(update(status).where(moving).values(status=Status.LABELED.value, updated_at=now,
                                                        updated_by=annotator_id))


def _was_gold(task_id: int, annotator_id: int, record: Any) -> Any:
    old = ASSOC.alias()
    return exists(select(old.c.id).where(*_mine(old, task_id, annotator_id), old.c.record_id == record,
                                       old.c.is_gold.is_(True)))


def assign_label(
    session: Session,
    *,
    project_id: int,
    task: str,
    label: str,
    annotator: str,
    flt: Filter | None,
    expected_count: int | None = None,
) -> BulkResult:
    """Give every filtered record ``label`` as ``annotator``'s manual label.

    Classification replaces the annotator's label; multi-label adds the label
    to the annotator's set. Records whose answer already is that are left as
    they are.

    Raises
    ------
    ValidationError
        An extraction task (spans cannot be assigned in bulk: accept weak supervision instead).
    ConflictError
        The filtered set no longer has ``expected_count`` records.
    """
    ctx = FilterContext(session, project_id)
    target_task = ctx.task(task)
    if target_task.kind == TaskKind.EXTRACTION.value:
        raise ValidationError(
            f"Task {task!r} labels spans; one label cannot be given to many records at once. "
            "Accept the weak-supervision spans in bulk instead, or label the records one by one."
        )
    label_id = ctx.label_ids(target_task, [label])[0]
    where = compile_filter(session, project_id=project_id, flt=flt, style="in", context=ctx)
    matched = _matched(session, where, expected_count, "Assign label")
    who = _annotator_id(session, annotator)
    tid = target_task.id or 0
    m = ASSOC.alias()
    mine_here = [*_mine(m, tid, who), m.c.record_id == RECORD.c.id]
    has_it = exists(select(m.c.id).where(*mine_here, m.c.label_id == label_id))
    if target_task.kind == TaskKind.CLASSIFICATION.value:
        other = exists(select(m.c.id).where(*mine_here, m.c.label_id != label_id))
        differs = or_(not_(has_it), other)
    else:
        differs = not_(has_it)
    changed_now = select(RECORD.c.id).where(where, differs)
    now = utcnow()
    changed = _lock_answers(session, task=target_task, annotator_id=who, changed=changed_now, now=now)
    records = _locked(target_task, who, now)
    # Find the rows this action writes again after the insert: everything above the current highest id.
    before = int(session.execute(select(func.coalesce(func.max(ASSOC.c.id), 0))).scalar_one())
    la = ASSOC
    rows = select(
        literal(project_id), RECORD.c.id, literal(tid), literal(label_id), literal(MANUAL), literal(who),
        _was_gold(tid, who, RECORD.c.id), literal(now), literal(now),
    ).where(RECORD.c.id.in_(records))
    session.execute(insert(la).from_select(
        ["project_id", "record_id", "task_id", "label_id", "source_type", "annotator_id", "is_gold", "created_at",
         "updated_at"], rows,
    ))
    if target_task.kind == TaskKind.CLASSIFICATION.value:
        session.execute(delete(la).where(
            la.c.task_id == tid, la.c.source_type == MANUAL, la.c.annotator_id == who, la.c.id <= before,
            la.c.record_id.in_(records),
        ))
    _move_to_labeled(session, task=target_task, annotator_id=who, records=records, note=f"bulk label {label}")
    bump_revision(session, project_id)
    return BulkResult(action=f"Label {label!r} by {annotator}", matched=matched, changed=changed)


def accept_weak_supervision(
    session: Session,
    *,
    project_id: int,
    task: str,
    annotator: str,
    flt: Filter | None,
    expected_count: int | None = None,
) -> BulkResult:
    """Copy weak supervision's labels (spans, for extraction) into ``annotator``'s manual answers.

    Filtered records without weak supervision are skipped; records whose answer
    already equals weak supervision's are left as they are.
    """
    ctx = FilterContext(session, project_id)
    target_task = ctx.task(task)
    tid = target_task.id or 0
    where = compile_filter(session, project_id=project_id, flt=flt, style="in", context=ctx)
    matched = _matched(session, where, expected_count, "Accept weak supervision")
    who = _annotator_id(session, annotator)
    w, m = ASSOC.alias(), ASSOC.alias()
    weak = [w.c.task_id == tid, w.c.source_type == WEAK]
    same = [m.c.label_id == w.c.label_id, m.c.token_start.is_not_distinct_from(w.c.token_start),
            m.c.token_end.is_not_distinct_from(w.c.token_end)]
    has_weak = exists(select(w.c.id).where(*weak, w.c.record_id == RECORD.c.id))
    weak_missing = exists(select(w.c.id).where(*weak, w.c.record_id == RECORD.c.id, not_(exists(
        select(m.c.id).where(*_mine(m, tid, who), m.c.record_id == RECORD.c.id, *same)))))
    manual_extra = exists(select(m.c.id).where(*_mine(m, tid, who), m.c.record_id == RECORD.c.id, not_(exists(
        select(w.c.id).where(*weak, w.c.record_id == RECORD.c.id, *same)))))
    with_weak = int(session.execute(select(func.count()).select_from(Record).where(where, has_weak)).scalar_one())
    changed_now = select(RECORD.c.id).where(where, has_weak, or_(weak_missing, manual_extra))
    now = utcnow()
    changed = _lock_answers(session, task=target_task, annotator_id=who, changed=changed_now, now=now)
    records = _locked(target_task, who, now)
    before = int(session.execute(select(func.coalesce(func.max(ASSOC.c.id), 0))).scalar_one())
    la = ASSOC
    rows = select(
        w.c.project_id, w.c.record_id, w.c.task_id, w.c.label_id, literal(MANUAL), literal(who),
        _was_gold(tid, who, w.c.record_id), w.c.token_start, w.c.token_end, w.c.char_start, w.c.char_end, literal(now),
        literal(now),
    ).where(*weak, w.c.record_id.in_(records))
    session.execute(insert(la).from_select(
        ["project_id", "record_id", "task_id", "label_id", "source_type", "annotator_id", "is_gold", "token_start",
         "token_end", "char_start", "char_end", "created_at", "updated_at"], rows,
    ))
    session.execute(delete(la).where(
        la.c.task_id == tid, la.c.source_type == MANUAL, la.c.annotator_id == who, la.c.id <= before,
        la.c.record_id.in_(records),
    ))
    _move_to_labeled(session, task=target_task, annotator_id=who, records=records, note="accepted weak supervision")
    bump_revision(session, project_id)
    skipped = matched - with_weak
    return BulkResult(action=f"Accept weak supervision as {annotator}", matched=matched, changed=changed,
                      skipped=skipped, message=f"{skipped} without weak supervision" if skipped else "")


def mark_gold(
    session: Session,
    *,
    project_id: int,
    task: str,
    flt: Filter | None,
    annotator: str | None = None,
    expected_count: int | None = None,
) -> BulkResult:
    """Star manual answers of the filtered records as gold (the valid label when annotators disagree).

    With ``annotator``, that annotator's answer becomes the gold one on every
    filtered record they labeled (other stars on those records are removed).
    Without, records whose annotators all agree get every answer starred;
    records where they disagree are skipped, as choosing among them needs a
    person.
    """
    ctx = FilterContext(session, project_id)
    target_task = ctx.task(task)
    tid = target_task.id or 0
    where = compile_filter(session, project_id=project_id, flt=flt, style="in", context=ctx)
    matched = _matched(session, where, expected_count, "Mark as gold")
    la = ASSOC
    m, other = ASSOC.alias(), ASSOC.alias()
    labeled = exists(select(m.c.id).where(m.c.task_id == tid, m.c.source_type == MANUAL, m.c.record_id == RECORD.c.id))
    if annotator is not None:
        who = ctx.annotator_ids([annotator])[0]
        chosen = select(RECORD.c.id).where(where, exists(select(m.c.id).where(*_mine(m, tid, who),
                                                                          m.c.record_id == RECORD.c.id)))
        owner: Any = la.c.annotator_id == who
    else:
        if target_task.kind == TaskKind.CLASSIFICATION.value:
            differs = other.c.label_id != m.c.label_id
        else:
            # A whole set per annotator: only a record with a single annotator is certain.
            differs = other.c.annotator_id.is_distinct_from(m.c.annotator_id)
        conflict = exists(select(m.c.id).where(
            m.c.task_id == tid, m.c.source_type == MANUAL, m.c.record_id == RECORD.c.id,
            exists(select(other.c.id).where(other.c.task_id == tid, other.c.source_type == MANUAL,
                                          other.c.record_id == m.c.record_id, differs)),
        ))
        chosen = select(RECORD.c.id).where(where, labeled, not_(conflict))
        owner = true()
    # The chosen set depends on labels, not on stars: the two updates below see the same set.
    changed = int(session.execute(select(func.count()).select_from(chosen.subquery())).scalar_one())
    count_labeled = int(session.execute(select(func.count()).select_from(Record).where(where, labeled)).scalar_one())
    base = [la.c.task_id == tid, la.c.source_type == MANUAL, la.c.record_id.in_(chosen)]
    session.execute(update(la).where(*base).values(is_gold=False))
    session.execute(update(la).where(*base, owner).values(is_gold=True))
    bump_revision(session, project_id)
    skipped = count_labeled - changed
    reason = ""
    if skipped:
        reason = (f"{skipped} where {annotator} gave no label" if annotator is not None
                  else f"{skipped} where annotators disagree: choose whose answer is gold")
    return BulkResult(action="Mark as gold", matched=matched, changed=changed, skipped=skipped, message=reason)


def add_to_slice(
    session: Session,
    *,
    project_id: int,
    flt: Filter | None,
    slice_name: str,
    expected_count: int | None = None,
) -> BulkResult:
    """Add the filtered records to the static slice ``slice_name`` (created when missing)."""
    from core.store.slices import SliceKind, find_slice, save_slice

    where = compile_filter(session, project_id=project_id, flt=flt, style="in")
    matched = _matched(session, where, expected_count, "Add to slice")
    existing = find_slice(session, project_id=project_id, name=slice_name)
    if existing is not None and existing.kind != SliceKind.STATIC.value:
        raise ValidationError(
            f"Slice {slice_name!r} is {existing.kind}: its records come from "
            f"{'its filter' if existing.kind == 'dynamic' else 'outlier detection'}. Add records to a static slice."
        )
    current = [int(i) for i in (existing.record_ids if existing else [])]
    new = [int(i) for i in session.execute(select(RECORD.c.id).where(where).order_by(RECORD.c.running_id)).scalars()]
    known = set(current)
    added = [i for i in new if i not in known]
    save_slice(session, project_id=project_id, name=slice_name, kind=SliceKind.STATIC,
               record_ids=current + added, replace=True)
    bump_revision(session, project_id)
    return BulkResult(action=f"Add to slice {slice_name!r}", matched=matched, changed=len(added),
                      skipped=matched - len(added), message="already in the slice" if matched > len(added) else "")
