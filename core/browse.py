"""The data browser's queries: one filtered, sorted page at a time, plus counts.

:func:`browse_page` runs two cheap queries instead of one heavy one: the first
selects the page's record ids in SQL (filter, order, offset, limit), the second
reads attributes and, per task, the labels of those ids only. So a page costs
the same on a hundred records as on a million, as long as its order can be
read from an index:

- ``record`` order (import order) uses the ``(project_id, running_id)`` key;
- ``confidence`` order walks the ``(task_id, source_type, confidence)`` index
  of weak-supervision labels (classification tasks), records without weak
  supervision follow;
- ``attribute`` order uses an expression index on the attribute, created
  the first time the attribute is sorted on
  (:func:`core.store.browse_indexes.ensure_sort_index`; not for TEXT
  attributes, whose long values would make a large index);
- ``random`` (seeded) reads one or a few seed-chosen buckets of a fixed
  pseudo-random key from its index and orders them by a seeded hash of the
  record id (:class:`~core.store.browse_indexes.SeededOrder`): each seed gives
  its own permutation;
- unindexed attributes (TEXT) sort the whole filtered set, which takes a few
  hundred milliseconds on a million records.

Columns of a page: the record ``key``, every attribute, then per task
``"{task}: manual"`` (the valid manual label), ``": weak supervision"``,
``": confidence"``, ``": heuristics"`` (``name: label``), ``": annotators"``
(``name: label``), ``": status"`` (workflow), and ``comments`` (count). The
frame's index holds the record ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.errors import ValidationError
from core.filters import Filter, FilterContext, Sort, SortBy, Style, compile_filter
from core.store.browse_indexes import (
    SeededOrder,
    ensure_sort_index,
    index_names,
    random_key,
    sort_expression,
)
from core.store.comments import comment_counts
from core.store.models import Annotator, Attribute, Label, LabelingTask, Record, SourceType, TaskKind
from core.store.records import MAX_PAGE_SIZE
from core.store.tables import ANNOTATOR, ASSOC, LABEL, RECORD
from core.valid_labels import resolve_answers

TASK_PARTS = ("manual", "weak supervision", "confidence", "heuristics", "annotators", "status")
COMMENTS_COLUMN = "comments"
KEY_COLUMN = "key"


def column_name(task: str, part: str) -> str:
    """Name of a per-task column of the page: ``column_name("sentiment", "manual") == "sentiment: manual"``."""
    return f"{task}: {part}"


@dataclass(frozen=True)
class BrowsePage:
    """One page of the browser.

    Attributes
    ----------
    frame
        Rows in order, indexed by record id; columns as the module describes.
    total
        Records matching the filter (None when not asked for).
    attributes, tasks
        The attribute and task names shown, in column order.
    """

    frame: pd.DataFrame
    total: int | None
    offset: int
    limit: int
    attributes: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)

    @property
    def record_ids(self) -> list[int]:
        return [int(i) for i in self.frame.index]


# --- ids ----------------------------------------------------------------------------------------------------------


def count_filtered(
    session: Session, *, project_id: int, flt: Filter | None = None, context: FilterContext | None = None
) -> int:
    """How many records of the project match ``flt``."""
    where = compile_filter(session, project_id=project_id, flt=flt, style="in", context=context)
    return int(session.execute(select(func.count()).select_from(Record).where(where)).scalar_one())


def filtered_ids(session: Session, *, project_id: int, flt: Filter | None = None) -> Any:
    """A ``SELECT record.id`` of the records matching ``flt``, to use as a subquery (bulk actions, slices)."""
    return select(RECORD.c.id).where(compile_filter(session, project_id=project_id, flt=flt, style="in"))


def ordered_ids(
    session: Session,
    *,
    project_id: int,
    flt: Filter | None = None,
    sort: Sort | None = None,
    offset: int = 0,
    limit: int | None = 100,
    context: FilterContext | None = None,
) -> list[int]:
    """Record ids matching ``flt`` in ``sort`` order, from ``offset``, at most ``limit`` (None: all).

    A labeling queue over a filter or a slice is ``ordered_ids(..., limit=None)``.
    """
    if offset < 0:
        raise ValidationError(f"Page offset cannot be negative; got {offset}.")
    if limit is not None and limit < 1:
        raise ValidationError(f"A page holds at least one record; got limit {limit}.")
    ctx = context or FilterContext(session, project_id)
    order = sort or Sort()
    dialect = session.get_bind().dialect.name
    if order.by is SortBy.CONFIDENCE:
        return _ids_by_confidence(session, ctx, flt, order, offset, limit)
    if order.by is SortBy.RECORD:
        where = compile_filter(session, project_id=project_id, flt=flt, style="exists", context=ctx)
        keys: list[Any] = [RECORD.c.running_id.desc() if order.descending else RECORD.c.running_id]
    elif order.by is SortBy.RANDOM:
        return _ids_at_random(session, ctx, flt, order.seed, offset, limit)
    else:
        attribute = _sort_attribute(ctx, order)
        expr = sort_expression(attribute, dialect)
        indexed = ensure_sort_index(_engine_of(session), attribute)
        style: Style = "exists" if indexed else "in"
        where = compile_filter(session, project_id=project_id, flt=flt, style=style, context=ctx)
        direction = expr.desc() if order.descending else expr.asc()
        keys = [direction.nulls_last(), RECORD.c.id.desc() if order.descending else RECORD.c.id]
    stmt = select(RECORD.c.id).where(where).order_by(*keys).offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [int(i) for i in session.execute(stmt).scalars().all()]


# A page of the seeded random order reads buckets in doubling groups (1, 2, 4, ... buckets) until it is full.
# Past this many buckets (a selective filter, or a deep page) the rest of the filtered set is ordered at once:
# in NumPy when few records are expected there, else by one sort in SQL.
_RANDOM_WALK_BUCKETS = 127
_RANDOM_PYTHON_SORT = 50_000


def _ids_at_random(
    session: Session, ctx: FilterContext, flt: Filter | None, seed: int, offset: int, limit: int | None
) -> list[int]:
    """Ids in the seeded random order of :class:`~core.store.browse_indexes.SeededOrder`.

    A page walks the seed's buckets in groups of 1, 2, 4, ... buckets: each
    group is a few ranges of the ``(project_id, random_key)`` index, whose
    matching ids are put in order in Python (bucket position, seeded rank, id).
    With a broad filter the first bucket (about a thousand records on a
    million) fills a page. When the buckets read so far predict a long walk
    (a selective filter, or a deep page), the rest is ordered at once: the
    filter's matches are read and ordered in NumPy when few are expected, else
    SQL sorts them. All ids (``limit=None``, a labeling queue) are read with
    their key and ordered in NumPy. Every path gives the same order.
    """
    order = SeededOrder(seed)
    key = random_key()
    if limit is None:
        where = compile_filter(session, project_id=ctx.project_id, flt=flt, style="in", context=ctx)
        rows = session.execute(select(RECORD.c.id, key).where(where)).all()
        return order.arrange([r[0] for r in rows], [r[1] for r in rows])[offset:]
    indexed = "ix_browse_record_random" in index_names(_engine_of(session))
    style: Style = "exists" if indexed else "in"
    where = compile_filter(session, project_id=ctx.project_id, flt=flt, style=style, context=ctx)
    buckets = order.buckets()
    found: list[int] = []
    skip, start, size, matched = offset, 0, 1, 0

    def take(ordered: list[int]) -> None:
        nonlocal skip
        found.extend(ordered[skip:skip + limit - len(found)])
        skip = max(0, skip - len(ordered))

    while start < min(len(buckets), _RANDOM_WALK_BUCKETS):
        group = buckets[start:start + size]
        ranges = [and_(key >= low, key < high) for low, high in map(order.key_range, group)]
        rows = session.execute(select(RECORD.c.id, key).where(where, or_(*ranges))).all()
        matched += len(rows)
        # The group's buckets are consecutive in the seed's order: arranging them alone keeps that order.
        take(order.arrange([r[0] for r in rows], [r[1] for r in rows]))
        if len(found) == limit:
            return found
        start, size = start + len(group), size * 2
        if matched == 0 or (offset + limit) * start > _RANDOM_WALK_BUCKETS * matched:
            break  # a selective filter (or a deep page): walking on would read more buckets than allowed
    if start >= len(buckets):
        return found
    everywhere = compile_filter(session, project_id=ctx.project_id, flt=flt, style="in", context=ctx)
    if matched * (len(buckets) - start) <= _RANDOM_PYTHON_SORT * max(start, 1):
        rows = session.execute(select(RECORD.c.id, key).where(everywhere)).all()
        take(order.arrange([r[0] for r in rows], [r[1] for r in rows], from_position=start))
        return found
    rest = (
        select(RECORD.c.id).where(everywhere, order.bucket_sql().not_in(buckets[:start]))
        .order_by(*order.order_by()).offset(skip).limit(limit - len(found))
    )
    return found + [int(i) for i in session.execute(rest).scalars().all()]


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _sort_attribute(ctx: FilterContext, order: Sort) -> Attribute:
    name = order.attribute or ""
    attribute = ctx.attributes.get(name)
    if attribute is None:
        known = ", ".join(ctx.attributes) or "none"
        raise ValidationError(f"Cannot sort by {name!r}: not an attribute of this project. Attributes: {known}.")
    return attribute


def _ids_by_confidence(
    session: Session, ctx: FilterContext, flt: Filter | None, order: Sort, offset: int, limit: int | None
) -> list[int]:
    """Ids by weak-supervision confidence; records without one come last, in import order.

    Two queries: the records with a confidence, read along the confidence
    index, then (only when the page reaches past them) the others.
    """
    if not order.task:
        raise ValidationError("Sorting by confidence needs a task: choose the task whose confidence to sort by.")
    task = ctx.task(order.task)
    ws = SourceType.WEAK_SUPERVISION.value
    scored = select(ASSOC.c.record_id).where(
        ASSOC.c.task_id == task.id, ASSOC.c.source_type == ws,
        ASSOC.c.confidence.is_not(None),
    )
    if task.kind == TaskKind.CLASSIFICATION.value:
        # One weak label per record: walk the confidence index and stop after the page.
        where = compile_filter(session, project_id=ctx.project_id, flt=flt, style="exists", context=ctx)
        s = ASSOC.alias()
        conf = s.c.confidence.desc() if order.descending else s.c.confidence.asc()
        tie = s.c.record_id.desc() if order.descending else s.c.record_id.asc()
        stmt = (
            select(RECORD.c.id)
            .join(s, and_(s.c.record_id == RECORD.c.id, s.c.task_id == task.id, s.c.source_type == ws,
                          s.c.confidence.is_not(None)))
            .where(where)
            .order_by(conf, tie)
            .offset(offset)
        )
    else:
        # Spans or several labels per record: the weakest span (extraction) or the top label decides.
        where = compile_filter(session, project_id=ctx.project_id, flt=flt, style="in", context=ctx)
        agg = func.min if task.kind == TaskKind.EXTRACTION.value else func.max
        score = (
            select(agg(ASSOC.c.confidence))
            .where(ASSOC.c.record_id == RECORD.c.id, ASSOC.c.task_id == task.id,
                   ASSOC.c.source_type == ws)
            .scalar_subquery()
        )
        key = score.desc() if order.descending else score.asc()
        stmt = (
            select(RECORD.c.id).where(where, RECORD.c.id.in_(scored))
            .order_by(key, RECORD.c.id).offset(offset)
        )
    if limit is not None:
        stmt = stmt.limit(limit)
    first = [int(i) for i in session.execute(stmt).scalars().all()]
    if limit is not None and len(first) == limit:
        return first
    # Past the records with a confidence: continue with the others.
    if first:
        seen = offset + len(first)
    else:
        seen = int(session.execute(
            select(func.count()).select_from(Record).where(
                compile_filter(session, project_id=ctx.project_id, flt=flt, style="in", context=ctx),
                RECORD.c.id.in_(scored),
            )
        ).scalar_one())
    rest_where = compile_filter(session, project_id=ctx.project_id, flt=flt, style="exists", context=ctx)
    rest = (
        select(RECORD.c.id).where(rest_where, not_(RECORD.c.id.in_(scored)))
        .order_by(RECORD.c.running_id).offset(max(0, offset - seen))
    )
    if limit is not None:
        rest = rest.limit(limit - len(first))
    return first + [int(i) for i in session.execute(rest).scalars().all()]


# --- pages --------------------------------------------------------------------------------------------------------


def browse_page(
    session: Session,
    *,
    project_id: int,
    flt: Filter | None = None,
    sort: Sort | None = None,
    offset: int = 0,
    limit: int = 100,
    tasks: Sequence[str] | None = None,
    with_total: bool = True,
) -> BrowsePage:
    """One page of records matching ``flt`` in ``sort`` order, with per-task label columns.

    Parameters
    ----------
    project_id
        The project browsed.
    flt, sort
        Filter (None: all records) and order (None: import order).
    offset, limit
        The page: ``limit`` between 1 and 1000.
    tasks
        Task names whose columns to add (None: all tasks, in creation order).
    with_total
        Also count the matching records (a second query over the filter).

    Raises
    ------
    NotFoundError, ValidationError
        Unknown names in the filter or the sort, a bad page size.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(f"Page size must be between 1 and {MAX_PAGE_SIZE}; got {limit}.")
    ctx = FilterContext(session, project_id)
    ids = ordered_ids(session, project_id=project_id, flt=flt, sort=sort, offset=offset, limit=limit, context=ctx)
    chosen = list(ctx.tasks.values()) if tasks is None else [ctx.task(t) for t in tasks]
    frame = page_frame(session, record_ids=ids, attributes=list(ctx.attributes.values()), tasks=chosen)
    total = count_filtered(session, project_id=project_id, flt=flt, context=ctx) if with_total else None
    return BrowsePage(frame=frame, total=total, offset=offset, limit=limit, attributes=list(ctx.attributes),
                      tasks=[t.name for t in chosen])


