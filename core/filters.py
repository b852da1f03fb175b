"""Filters of the data browser: a typed model, serialisable to JSON, compiled to SQL.

A :class:`Filter` is a tuple of conditions combined with AND; within one
condition, its values combine with OR (``channel equals A or B``, ``hit by
heuristic h1 or h2``). The model is frozen dataclasses, so a filter is hashable
(a cache key) and round-trips through :meth:`Filter.to_json` /
:meth:`Filter.from_json`: that JSON is what a dynamic data slice stores.

:func:`compile_filter` turns a filter into one SQLAlchemy condition on
:class:`~core.store.models.Record`, portable across SQLite and PostgreSQL:
attribute conditions use :func:`core.store.records.attribute_expr`, label
conditions are ``EXISTS`` (or ``IN``) subqueries on
:class:`~core.store.models.LabelAssociation`, so only the rows a query returns
are ever read.

Semantics worth knowing
-----------------------
- *Manual label is X* means the record's **valid** manual label is X for
  classification tasks, computed in SQL as refinery defines it: the label all
  annotators agree on, or the gold-starred label. For multi-label and
  extraction tasks a valid answer is a whole set, which SQL cannot compare
  cheaply: there the condition means *some annotator gave label X*. Set
  ``valid_only=False`` to get that meaning for classification too.
- *Has no label* / *has any label* look at manual labels of any annotator.
- *Confidence* is the weak-supervision confidence; a record matches when one of
  its weak-supervision labels (one per record for classification, one per span
  for extraction) lies in the range. Records without weak supervision never
  match (and always match the negation).
- *Heuristic* conditions read labels of source ``HEURISTIC`` and ``MODEL``,
  naming a heuristic by the ``source_name`` of its labels.
- Negation keeps records whose attribute is missing: *not equals A* matches a
  record without the attribute.
- Case-insensitive comparisons fold ASCII letters only on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, ClassVar, Literal

from sqlalchemy import Integer, String, and_, cast, exists, false, func, not_, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Session

from core.errors import NotFoundError, ValidationError
from core.store.models import (
    Attribute,
    AttributeType,
    LabelingTask,
    SourceType,
    TaskKind,
)
from core.store.records import attribute_expr
from core.store.tables import ANNOTATOR, ASSOC, RECORD
from core.store.tasks import list_attributes, list_labels, list_tasks

ANY_ATTRIBUTE = "*"
Style = Literal["exists", "in"]
Value = str | int | float | bool
HEURISTIC_SOURCES = (SourceType.HEURISTIC.value, SourceType.MODEL.value)


class AttributeOp(StrEnum):
    """Comparisons of an attribute condition."""

    EQUALS = "equals"
    CONTAINS = "contains"
    BEGINS_WITH = "begins_with"
    ENDS_WITH = "ends_with"
    IN_LIST = "in"
    BETWEEN = "between"
    GREATER = "gt"
    GREATER_EQUAL = "ge"
    LESS = "lt"
    LESS_EQUAL = "le"
    IS_EMPTY = "is_empty"


class LabelMatch(StrEnum):
    """What a label condition asks for: one of some labels, any label, or none."""

    ANY_OF = "any_of"
    HAS_ANY = "has_any"
    HAS_NONE = "has_none"


# --- the model ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeFilter:
    """An attribute compared with one or more values (OR); ``attribute="*"`` tries every attribute.

    Parameters
    ----------
    attribute
        Attribute name, or ``"*"`` for any attribute: for equals, in list and
        the text comparisons every attribute and the record key (numbers by
        value for equals/in list and by their digits otherwise, true/false
        attributes for the values ``true``/``false``), number attributes for
        ``gt``/``lt``/``between``, text and category attributes for ``is_empty``.
    op
        The comparison; ``between`` takes two values (inclusive), ``is_empty`` none.
    values
        Compared values; several combine with OR.
    case_sensitive, negate
        Toggles; a negated condition keeps records without the attribute.
    """

    attribute: str
    op: AttributeOp
    values: tuple[Value, ...] = ()
    case_sensitive: bool = False
    negate: bool = False
    kind: ClassVar[str] = "attribute"


@dataclass(frozen=True)
class ManualLabelFilter:
    """The record's manual label for ``task``: one of ``labels``, any, or none (see module notes)."""

    task: str
    labels: tuple[str, ...] = ()
    match: LabelMatch = LabelMatch.ANY_OF
    valid_only: bool = True
    negate: bool = False
    kind: ClassVar[str] = "manual_label"


