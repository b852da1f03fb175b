"""The valid manual label of each record for one task, as refinery defines it.

- one annotator labeled the record: that annotator's label;
- several annotators: the gold-star label, if one is marked;
- no gold: the label all annotators agree on;
- otherwise: none.

Only valid manual labels are reference data for statistics, metrics and exports.
For multi-label tasks an annotator's answer is their set of labels; for
extraction it is their set of spans. Answers are compared as wholes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlmodel import Session, col

from core.store.models import Label, LabelAssociation, LabelingTask, SourceType, TaskKind

Span = tuple[str, int, int, int | None, int | None]  # label, token start, token end, char start, char end
Answer = str | frozenset[str] | tuple[Span, ...]


def resolve_answers(answers: dict[Any, Answer], gold: Answer | None) -> Answer | None:
    """The valid answer among annotators' ``answers`` (keyed by annotator), given a gold answer or None."""
    if not answers:
        return None
    if len(answers) == 1:
        return next(iter(answers.values()))
    if gold is not None:
        return gold
    distinct = set(answers.values())
    return distinct.pop() if len(distinct) == 1 else None


def valid_manual_labels(
    session: Session, *, task_id: int, record_ids: Collection[int] | None = None
) -> dict[int, Answer]:
    """Map record id → valid manual answer for the task; records without one are absent.

    Classification answers are label names, multi-label answers frozensets of
    names, extraction answers sorted tuples of spans ``(label, token_start,
    token_end, char_start, char_end)``.

    Parameters
    ----------
    session
        An open session.
    task_id
        The labeling task.
    record_ids
        Only these records (an export reads a chunk at a time); None reads the whole task.
    """
    task = session.get(LabelingTask, task_id)
    if task is None:
        return {}
    kind = task.kind
    extraction = kind == TaskKind.EXTRACTION.value
    manual: list[ColumnElement[bool]] = [
        col(LabelAssociation.task_id) == task_id,
        col(LabelAssociation.source_type) == SourceType.MANUAL.value,
    ]
    scope = manual
    wanted: set[int] | None = None
    if record_ids is not None:
        wanted = set(record_ids)
        if not wanted:
            return {}
        low, high = min(wanted), max(wanted)
        if high - low < 2 * len(wanted):
            # A chunk of records imported together has nearly consecutive ids: one range scan of the index
            # beats a lookup per id. Rows of records in the range but not asked for are skipped below.
            scope = [*manual, col(LabelAssociation.record_id).between(low, high)]
        else:
            scope = [*manual, col(LabelAssociation.record_id).in_(_literal_ids(sorted(wanted)))]
    # Plain rows through the connection: ORM row processing would double an export's time here.
    conn = session.connection()
    labels = select(col(Label.id), col(Label.name)).where(col(Label.task_id) == task_id)
    names: dict[Any, str] = {i: n for i, n in conn.execute(labels)}
    # Most records carry one manual label row, valid whatever the rule (one annotator): those are answered
    # from (record, label) pairs; only records with several rows go through the rule below.
    spans = [col(LabelAssociation.token_start), col(LabelAssociation.token_end), col(LabelAssociation.char_start),
             col(LabelAssociation.char_end)]
    pairs = [col(LabelAssociation.record_id), col(LabelAssociation.label_id)]
    rows: list[Any] = list(conn.execute(select(*pairs, *(spans if extraction else [])).where(*scope)).all())
    first = {row[0]: row for row in rows}
    several: set[int] = set()
    if len(first) < len(rows):
        several = {rid for rid, n in Counter(row[0] for row in rows).items()
                   if n > 1 and (wanted is None or rid in wanted)}
    singles = [row for rid, row in first.items() if rid not in several and (wanted is None or rid in wanted)]
    out = single_row_answers(kind, singles, names)
    if not several:
        return out
    # Read again only the records with several rows (or the whole scope when they are most of it).
    detail = scope if 2 * len(several) > len(first) else [
        *manual, col(LabelAssociation.record_id).in_(_literal_ids(sorted(several)))]
    stmt = (
        select(col(LabelAssociation.record_id), col(LabelAssociation.annotator_id), col(Label.name),
               col(LabelAssociation.is_gold), *spans)  # spans for every kind: None outside extraction
        .join(Label, col(Label.id) == col(LabelAssociation.label_id))
        .where(*detail)
        .order_by(col(LabelAssociation.id))  # the latest write last (see _answer)
    )
    parts: dict[int, dict[Any, list[Any]]] = defaultdict(lambda: defaultdict(list))
    gold_annotators: dict[int, set[Any]] = defaultdict(set)
    detail_rows: list[Any] = list(conn.execute(stmt).all())
    for record_id, annotator_id, name, is_gold, ts, te, cs, ce in detail_rows:
        if record_id not in several:
            continue
        part = (name, ts, te, cs, ce) if extraction else name
        parts[record_id][annotator_id].append(part)
        if is_gold:
            gold_annotators[record_id].add(annotator_id)
    for record_id, by_annotator in parts.items():
        answers = {a: _answer(kind, p) for a, p in by_annotator.items()}
        # The gold star marks an annotator's whole answer (a multi-label set, all spans), not single rows.
        starred = {answers[a] for a in gold_annotators.get(record_id, ())}
        gold = starred.pop() if len(starred) == 1 else None
        valid = resolve_answers(answers, gold)
        if valid is not None:
            out[record_id] = valid
    return out


def single_row_answers(kind: str, rows: Iterable[Sequence[Any]], names: Mapping[Any, str]) -> dict[int, Answer]:
    """Record id → valid answer of records with a single manual label row in a task: that row's answer.

    One row means one annotator, whose answer is valid whatever the rule. ``rows`` are ``(record id, label id)``,
    followed for extraction tasks by ``token_start, token_end, char_start, char_end``; ``names`` maps label ids
    to names. The answer is what :func:`_answer` gives for one row: the name, a set of it, a tuple of one span.
    """
    if kind == TaskKind.EXTRACTION.value:
        return {row[0]: ((names[row[1]], *row[2:6]),) for row in rows}
    if kind == TaskKind.MULTILABEL.value:
        return {row[0]: frozenset((names[row[1]],)) for row in rows}
    rows = rows if isinstance(rows, list) else list(rows)
    # Built in C (zip and map): exports read this for every record.
    return dict(zip(map(itemgetter(0), rows), map(names.__getitem__, map(itemgetter(1), rows)), strict=True))


def _literal_ids(ids: list[int]) -> BindParameter[list[int]]:
    """An IN list of integers inlined in the SQL: a large one would exceed SQLite's limit on bound parameters."""
    return bindparam("record_ids", value=ids, expanding=True, literal_execute=True, unique=True)


def _answer(kind: str, parts: list[Any]) -> Answer:
    if kind == TaskKind.CLASSIFICATION.value:
        # A single-label task holds one label per annotator; the latest write wins if a race left two.
        return parts[-1]
    if kind == TaskKind.MULTILABEL.value:
        return frozenset(parts)
    return tuple(sorted(set(parts), key=lambda s: (s[1] if s[1] is not None else -1, s[0])))