def page_frame(
    session: Session, *, record_ids: Sequence[int], attributes: Sequence[Attribute], tasks: Sequence[LabelingTask]
) -> pd.DataFrame:
    """Attributes and per-task label columns of ``record_ids``, in that order, indexed by record id."""
    ids = list(record_ids)
    columns = [KEY_COLUMN, *[a.name for a in attributes]]
    for task in tasks:
        columns += [column_name(task.name, part) for part in TASK_PARTS]
    columns.append(COMMENTS_COLUMN)
    if not ids:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="record_id", dtype="int64"))
    stored = {rid: (key, data) for rid, key, data in
              session.execute(select(RECORD.c.id, RECORD.c.key, RECORD.c.data).where(RECORD.c.id.in_(ids))).all()}
    rows: dict[int, dict[str, Any]] = {}
    texts: dict[int, dict[str, Any]] = {}
    for rid in ids:
        key, data = stored.get(rid, ("", {}))
        rows[rid] = {KEY_COLUMN: key, **{a.name: data.get(a.name) for a in attributes}}
        texts[rid] = data
    attr_names = {a.id: a.name for a in attributes}
    for task in tasks:
        _add_task_columns(session, task, ids, rows, texts, attr_names.get(task.attribute_id))
    counts = comment_counts(session, record_ids=ids)
    for rid in ids:
        rows[rid][COMMENTS_COLUMN] = counts.get(rid, 0)
    frame = pd.DataFrame([rows[rid] for rid in ids], columns=columns,
                         index=pd.Index(ids, name="record_id", dtype="int64"))
    return frame