@dataclass(frozen=True)
class WeakLabelFilter:
    """The record's weak-supervision label for ``task``: one of ``labels``, any, or none."""

    task: str
    labels: tuple[str, ...] = ()
    match: LabelMatch = LabelMatch.ANY_OF
    negate: bool = False
    kind: ClassVar[str] = "weak_label"


@dataclass(frozen=True)
class ConfidenceFilter:
    """Weak-supervision confidence for ``task`` within ``[minimum, maximum]`` (either bound may be open)."""

    task: str
    minimum: float | None = None
    maximum: float | None = None
    negate: bool = False
    kind: ClassVar[str] = "confidence"


@dataclass(frozen=True)
class HeuristicFilter:
    """Hit by any of ``heuristics`` for ``task`` (all heuristics when empty), optionally with ``label``."""

    task: str
    heuristics: tuple[str, ...] = ()
    label: str | None = None
    negate: bool = False
    kind: ClassVar[str] = "heuristic"


@dataclass(frozen=True)
class HeuristicsDisagreeFilter:
    """Two heuristics gave the record different labels for ``task`` (overlapping spans for extraction)."""

    task: str
    negate: bool = False
    kind: ClassVar[str] = "heuristics_disagree"


@dataclass(frozen=True)
class ManualWeakMismatchFilter:
    """The valid manual label differs from the weak-supervision label; records with both only."""

    task: str
    negate: bool = False
    kind: ClassVar[str] = "manual_weak_mismatch"


@dataclass(frozen=True)
class AnnotatorFilter:
    """Labeled manually by any of ``annotators`` (for ``task``, or for any task when None)."""

    annotators: tuple[str, ...]
    task: str | None = None
    negate: bool = False
    kind: ClassVar[str] = "annotator"


@dataclass(frozen=True)
class CommentFilter:
    """The record has at least one comment."""

    negate: bool = False
    kind: ClassVar[str] = "comment"


@dataclass(frozen=True)
class SliceFilter:
    """The record belongs to the saved data slice ``slice`` (a dynamic slice is re-evaluated)."""

    slice: str
    negate: bool = False
    kind: ClassVar[str] = "slice"


Condition = (
    AttributeFilter | ManualLabelFilter | WeakLabelFilter | ConfidenceFilter | HeuristicFilter
    | HeuristicsDisagreeFilter | ManualWeakMismatchFilter | AnnotatorFilter | CommentFilter | SliceFilter
)
CONDITION_TYPES: dict[str, type[Any]] = {
    t.kind: t
    for t in (AttributeFilter, ManualLabelFilter, WeakLabelFilter, ConfidenceFilter, HeuristicFilter,
              HeuristicsDisagreeFilter, ManualWeakMismatchFilter, AnnotatorFilter, CommentFilter, SliceFilter)
}
_ENUMS: dict[str, Callable[[Any], Any]] = {"op": AttributeOp, "match": LabelMatch}
_TUPLES = {"values", "labels", "heuristics", "annotators"}


@dataclass(frozen=True)
class Filter:
    """Conditions combined with AND; the empty filter matches every record of the project."""

    conditions: tuple[Condition, ...] = field(default_factory=tuple)
    VERSION: ClassVar[int] = 1

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def add(self, *conditions: Condition) -> Filter:
        """A new filter with ``conditions`` appended."""
        return Filter(conditions=(*self.conditions, *conditions))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: ``{"version": 1, "conditions": [{"kind": ..., ...}]}``."""
        out = []
        for cond in self.conditions:
            data: dict[str, Any] = {"kind": cond.kind}
            for key, value in asdict(cond).items():
                data[key] = list(value) if isinstance(value, tuple) else value
            out.append(data)
        return {"version": self.VERSION, "conditions": out}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Filter:
        """Rebuild a filter from :meth:`to_dict` output; unknown kinds or fields raise :class:`ValidationError`."""
        if not data:
            return cls()
        if not isinstance(data, Mapping) or not isinstance(data.get("conditions", []), list):
            raise ValidationError(
                f"A filter is an object with a list of conditions; got {type(data).__name__}. "
                'Use {"conditions": [{"kind": "attribute", ...}]}.'
            )
        conditions: list[Condition] = []
        for i, raw in enumerate(data.get("conditions", [])):
            conditions.append(_condition_from_dict(raw, position=i + 1))
        return cls(conditions=tuple(conditions))

    @classmethod
    def from_json(cls, text: str | None) -> Filter:
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValidationError(f"The filter is not valid JSON ({e.msg} at position {e.pos}).") from e
        return cls.from_dict(data)

    def describe(self) -> list[str]:
        """One short human-readable line per condition, for chips above the grid."""
        return [describe_condition(c) for c in self.conditions]


def _condition_from_dict(raw: Any, *, position: int) -> Condition:
    if not isinstance(raw, Mapping) or "kind" not in raw:
        raise ValidationError(f"Filter condition {position} needs a 'kind'; got {raw!r}.")
    kind = raw["kind"]
    cls = CONDITION_TYPES.get(kind)
    if cls is None:
        raise ValidationError(
            f"Filter condition {position} has unknown kind {kind!r}; use one of: {', '.join(sorted(CONDITION_TYPES))}."
        )
    names = {f.name for f in fields(cls)}
    unknown = set(raw) - names - {"kind"}
    if unknown:
        raise ValidationError(
            f"Filter condition {position} ({kind}) has unknown field(s) {', '.join(sorted(unknown))}; "
            f"its fields are: {', '.join(sorted(names))}."
        )
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "kind":
            continue
        if key in _ENUMS:
            try:
                value = _ENUMS[key](value)
            except ValueError as e:
                raise ValidationError(f"Filter condition {position} ({kind}): {key} {value!r} is not known.") from e
        elif key in _TUPLES:
            value = tuple(value) if isinstance(value, list | tuple) else (value,)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ValidationError(f"Filter condition {position} ({kind}) is incomplete: {e}.") from e


def describe_condition(cond: Condition) -> str:
    """``channel equals A or B``, ``not manual label (spam) = has none``..."""
    neg = "not " if getattr(cond, "negate", False) else ""
    if isinstance(cond, AttributeFilter):
        who = "any attribute" if cond.attribute == ANY_ATTRIBUTE else cond.attribute
        if cond.op is AttributeOp.BETWEEN and len(cond.values) == 2:
            what = f"between {cond.values[0]} and {cond.values[1]}"
        elif cond.op is AttributeOp.IS_EMPTY:
            what = "is empty"
        else:
            what = f"{cond.op.value.replace('_', ' ')} " + " or ".join(repr(v) for v in cond.values)
        case = " (case-sensitive)" if cond.case_sensitive else ""
        return f"{neg}{who} {what}{case}"
    if isinstance(cond, ManualLabelFilter | WeakLabelFilter):
        source = "manual" if isinstance(cond, ManualLabelFilter) else "weak supervision"
        if cond.match is LabelMatch.ANY_OF:
            return f"{neg}{source} label ({cond.task}) is " + " or ".join(cond.labels)
        return f"{neg}{source} label ({cond.task}): {cond.match.value.replace('_', ' ')}"
    if isinstance(cond, ConfidenceFilter):
        low = "0" if cond.minimum is None else f"{cond.minimum:g}"
        high = "1" if cond.maximum is None else f"{cond.maximum:g}"
        return f"{neg}confidence ({cond.task}) in [{low}, {high}]"
    if isinstance(cond, HeuristicFilter):
        names = " or ".join(cond.heuristics) or "any heuristic"
        label = f" with {cond.label}" if cond.label else ""
        return f"{neg}hit by {names}{label} ({cond.task})"
    if isinstance(cond, HeuristicsDisagreeFilter):
        return f"{neg}heuristics disagree ({cond.task})"
    if isinstance(cond, ManualWeakMismatchFilter):
        return f"{neg}manual ≠ weak supervision ({cond.task})"
    if isinstance(cond, AnnotatorFilter):
        return f"{neg}labeled by " + " or ".join(cond.annotators)
    if isinstance(cond, CommentFilter):
        return f"{neg}has comment"
    return f"{neg}in slice {cond.slice!r}"


# --- sorting and presets ------------------------------------------------------------------------------------------


class SortBy(StrEnum):
    RECORD = "record"  # running id: import order
    ATTRIBUTE = "attribute"
    CONFIDENCE = "confidence"
    RANDOM = "random"


@dataclass(frozen=True)
class Sort:
    """Order of the browser's rows; empty values last in both directions.

    ``confidence`` needs ``task``; ``attribute`` needs ``attribute``; ``random``
    is a seeded shuffle (the same seed gives the same order on every page).
    """

    by: SortBy = SortBy.RECORD
    attribute: str | None = None
    task: str | None = None
    descending: bool = False
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "by": self.by.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Sort:
        if not data:
            return cls()
        try:
            return cls(**{**data, "by": SortBy(data.get("by", "record"))})
        except (TypeError, ValueError) as e:
            raise ValidationError(f"Cannot read the sort order {dict(data)!r}: {e}.") from e


@dataclass(frozen=True)
class Preset:
    """A named filter and order, built for one task."""

    name: str
    title: str
    build: Callable[[str], tuple[Filter, Sort]]


LOW_CONFIDENCE = 0.6

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("unlabeled_random", "Unlabeled, in random order",
               lambda t: (Filter((ManualLabelFilter(t, match=LabelMatch.HAS_NONE),)), Sort(SortBy.RANDOM, seed=0))),
        Preset("heuristics_disagree", "Heuristics disagree",
               lambda t: (Filter((HeuristicsDisagreeFilter(t),)), Sort())),
        Preset("manual_weak_mismatch", "Manual label ≠ weak supervision",
               lambda t: (Filter((ManualWeakMismatchFilter(t),)), Sort(SortBy.CONFIDENCE, task=t, descending=True))),
        Preset("low_confidence", f"Weak supervision below {LOW_CONFIDENCE:g} confidence",
               lambda t: (Filter((ConfidenceFilter(t, maximum=LOW_CONFIDENCE),)), Sort(SortBy.CONFIDENCE, task=t))),
    )
}


def preset(name: str, *, task: str, seed: int | None = None) -> tuple[Filter, Sort]:
    """The filter and sort of preset ``name`` for ``task``; ``seed`` replaces a random order's seed."""
    found = PRESETS.get(name)
    if found is None:
        raise ValidationError(f"Unknown preset {name!r}; use one of: {', '.join(PRESETS)}.")
    flt, order = found.build(task)
    if seed is not None and order.by is SortBy.RANDOM:
        order = replace(order, seed=int(seed))
    return flt, order