def _add_task_columns(
    session: Session,
    task: LabelingTask,
    ids: list[int],
    rows: dict[int, dict[str, Any]],
    texts: dict[int, dict[str, Any]],
    attribute: str | None,
) -> None:
    stmt = (
        select(ASSOC.c.record_id, ASSOC.c.source_type, ASSOC.c.source_name,
               LABEL.c.name, ANNOTATOR.c.name, ASSOC.c.confidence, ASSOC.c.is_gold,
               ASSOC.c.token_start, ASSOC.c.token_end, ASSOC.c.char_start,
               ASSOC.c.char_end, ASSOC.c.annotator_id)
        .join(Label, LABEL.c.id == ASSOC.c.label_id)
        .outerjoin(Annotator, ANNOTATOR.c.id == ASSOC.c.annotator_id)
        .where(ASSOC.c.task_id == task.id, ASSOC.c.record_id.in_(ids))
        .order_by(ASSOC.c.record_id, ASSOC.c.token_start, ASSOC.c.id)
    )
    manual: dict[int, dict[Any, list[str]]] = defaultdict(lambda: defaultdict(list))
    starred: dict[int, set[Any]] = defaultdict(set)
    weak: dict[int, list[str]] = defaultdict(list)
    conf: dict[int, list[float]] = defaultdict(list)
    heur: dict[int, list[str]] = defaultdict(list)
    names: dict[Any, str] = {}
    extraction = task.kind == TaskKind.EXTRACTION.value
    for rid, source, source_name, label, who, confidence, gold, ts, te, cs, ce, aid in session.execute(stmt).all():
        shown = _span_text(label, texts[rid].get(attribute or ""), ts, te, cs, ce) if extraction else label
        if source == SourceType.MANUAL.value:
            manual[rid][aid].append(shown)
            names[aid] = who or "(unknown)"
            if gold:
                starred[rid].add(aid)
        elif source == SourceType.WEAK_SUPERVISION.value:
            weak[rid].append(shown)
            if confidence is not None:
                conf[rid].append(float(confidence))
        else:
            heur[rid].append(f"{source_name or source.lower()}: {shown}")
    statuses = _statuses(session, task, ids)
    for rid in ids:
        answers = {aid: _answer(task.kind, parts) for aid, parts in manual.get(rid, {}).items()}
        gold_answers = {answers[a] for a in starred.get(rid, ()) if a in answers}
        valid = resolve_answers(answers, gold_answers.pop() if len(gold_answers) == 1 else None)
        row = rows[rid]
        row[column_name(task.name, "manual")] = _show(valid)
        weak_answer = _answer(task.kind, weak[rid]) if weak.get(rid) else None
        row[column_name(task.name, "weak supervision")] = _show(weak_answer)
        values = conf.get(rid)
        row[column_name(task.name, "confidence")] = (
            None if not values else round(min(values) if extraction else max(values), 4)
        )
        row[column_name(task.name, "heuristics")] = ", ".join(dict.fromkeys(heur.get(rid, []))) or None
        row[column_name(task.name, "annotators")] = "; ".join(
            f"{names[a]}: {_show(ans)}" for a, ans in answers.items()
        ) or None
        row[column_name(task.name, "status")] = statuses.get(rid) or ("labeled" if answers else "unlabeled")