# --- compiling to SQL ---------------------------------------------------------------------------------------------


class _strpos(FunctionElement[int]):
    """Position of a substring, 1-based, 0 when absent: ``instr`` on SQLite, ``strpos`` elsewhere."""

    type = Integer()
    inherit_cache = True


@compiles(_strpos)
def _strpos_default(element: _strpos, compiler: Any, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


@compiles(_strpos, "sqlite")
def _strpos_sqlite(element: _strpos, compiler: Any, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class FilterContext:
    """Names resolved once per project: attributes, tasks, labels, annotators.

    Build one with :meth:`load` and reuse it to compile several filters.
    """

    def __init__(self, session: Session, project_id: int) -> None:
        self.session = session
        self.project_id = project_id
        self.attributes: dict[str, Attribute] = {a.name: a for a in list_attributes(session, project_id)}
        self.tasks: dict[str, LabelingTask] = {t.name: t for t in list_tasks(session, project_id)}
        self._labels: dict[int, dict[str, int]] = {}
        self._slices_seen: tuple[str, ...] = ()

    @classmethod
    def load(cls, session: Session, project_id: int) -> FilterContext:
        return cls(session, project_id)

    def task(self, name: str) -> LabelingTask:
        task = self.tasks.get(name)
        if task is None:
            known = ", ".join(repr(n) for n in self.tasks) or "none yet"
            raise NotFoundError(f"No labeling task named {name!r} in this project. Tasks: {known}.")
        return task

    def label_ids(self, task: LabelingTask, names: Iterable[str]) -> list[int]:
        by_name = self._labels.get(task.id or 0)
        if by_name is None:
            by_name = {lb.name: lb.id or 0 for lb in list_labels(self.session, task.id or 0)}
            self._labels[task.id or 0] = by_name
        wanted = list(names)
        missing = [n for n in wanted if n not in by_name]
        if missing:
            raise ValidationError(
                f"Task {task.name!r} has no label(s) {', '.join(map(repr, missing))}; "
                f"its labels are: {', '.join(by_name) or 'none'}."
            )
        return [by_name[n] for n in wanted]

    def annotator_ids(self, names: Iterable[str]) -> list[int]:
        wanted = list(names)
        rows = self.session.execute(select(ANNOTATOR.c.name, ANNOTATOR.c.id).where(ANNOTATOR.c.name.in_(wanted))).all()
        found = {n: i for n, i in rows}
        missing = [n for n in wanted if n not in found]
        if missing:
            known = [n for (n,) in self.session.execute(select(ANNOTATOR.c.name).order_by(ANNOTATOR.c.name)).all()]
            raise ValidationError(
                f"No annotator(s) named {', '.join(map(repr, missing))}; annotators: {', '.join(known) or 'none yet'}."
            )
        return [found[n] for n in wanted]


def compile_filter(
    session: Session,
    *,
    project_id: int,
    flt: Filter | None,
    style: Style = "exists",
    context: FilterContext | None = None,
) -> ColumnElement[bool]:
    """One SQL condition on :class:`Record` for ``flt``, including ``Record.project_id == project_id``.

    Parameters
    ----------
    session
        Used to resolve names (tasks, labels, annotators, slices) once.
    project_id
        The project whose records are filtered.
    flt
        The filter; None or empty matches every record of the project.
    style
        ``"exists"``: correlated ``EXISTS`` subqueries, best when rows are read
        in an index's order and the query stops after a page. ``"in"``:
        ``record.id IN (subquery)``, best for counts and full sorts on SQLite.
        Both select the same records.

    Raises
    ------
    NotFoundError, ValidationError
        Unknown task, label, annotator or slice, or a value of the wrong type.
    """
    ctx = context or FilterContext(session, project_id)
    clauses: list[ColumnElement[bool]] = [RECORD.c.project_id == project_id]
    for cond in (flt.conditions if flt else ()):
        clauses.append(compile_condition(ctx, cond, style=style))
    return and_(*clauses)


def compile_condition(ctx: FilterContext, cond: Condition, *, style: Style = "exists") -> ColumnElement[bool]:
    """The SQL condition of one filter condition (negation applied)."""
    if isinstance(cond, AttributeFilter):
        expr = _attribute_condition(ctx, cond)
    elif isinstance(cond, SliceFilter):
        expr = _slice_condition(ctx, cond, style)
    else:
        expr = _record_in(_record_subquery(ctx, cond), style)
    # "Has no label" is compiled as "has any label" and inverted here.
    invert = cond.negate != (getattr(cond, "match", None) is LabelMatch.HAS_NONE)
    return not_(expr) if invert else expr


def _record_in(subquery: Any, style: Style) -> ColumnElement[bool]:
    """``record.id`` among the ``record_id`` values ``subquery`` selects (a select of one column)."""
    if style == "in":
        return RECORD.c.id.in_(subquery)
    # Correlate: the subquery's only column must equal the outer record's id.
    column = subquery.selected_columns[0]
    return exists(subquery.where(column == RECORD.c.id))


def _labels(*where: Any, alias: Any = ASSOC) -> Any:
    return select(alias.c.record_id).where(*where)


def _record_subquery(ctx: FilterContext, cond: Condition) -> Any:
    la = ASSOC
    if isinstance(cond, CommentFilter):
        from core.store.comments import COMMENT

        return select(COMMENT.c.record_id).where(COMMENT.c.project_id == ctx.project_id)
    if isinstance(cond, AnnotatorFilter):
        if not cond.annotators:
            raise ValidationError("An annotator condition needs at least one annotator name.")
        where = [la.c.source_type == SourceType.MANUAL.value, la.c.annotator_id.in_(ctx.annotator_ids(cond.annotators))]
        where.append(la.c.task_id == ctx.task(cond.task).id if cond.task else la.c.project_id == ctx.project_id)
        return _labels(*where)
    task = ctx.task(cond.task)  # type: ignore[union-attr]
    base = [la.c.task_id == task.id]
    if isinstance(cond, ManualLabelFilter):
        manual = [*base, la.c.source_type == SourceType.MANUAL.value]
        if cond.match is not LabelMatch.ANY_OF:
            # HAS_NONE is the negation of HAS_ANY: compiled as "has any", then negated.
            return _labels(*manual)
        ids = _label_ids_or_error(ctx, task, cond.labels)
        if cond.valid_only and task.kind == TaskKind.CLASSIFICATION.value:
            return _valid_manual_is(task.id or 0, ids)
        return _labels(*manual, la.c.label_id.in_(ids))
    if isinstance(cond, WeakLabelFilter):
        weak = [*base, la.c.source_type == SourceType.WEAK_SUPERVISION.value]
        if cond.match is not LabelMatch.ANY_OF:
            return _labels(*weak)
        return _labels(*weak, la.c.label_id.in_(_label_ids_or_error(ctx, task, cond.labels)))
    if isinstance(cond, ConfidenceFilter):
        where = [*base, la.c.source_type == SourceType.WEAK_SUPERVISION.value]
        if cond.minimum is not None:
            where.append(la.c.confidence >= float(cond.minimum))
        if cond.maximum is not None:
            where.append(la.c.confidence <= float(cond.maximum))
        if cond.minimum is None and cond.maximum is None:
            where.append(la.c.confidence.is_not(None))
        return _labels(*where)
    if isinstance(cond, HeuristicFilter):
        where = [*base, la.c.source_type.in_(HEURISTIC_SOURCES)]
        if cond.heuristics:
            where.append(la.c.source_name.in_(list(cond.heuristics)))
        if cond.label:
            where.append(la.c.label_id == ctx.label_ids(task, [cond.label])[0])
        return _labels(*where)
    if isinstance(cond, HeuristicsDisagreeFilter):
        return _heuristics_disagree(task)
    if isinstance(cond, ManualWeakMismatchFilter):
        return _manual_weak_mismatch(task)
    raise ValidationError(f"Cannot compile filter condition {cond!r}.")  # pragma: no cover


def _label_ids_or_error(ctx: FilterContext, task: LabelingTask, labels: Sequence[str]) -> list[int]:
    if not labels:
        raise ValidationError(
            f"Choose at least one label of task {task.name!r}, or ask for 'has any label' / 'has no label'."
        )
    return ctx.label_ids(task, labels)


def _manual(alias: Any, task_id: int) -> list[Any]:
    return [alias.c.task_id == task_id, alias.c.source_type == SourceType.MANUAL.value]


def _valid_manual_is(task_id: int, label_ids: list[int] | None) -> Any:
    """Records whose valid manual label (classification) is among ``label_ids`` (any label when None).

    A manual label ``m`` is the valid one when it is gold-starred, or when no
    manual label of the record differs from it (one annotator, or all agree).
    """
    m, other = ASSOC.alias(), ASSOC.alias()
    disagreeing = exists(
        select(other.c.id).where(*_manual(other, task_id), other.c.record_id == m.c.record_id,
                                 other.c.label_id != m.c.label_id)
    )
    where = [*_manual(m, task_id), or_(m.c.is_gold.is_(True), not_(disagreeing))]
    if label_ids is not None:
        where.append(m.c.label_id.in_(label_ids))
    return select(m.c.record_id).where(*where)


def _heuristics_disagree(task: LabelingTask) -> Any:
    a, b = ASSOC.alias(), ASSOC.alias()
    pair = [
        a.c.task_id == task.id, a.c.source_type.in_(HEURISTIC_SOURCES),
        b.c.task_id == task.id, b.c.source_type.in_(HEURISTIC_SOURCES),
        b.c.record_id == a.c.record_id, b.c.label_id != a.c.label_id,
    ]
    if task.kind == TaskKind.EXTRACTION.value:
        pair += [a.c.token_start < b.c.token_end, b.c.token_start < a.c.token_end]
    return select(a.c.record_id).where(exists(select(b.c.id).where(*pair)))


def _manual_weak_mismatch(task: LabelingTask) -> Any:
    """Records with a (valid) manual answer and a weak-supervision answer that differ.

    Classification compares the valid manual label with the weak-supervision
    label. Multi-label and extraction compare label sets (spans): a weak label
    that no annotator gave, or a manual label that weak supervision lacks.
    """
    w, m = ASSOC.alias(), ASSOC.alias()
    weak = [w.c.task_id == task.id, w.c.source_type == SourceType.WEAK_SUPERVISION.value]
    if task.kind == TaskKind.CLASSIFICATION.value:
        valid = _valid_manual_is(task.id or 0, None).subquery()
        v, v2 = ASSOC.alias(), ASSOC.alias()
        # The weak label w is not the valid manual label: no valid manual label of the record equals w's label.
        disagreeing = exists(
            select(v2.c.id).where(*_manual(v2, task.id or 0), v2.c.record_id == v.c.record_id,
                                  v2.c.label_id != v.c.label_id)
        )
        same_as_weak = exists(
            select(v.c.id).where(*_manual(v, task.id or 0), v.c.record_id == w.c.record_id,
                                 v.c.label_id == w.c.label_id, or_(v.c.is_gold.is_(True), not_(disagreeing)))
        )
        return select(w.c.record_id).where(*weak, w.c.record_id.in_(select(valid.c.record_id)), not_(same_as_weak))
    same_part = [m.c.record_id == w.c.record_id, m.c.label_id == w.c.label_id,
                 m.c.token_start.is_not_distinct_from(w.c.token_start),
                 m.c.token_end.is_not_distinct_from(w.c.token_end)]
    weak_not_manual = select(w.c.record_id).where(
        *weak,
        exists(select(m.c.id).where(*_manual(m, task.id or 0), m.c.record_id == w.c.record_id)),
        not_(exists(select(m.c.id).where(*_manual(m, task.id or 0), *same_part))),
    )
    m2, w2 = ASSOC.alias(), ASSOC.alias()
    manual_not_weak = select(m2.c.record_id).where(
        *_manual(m2, task.id or 0),
        exists(select(w2.c.id).where(w2.c.task_id == task.id, w2.c.source_type == SourceType.WEAK_SUPERVISION.value,
                                   w2.c.record_id == m2.c.record_id)),
        not_(exists(select(w2.c.id).where(
            w2.c.task_id == task.id, w2.c.source_type == SourceType.WEAK_SUPERVISION.value,
            w2.c.record_id == m2.c.record_id,
            w2.c.label_id == m2.c.label_id, w2.c.token_start.is_not_distinct_from(m2.c.token_start),
            w2.c.token_end.is_not_distinct_from(m2.c.token_end),
        ))),
    )
    union = weak_not_manual.union(manual_not_weak).subquery()
    return select(union.c.record_id)


def _slice_condition(ctx: FilterContext, cond: SliceFilter, style: Style) -> ColumnElement[bool]:
    from core.slices import slice_condition

    if cond.slice in ctx._slices_seen:
        chain = " → ".join((*ctx._slices_seen, cond.slice))
        raise ValidationError(f"Slice {cond.slice!r} refers to itself ({chain}); edit its filter to break the loop.")
    ctx._slices_seen = (*ctx._slices_seen, cond.slice)
    try:
        return slice_condition(ctx.session, project_id=ctx.project_id, name=cond.slice, style=style, context=ctx)
    finally:
        ctx._slices_seen = ctx._slices_seen[:-1]


# --- attribute conditions -----------------------------------------------------------------------------------------

_ORDER_OPS = {AttributeOp.BETWEEN, AttributeOp.GREATER, AttributeOp.GREATER_EQUAL, AttributeOp.LESS,
              AttributeOp.LESS_EQUAL}
_NUMERIC = {AttributeType.INTEGER.value, AttributeType.FLOAT.value}
_STRINGS = {AttributeType.TEXT.value, AttributeType.CATEGORY.value}


def _attribute_condition(ctx: FilterContext, cond: AttributeFilter) -> ColumnElement[bool]:
    _check_values(cond)
    if cond.attribute == ANY_ATTRIBUTE:
        if cond.op in _ORDER_OPS:
            clauses = [_one_attribute(a, cond) for a in ctx.attributes.values() if a.data_type in _NUMERIC]
        elif cond.op is AttributeOp.IS_EMPTY:
            clauses = [_one_attribute(a, cond) for a in ctx.attributes.values() if a.data_type in _STRINGS]
        else:
            found = (_any_attribute_clause(a, cond) for a in ctx.attributes.values())
            clauses = [c for c in found if c is not None]
            clauses.append(_text_compare(cast(RECORD.c.key, String), cond))
        return or_(*clauses) if clauses else false()
    attribute = ctx.attributes.get(cond.attribute)
    if attribute is None:
        known = ", ".join(ctx.attributes) or "none"
        raise NotFoundError(f"No attribute {cond.attribute!r} in this project. Attributes: {known}.")
    return _one_attribute(attribute, cond)


def _any_attribute_clause(attribute: Attribute, cond: AttributeFilter) -> ColumnElement[bool] | None:
    """One attribute's part of an "any attribute" text comparison; None when no value applies to it.

    Text and category attributes compare as text. Numbers: ``equals`` and ``in
    list`` compare the values that read as numbers numerically (``14`` finds an
    integer 14 and a float 14.0), ``contains``/``begins``/``ends with`` look at
    the digits. True/false attributes match the values ``true`` and ``false``
    only (not 1, yes...), so a number or a word does not find every flag.
    """
    dtype = attribute.data_type
    if dtype in _STRINGS:
        return _one_attribute(attribute, cond)
    if dtype in _NUMERIC:
        if cond.op not in (AttributeOp.EQUALS, AttributeOp.IN_LIST):
            return _one_attribute(attribute, cond)
        numbers = tuple(v for v in cond.values if _reads_as_number(v))
        return _one_attribute(attribute, replace(cond, values=numbers)) if numbers else None
    if dtype == AttributeType.BOOLEAN.value and cond.op in (AttributeOp.EQUALS, AttributeOp.IN_LIST):
        flags = tuple(v for v in cond.values if isinstance(v, bool) or str(v).strip().lower() in ("true", "false"))
        return _one_attribute(attribute, replace(cond, values=flags)) if flags else None
    return None


def _reads_as_number(value: Value) -> bool:
    if isinstance(value, bool):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number == number and number not in (float("inf"), float("-inf"))  # NaN and infinities compare as text


def _check_values(cond: AttributeFilter) -> None:
    n = len(cond.values)
    if cond.op is AttributeOp.IS_EMPTY:
        return
    if cond.op is AttributeOp.BETWEEN and n != 2:
        raise ValidationError(f"'between' takes two values, the lower and the upper bound; got {n}.")
    if cond.op in _ORDER_OPS - {AttributeOp.BETWEEN} and n != 1:
        raise ValidationError(f"'{cond.op.value}' compares with one value; got {n}.")
    if n == 0:
        raise ValidationError(f"Give at least one value to compare {cond.attribute!r} with ('{cond.op.value}').")


def _one_attribute(attribute: Attribute, cond: AttributeFilter) -> ColumnElement[bool]:
    """The condition on one attribute, never NULL: false where the record lacks the attribute."""
    expr = attribute_expr(attribute)
    if cond.op is AttributeOp.IS_EMPTY:
        empty: ColumnElement[bool] = expr.is_(None)
        if attribute.data_type in _STRINGS:
            empty = or_(empty, expr == "")
        return empty
    dtype = attribute.data_type
    if dtype == AttributeType.BOOLEAN.value:
        if cond.op not in (AttributeOp.EQUALS, AttributeOp.IN_LIST):
            raise ValidationError(f"Attribute {attribute.name!r} is true/false: compare it with 'equals' only.")
        values = [_as_bool(v, attribute.name) for v in cond.values]
        return and_(expr.is_not(None), or_(*[expr.is_(v) if isinstance(v, bool) else expr == v for v in values]))
    if dtype in _NUMERIC and cond.op not in (AttributeOp.CONTAINS, AttributeOp.BEGINS_WITH, AttributeOp.ENDS_WITH):
        numbers = [_as_number(v, attribute) for v in cond.values]
        compare = _compare_order(expr, cond.op, numbers)
        return and_(expr.is_not(None), compare)
    if dtype in _NUMERIC:
        # Text comparisons on a number attribute look at its digits.
        expr = RECORD.c.data[attribute.name].as_string()
    if cond.op in _ORDER_OPS:
        return and_(expr.is_not(None), _compare_order(expr, cond.op, [str(v) for v in cond.values]))
    return and_(expr.is_not(None), _text_compare(expr, cond))


def _compare_order(expr: Any, op: AttributeOp, values: list[Any]) -> ColumnElement[bool]:
    if op is AttributeOp.BETWEEN:
        low, high = values
        return and_(expr >= low, expr <= high)
    if op is AttributeOp.GREATER:
        return expr > values[0]
    if op is AttributeOp.GREATER_EQUAL:
        return expr >= values[0]
    if op is AttributeOp.LESS:
        return expr < values[0]
    if op is AttributeOp.LESS_EQUAL:
        return expr <= values[0]
    return or_(*[expr == v for v in values])  # EQUALS, IN_LIST


def _text_compare(expr: Any, cond: AttributeFilter) -> ColumnElement[bool]:
    values = [str(v) for v in cond.values]
    op = cond.op
    if op in (AttributeOp.EQUALS, AttributeOp.IN_LIST):
        if cond.case_sensitive:
            return or_(*[expr == v for v in values])
        return or_(*[func.lower(expr) == v.lower() for v in values])
    clauses = []
    for v in values:
        if cond.case_sensitive:
            if op is AttributeOp.CONTAINS:
                clauses.append(_strpos(expr, v) > 0)
            elif op is AttributeOp.BEGINS_WITH:
                clauses.append(func.substr(expr, 1, len(v)) == v)
            else:  # ENDS_WITH: the last len(v) characters (a shorter value yields a shorter, unequal string)
                clauses.append(func.substr(expr, func.length(expr) - len(v) + 1) == v)
        else:
            esc = _escape_like(v)
            pattern = {AttributeOp.CONTAINS: f"%{esc}%", AttributeOp.BEGINS_WITH: f"{esc}%"}.get(op, f"%{esc}")
            clauses.append(expr.ilike(pattern, escape="\\"))
    return or_(*clauses)


def _as_number(value: Value, attribute: Attribute) -> int | float:
    if isinstance(value, bool):
        raise ValidationError(f"Attribute {attribute.name!r} holds numbers; got {value!r}. Enter a number.")
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise ValidationError(
            f"Attribute {attribute.name!r} holds numbers; {value!r} is not one. Enter a number such as 12 or 3.5."
        ) from e
    if attribute.data_type == AttributeType.INTEGER.value and number.is_integer():
        return int(number)
    return number


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def _as_bool(value: Value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValidationError(f"Attribute {name!r} is true/false; {value!r} is neither. Use true or false.")


__all__ = [
    "ANY_ATTRIBUTE", "PRESETS", "AnnotatorFilter", "AttributeFilter", "AttributeOp", "CommentFilter",
    "ConfidenceFilter", "Filter", "FilterContext", "HeuristicFilter", "HeuristicsDisagreeFilter", "LabelMatch",
    "ManualLabelFilter", "ManualWeakMismatchFilter", "Preset", "SliceFilter", "Sort", "SortBy", "WeakLabelFilter",
    "compile_condition", "compile_filter", "describe_condition", "preset",
]