def _answer(kind: str, parts: list[str]) -> Any:
    if kind == TaskKind.CLASSIFICATION.value:
        return parts[-1]
    if kind == TaskKind.MULTILABEL.value:
        return frozenset(parts)
    return tuple(parts)


def _show(answer: Any) -> str | None:
    if answer is None:
        return None
    if isinstance(answer, frozenset):
        return ", ".join(sorted(answer))
    if isinstance(answer, tuple):
        return "; ".join(answer)
    return str(answer)


def _span_text(label: str, text: Any, ts: int | None, te: int | None, cs: int | None, ce: int | None) -> str:
    if isinstance(text, str) and cs is not None and ce is not None:
        return f"{label}: {text[cs:ce]}"
    if ts is not None and te is not None:
        return f"{label}: tokens {ts}–{te - 1}"
    return label


def _statuses(session: Session, task: LabelingTask, ids: list[int]) -> dict[int, str]:
    """Stored workflow statuses, when the workflow module is part of this build."""
    try:
        from core.store.workflow import status_map
    except ImportError:  # pragma: no cover - the workflow module ships with Loupe
        return {}
    return {rid: str(status.value) for rid, status in status_map(session, task_id=task.id or 0, record_ids=ids).items()}


def frame_for_ids(session: Session, *, project_id: int, record_ids: Iterable[int]) -> pd.DataFrame:
    """The browser's columns for given records (e.g. a slice's first rows), in the given order."""
    ctx = FilterContext(session, project_id)
    return page_frame(session, record_ids=list(record_ids), attributes=list(ctx.attributes.values()),
                      tasks=list(ctx.tasks.values()))


# --- what a filter builder offers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskChoice:
    """A task as the filter builder offers it: its labels and the heuristics that vote on it."""

    name: str
    kind: str
    labels: tuple[str, ...]
    heuristics: tuple[str, ...]


@dataclass(frozen=True)
class FilterChoices:
    """The names a filter of the project can use, read in a handful of small queries.

    Attributes
    ----------
    attributes
        Attribute name → data type, in column order.
    tasks
        Tasks in creation order.
    annotators
        Annotators with manual labels in the project, by name.
    slices
        ``(name, kind)`` of the saved data slices, by name.
    """

    attributes: dict[str, str]
    tasks: tuple[TaskChoice, ...]
    annotators: tuple[str, ...]
    slices: tuple[tuple[str, str], ...]

    def task(self, name: str) -> TaskChoice | None:
        return next((t for t in self.tasks if t.name == name), None)


def filter_choices(session: Session, *, project_id: int) -> FilterChoices:
    """Attributes, tasks (labels, heuristics), annotators and slices of the project, for a filter builder.

    Heuristics are read from the heuristics table (not from their votes), so the
    cost does not grow with the number of records.
    """
    from core.labeling import list_annotators
    from core.store.heuristics import Heuristic
    from core.store.slices import list_slices

    ctx = FilterContext(session, project_id)
    heuristics: dict[int, list[str]] = defaultdict(list)
    table = Heuristic.__table__  # type: ignore[attr-defined]
    stmt = select(table.c.task_id, table.c.name).where(table.c.project_id == project_id).order_by(table.c.name)
    for task_id, name in session.execute(stmt).all():
        heuristics[int(task_id)].append(str(name))
    labels: dict[int, list[str]] = defaultdict(list)
    task_ids = [t.id for t in ctx.tasks.values()]
    if task_ids:
        rows = session.execute(select(LABEL.c.task_id, LABEL.c.name).where(LABEL.c.task_id.in_(task_ids))
                               .order_by(LABEL.c.position, LABEL.c.id)).all()
        for task_id, name in rows:
            labels[int(task_id)].append(str(name))
    tasks = tuple(
        TaskChoice(name=t.name, kind=str(t.kind), labels=tuple(labels[t.id or 0]),
                   heuristics=tuple(heuristics[t.id or 0]))
        for t in ctx.tasks.values()
    )
    return FilterChoices(
        attributes={a.name: str(a.data_type) for a in ctx.attributes.values()},
        tasks=tasks,
        annotators=tuple(a.name for a in list_annotators(session, project_id=project_id)),
        slices=tuple((s.name, str(s.kind)) for s in list_slices(session, project_id)),
    )


def distinct_values(session: Session, *, project_id: int, attribute: str, limit: int = 100) -> list[str]:
    """Up to ``limit`` distinct non-empty values of an attribute, most frequent first (ties by value).

    Meant for category attributes, whose values a filter offers to pick from.
    """
    from core.store.records import attribute_expr

    ctx = FilterContext(session, project_id)
    found = ctx.attributes.get(attribute)
    if found is None:
        known = ", ".join(ctx.attributes) or "none"
        raise ValidationError(f"No attribute {attribute!r} in this project. Attributes: {known}.")
    expr = attribute_expr(found)
    n = func.count()
    stmt = (
        select(expr, n).where(RECORD.c.project_id == project_id, expr.is_not(None))
        .group_by(expr).order_by(n.desc(), expr).limit(limit)
    )
    return [str(v) for v, _ in session.execute(stmt).all() if str(v) != ""]
