"""Label-quality numbers of one task, as DataFrames: what the dashboard plots and ``loupe metrics`` prints.

Pure functions compute each number from plain inputs (label lists, spans,
confidences), so they are tested against hand counts; :func:`task_metrics`
reads the store (optionally restricted by a filter or a slice) and calls them.

- **Progress**: records in scope, labeled manually (any annotator), with a
  valid manual label, weakly supervised, unlabeled; per annotator.
- **Distribution**: valid manual labels and weak-supervision labels per label
  (per record for classification, per label for multi-label, per span for
  extraction).
- **Confusion matrix**: rows are valid manual labels, columns weak-supervision
  labels, over records that have both. Extraction compares per token, with
  ``O`` for tokens outside every span. Multi-label answers are compared as
  whole label sets (``ham + spam``). Rates are row-normalised: each row shows
  what weak supervision said for records people gave that label.
- **Confidence histogram** of weak supervision, ten bins over [0, 1] by default.
- **Heuristics**: refinery's per heuristic and label statistics
  (:mod:`core.heuristic_stats`; multi-label tasks label by label, a vote
  for another label being no conflict); **agreement** of annotators
  (:mod:`core.agreement`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, case, func, select
from sqlmodel import Session

from core.errors import ValidationError
from core.filters import Filter, FilterContext, SliceFilter, compile_filter
from core.store.models import (
    Annotator,
    Label,
    LabelingTask,
    Record,
    SourceType,
    TaskKind,
)
from core.store.tables import ANNOTATOR, ASSOC, LABEL, RECORD, TOKENS
from core.valid_labels import valid_manual_labels

OUTSIDE = "O"
NO_LABEL = "(none)"
MANUAL = SourceType.MANUAL.value
WEAK = SourceType.WEAK_SUPERVISION.value
HEURISTIC_SOURCES = (SourceType.HEURISTIC.value, SourceType.MODEL.value)
SpanTuple = tuple[str, int, int]  # label, token start, token end (exclusive)


# --- pure functions -----------------------------------------------------------------------------------------------


def label_distribution(
    manual: Iterable[str], weak: Iterable[str], *, labels: Sequence[str] = ()
) -> pd.DataFrame:
    """Counts per label of manual and weak-supervision labels.

    Parameters
    ----------
    manual, weak
        One entry per counted label (a record's label, or a span's).
    labels
        The task's labels, in display order; labels seen but not listed follow.

    Returns
    -------
    pandas.DataFrame
        Index ``label``; integer columns ``manual`` and ``weak_supervision``.
    """
    m, w = Counter(manual), Counter(weak)
    order = _order(labels, [*m, *w])
    frame = pd.DataFrame(
        {"manual": [m.get(lb, 0) for lb in order], "weak_supervision": [w.get(lb, 0) for lb in order]},
        index=pd.Index(order, name="label"),
    )
    return frame.astype("int64")


def _order(labels: Sequence[str], seen: Iterable[str]) -> list[str]:
    out = list(dict.fromkeys(labels))
    out += sorted(set(seen) - set(out))
    return out


def confusion_matrix(manual: Sequence[str], weak: Sequence[str], *, labels: Sequence[str] = ()) -> pd.DataFrame:
    """Counts of (manual label, weak-supervision label) pairs, one pair per record or token.

    Returns
    -------
    pandas.DataFrame
        Square: index ``manual`` and columns ``weak_supervision`` hold the same
        labels (``labels`` first, others seen after), integer counts.
    """
    if len(manual) != len(weak):
        raise ValidationError(
            f"manual and weak must be the same length, but manual is length {len(manual)} "
            f"and weak is length {len(weak)}."
        )
    order = _order(labels, [*manual, *weak])
    pos = {lb: i for i, lb in enumerate(order)}
    counts = np.zeros((len(order), len(order)), dtype=np.int64)
    for a, b in zip(manual, weak, strict=True):
        counts[pos[a], pos[b]] += 1
    return pd.DataFrame(counts, index=pd.Index(order, name="manual"),
                        columns=pd.Index(order, name="weak_supervision"))


def row_rates(counts: pd.DataFrame) -> pd.DataFrame:
    """Each row divided by its sum (NaN for a label nobody gave manually)."""
    sums = counts.sum(axis=1).replace(0, np.nan)
    return counts.div(sums, axis=0).astype("float64")


def token_tags(spans: Iterable[SpanTuple], n_tokens: int, *, outside: str = OUTSIDE) -> list[str]:
    """One tag per token: the label of the span covering it, else ``outside`` (later spans win overlaps)."""
    tags = [outside] * n_tokens
    for label, start, end in spans:
        if not 0 <= start < end <= n_tokens:
            raise ValidationError(
                f"Span {label!r} covers tokens {start}..{end - 1}, but the text has {n_tokens} tokens; "
                "re-tokenize the attribute or fix the span."
            )
        for t in range(start, end):
            tags[t] = label
    return tags


def token_confusion(
    records: Iterable[tuple[Iterable[SpanTuple], Iterable[SpanTuple], int]],
    *,
    labels: Sequence[str] = (),
    outside: str = OUTSIDE,
) -> pd.DataFrame:
    """Per-token confusion of manual vs weak-supervision spans, ``outside`` for untagged tokens.

    Parameters
    ----------
    records
        Per record: manual spans, weak-supervision spans, token count.
    """
    manual: list[str] = []
    weak: list[str] = []
    for m, w, n in records:
        manual += token_tags(m, n, outside=outside)
        weak += token_tags(w, n, outside=outside)
    return confusion_matrix(manual, weak, labels=[*labels, outside])


def confidence_histogram(values: Iterable[float | None], *, bins: int = 10) -> pd.DataFrame:
    """Counts of confidences in ``bins`` equal bins over [0, 1] (the last bin includes 1.0).

    Returns
    -------
    pandas.DataFrame
        Columns ``bin_start``, ``bin_end``, ``count``; missing values are not counted.
    """
    if bins < 1:
        raise ValidationError(f"A histogram needs at least one bin; got {bins}.")
    data = np.array([v for v in values if v is not None and not np.isnan(v)], dtype=float)
    edges = _edges(bins)
    counts, _ = np.histogram(np.clip(data, 0.0, 1.0), bins=edges)
    return pd.DataFrame({"bin_start": edges[:-1].round(6), "bin_end": edges[1:].round(6),
                         "count": counts.astype("int64")})


def _edges(bins: int) -> np.ndarray:
    # i / bins, not linspace: 0.7 must be the edge 0.7 exactly (linspace gives 0.7000000000000001).
    return np.arange(bins + 1) / bins


def progress_frame(
    *, records: int, labeled: int, valid: int, weak: int, by_annotator: dict[str, int] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Progress as two frames: overall measures and records labeled per annotator.

    Returns
    -------
    tuple of pandas.DataFrame
        ``measure, records, share`` and ``annotator, records, share`` (share of all records in scope).
    """
    def share(n: int) -> float:
        return float(n) / records if records else 0.0

    overall = pd.DataFrame(
        [
            ("records", records, 1.0 if records else 0.0),
            ("labeled manually", labeled, share(labeled)),
            ("valid manual label", valid, share(valid)),
            ("weakly supervised", weak, share(weak)),
            ("unlabeled", records - labeled, share(records - labeled)),
        ],
        columns=["measure", "records", "share"],
    )
    people = sorted((by_annotator or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    annotators = pd.DataFrame([(a, n, share(n)) for a, n in people], columns=["annotator", "records", "share"])
    return overall, annotators


# --- reading the store --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskMetrics:
    """Every dashboard number of one task, within an optional filter or slice."""

    task: str
    kind: str
    records: int
    progress: pd.DataFrame
    by_annotator: pd.DataFrame
    distribution: pd.DataFrame
    confusion: pd.DataFrame
    confusion_rates: pd.DataFrame
    confusion_level: str  # "record", "token" or "label set"
    confidence: pd.DataFrame
    heuristics: pd.DataFrame
    agreement: Any = field(default=None, repr=False)  # core.agreement.AgreementReport, or None

    @property
    def labeled_share(self) -> float:
        """Share of the records in scope labeled manually (0 without records): the dashboard's progress bar."""
        return self.share("labeled manually")

    def share(self, measure: str) -> float:
        """Share of the records in scope for one measure of :attr:`progress` (``"weakly supervised"``...)."""
        found = self.progress.loc[self.progress["measure"] == measure, "share"]
        if found.empty:
            known = ", ".join(map(str, self.progress["measure"]))
            raise ValidationError(f"No progress measure {measure!r}; measures: {known}.")
        return float(found.iloc[0])

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``loupe metrics``: every number of the Dashboard page but the label errors.

        Confusion (counts and row rates), distribution, progress (counts and
        shares), annotators (counts and shares), confidence histogram,
        agreement and the heuristic statistics (one object per heuristic and
        label, the Dashboard's table).
        """
        labels = [str(c) for c in self.confusion.columns]
        return {
            "task": self.task,
            "kind": self.kind,
            "records": self.records,
            "confusion": {
                "labels": labels,
                "level": self.confusion_level,
                "matrix": [[int(v) for v in row] for row in self.confusion.to_numpy()],
                "rates": [[None if np.isnan(v) else round(float(v), 6) for v in row]
                          for row in self.confusion_rates.to_numpy()],
            },
            "distribution": {
                "manual": {str(k): int(v) for k, v in self.distribution["manual"].items()},
                "weak_supervision": {str(k): int(v) for k, v in self.distribution["weak_supervision"].items()},
            },
            "progress": {str(r.measure): int(r.records) for r in self.progress.itertuples(index=False)},
            "progress_share": {str(r.measure): round(float(r.share), 6) for r in self.progress.itertuples(index=False)},
            "annotators": {str(r.annotator): int(r.records) for r in self.by_annotator.itertuples(index=False)},
            "annotators_share": {str(r.annotator): round(float(r.share), 6)
                                 for r in self.by_annotator.itertuples(index=False)},
            "confidence_histogram": [
                {"bin_start": float(r.bin_start), "bin_end": float(r.bin_end), "count": int(r.count)}
                for r in self.confidence.itertuples(index=False)
            ],
            "agreement": self.agreement.as_dict() if self.agreement is not None else None,
            "heuristics": [{str(k): _json_number(v) for k, v in row.items()}
                           for row in self.heuristics.to_dict("records")],
        }


def _json_number(value: Any) -> Any:
    """A plain JSON value from a DataFrame cell (numpy integers and floats, NaN as None)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else round(float(value), 6)
    return value


def scope_filter(flt: Filter | None = None, *, slice_name: str | None = None) -> Filter:
    """The filter ``flt`` narrowed to a slice (the dashboard's "filter by slice")."""
    base = flt or Filter()
    return base.add(SliceFilter(slice_name)) if slice_name else base


def task_metrics(
    session: Session,
    *,
    project_id: int,
    task: str,
    flt: Filter | None = None,
    slice_name: str | None = None,
    bins: int = 10,
    with_heuristics: bool = True,
    with_agreement: bool = True,
) -> TaskMetrics:
    """Compute every dashboard number of ``task`` on the records matching ``flt`` (and ``slice_name``).

    Raises
    ------
    NotFoundError, ValidationError
        Unknown task or slice, or a bad filter.
    """
    ctx = FilterContext(session, project_id)
    target = ctx.task(task)
    scope = scope_filter(flt, slice_name=slice_name)
    where = compile_filter(session, project_id=project_id, flt=scope, style="in", context=ctx)
    in_scope = select(RECORD.c.id).where(where)
    restrict = bool(scope)
    tid = target.id or 0
    label_names = [lb.name for lb in session.execute(
        select(Label).where(LABEL.c.task_id == tid).order_by(LABEL.c.position, LABEL.c.id)).scalars()]

    def assoc(*conditions: Any) -> list[Any]:
        out = [ASSOC.c.task_id == tid, *conditions]
        if restrict:
            out.append(ASSOC.c.record_id.in_(in_scope))
        return out

    records = int(session.execute(select(func.count()).select_from(Record).where(where)).scalar_one())
    labeled = _distinct_records(session, assoc(ASSOC.c.source_type == MANUAL))
    weak_records = _distinct_records(session, assoc(ASSOC.c.source_type == WEAK))
    manual_ids = set(session.execute(
        select(ASSOC.c.record_id).where(*assoc(ASSOC.c.source_type == MANUAL)).distinct()
    ).scalars())
    valid = {rid: ans for rid, ans in valid_manual_labels(session, task_id=tid).items() if rid in manual_ids}
    per_annotator = dict(session.execute(
        select(func.coalesce(ANNOTATOR.c.name, "(unknown)"), func.count(func.distinct(ASSOC.c.record_id)))
        .select_from(ASSOC)
        .outerjoin(Annotator, ANNOTATOR.c.id == ASSOC.c.annotator_id)
        .where(*assoc(ASSOC.c.source_type == MANUAL))
        .group_by(ANNOTATOR.c.name)
    ).all())
    progress, by_annotator = progress_frame(records=records, labeled=labeled, valid=len(valid), weak=weak_records,
                                            by_annotator={str(k): int(v) for k, v in per_annotator.items()})
    weak_counts = dict(session.execute(
        select(LABEL.c.name, func.count()).select_from(ASSOC)
        .join(Label, LABEL.c.id == ASSOC.c.label_id)
        .where(*assoc(ASSOC.c.source_type == WEAK)).group_by(LABEL.c.name)
    ).all())
    manual_flat = [name for ans in valid.values() for name in _flatten(target.kind, ans)]
    distribution = label_distribution(manual_flat, [], labels=label_names)
    distribution["weak_supervision"] = [int(weak_counts.get(lb, 0)) for lb in distribution.index]
    extra = sorted(set(weak_counts) - set(distribution.index))
    for name in extra:
        distribution.loc[name] = [0, int(weak_counts[name])]
    confusion, level = _confusion(session, target, valid, label_names)
    confidence = _confidence_counts(session, assoc(ASSOC.c.source_type == WEAK), bins)
    heuristics = _heuristics(session, target, assoc, valid, label_names) if with_heuristics else pd.DataFrame()
    agreement = None
    if with_agreement:
        from core.agreement import agreement_report

        agreement = agreement_report(session, task_id=tid, record_ids=sorted(manual_ids) if restrict else None)
    return TaskMetrics(task=target.name, kind=target.kind, records=records, progress=progress,
                       by_annotator=by_annotator, distribution=distribution.astype("int64"), confusion=confusion,
                       confusion_rates=row_rates(confusion), confusion_level=level, confidence=confidence,
                       heuristics=heuristics, agreement=agreement)


def _distinct_records(session: Session, where: list[Any]) -> int:
    stmt = select(func.count(func.distinct(ASSOC.c.record_id))).where(*where)
    return int(session.execute(stmt).scalar_one())


def _flatten(kind: str, answer: Any) -> list[str]:
    if kind == TaskKind.CLASSIFICATION.value:
        return [str(answer)]
    if kind == TaskKind.MULTILABEL.value:
        return sorted(answer)
    return [span[0] for span in answer]


def _label_set(names: Iterable[str]) -> str:
    ordered = sorted(set(names))
    return " + ".join(ordered) if ordered else NO_LABEL


def _confusion(
    session: Session, task: LabelingTask, valid: dict[int, Any], labels: list[str]
) -> tuple[pd.DataFrame, str]:
    tid = task.id or 0
    ids = sorted(valid)
    weak_rows: dict[int, list[tuple[str, int | None, int | None]]] = defaultdict(list)
    for chunk in _chunks(ids):
        stmt = (
            select(ASSOC.c.record_id, LABEL.c.name, ASSOC.c.token_start, ASSOC.c.token_end)
            .join(Label, LABEL.c.id == ASSOC.c.label_id)
            .where(ASSOC.c.task_id == tid, ASSOC.c.source_type == WEAK,
                   ASSOC.c.record_id.in_(chunk))
            .order_by(ASSOC.c.record_id, ASSOC.c.id)
        )
        for rid, name, ts, te in session.execute(stmt).all():
            weak_rows[rid].append((name, ts, te))
    both = [rid for rid in ids if weak_rows.get(rid)]
    if task.kind == TaskKind.CLASSIFICATION.value:
        return confusion_matrix([str(valid[r]) for r in both], [weak_rows[r][-1][0] for r in both],
                                labels=labels), "record"
    if task.kind == TaskKind.MULTILABEL.value:
        manual = [_label_set(valid[r]) for r in both]
        weak = [_label_set(n for n, _, _ in weak_rows[r]) for r in both]
        return confusion_matrix(manual, weak), "label set"
    lengths = _token_counts(session, task, both)
    records = []
    for rid in both:
        m = [(s[0], int(s[1]), int(s[2])) for s in valid[rid] if s[1] is not None and s[2] is not None]
        w = [(n, int(ts), int(te)) for n, ts, te in weak_rows[rid] if ts is not None and te is not None]
        n_tokens = lengths.get(rid) or max([e for _, _, e in m + w], default=0)
        records.append((m, w, n_tokens))
    return token_confusion(records, labels=labels), "token"


def _token_counts(session: Session, task: LabelingTask, ids: list[int]) -> dict[int, int]:
    if task.attribute_id is None:
        return {}
    out: dict[int, int] = {}
    for chunk in _chunks(ids):
        stmt = select(TOKENS.c.record_id, TOKENS.c.offsets).where(
            TOKENS.c.attribute_id == task.attribute_id, TOKENS.c.record_id.in_(chunk)
        )
        out.update({int(r): len(o or []) for r, o in session.execute(stmt).all()})
    return out


def _chunks(ids: list[int], size: int = 900) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _confidence_counts(session: Session, where: list[Any], bins: int) -> pd.DataFrame:
    """The histogram in one SQL query (no confidences leave the database)."""
    if bins < 1:
        raise ValidationError(f"A histogram needs at least one bin; got {bins}.")
    edges = _edges(bins)
    conf = ASSOC.c.confidence
    sums = []
    for i in range(bins):
        low, high = float(edges[i]), float(edges[i + 1])
        inside = and_(conf >= low, conf <= high) if i == bins - 1 else and_(conf >= low, conf < high)
        sums.append(func.coalesce(func.sum(case((inside, 1), else_=0)), 0))
    counts = session.execute(select(*sums).where(*where)).one()
    return pd.DataFrame({"bin_start": edges[:-1].round(6), "bin_end": edges[1:].round(6),
                         "count": np.array([int(c) for c in counts], dtype="int64")})


def _heuristics(
    session: Session, task: LabelingTask, assoc: Any, valid: dict[int, Any], labels: list[str]
) -> pd.DataFrame:
    """refinery's heuristic statistics on the records in scope that some heuristic labeled."""
    from core.heuristic_stats import refinery_extraction_stats, refinery_stats

    stmt = (
        select(ASSOC.c.record_id, ASSOC.c.source_name, ASSOC.c.source_type, LABEL.c.name,
               ASSOC.c.token_start, ASSOC.c.token_end)
        .join(Label, LABEL.c.id == ASSOC.c.label_id)
        .where(*assoc(ASSOC.c.source_type.in_(HEURISTIC_SOURCES)))
    )
    rows = session.execute(stmt).all()
    if not rows:
        return pd.DataFrame()
    names = sorted({str(name or source) for _, name, source, _, _, _ in rows})
    col = {n: j for j, n in enumerate(names)}
    ids = sorted({int(r[0]) for r in rows})
    row = {rid: i for i, rid in enumerate(ids)}
    cls = {n: i for i, n in enumerate(labels)}
    if task.kind == TaskKind.MULTILABEL.value:
        return _multilabel_heuristics(rows, names, ids, valid, labels)
    if task.kind == TaskKind.CLASSIFICATION.value:
        L = np.full((len(ids), len(names)), -1, dtype=np.int64)
        for rid, name, source, label, _, _ in rows:
            L[row[rid], col[str(name or source)]] = cls[label]
        y = np.array([cls.get(str(valid[r]), -1) if r in valid else -1 for r in ids], dtype=np.int64)
        return refinery_stats(L, heuristic_names=names, label_names=labels, y=y)
    spans: list[list[list[tuple[int, int, int]]]] = [[[] for _ in names] for _ in ids]
    for rid, name, source, label, ts, te in rows:
        if ts is not None and te is not None:
            spans[row[rid]][col[str(name or source)]].append((cls[label], int(ts), int(te)))
    lengths = _token_counts(session, task, ids)
    n_tokens = [lengths.get(r) or max([e for h in spans[row[r]] for _, _, e in h], default=0) for r in ids]
    manual = [
        [(cls[s[0]], int(s[1]), int(s[2])) for s in valid[r] if s[1] is not None] if r in valid else None for r in ids
    ]
    return refinery_extraction_stats(spans, n_tokens, heuristic_names=names, label_names=labels,
                                     manual_spans=manual)


def _multilabel_heuristics(
    rows: Sequence[Any], names: list[str], ids: list[int], valid: dict[int, Any], labels: list[str]
) -> pd.DataFrame:
    """refinery's statistics of a multi-label task, label by label (as :mod:`core.stats_service` sees them).

    Each label is a yes/no question: a heuristic covers a record for label
    ``l`` when it gave ``l``; another heuristic's vote for another label is no
    conflict (a record may have both); a vote is a true positive when ``l`` is
    among the record's valid manual labels, a false positive when the record
    has a valid answer without ``l``.
    """
    from core.heuristic_stats import refinery_stats

    col = {n: j for j, n in enumerate(names)}
    row = {rid: i for i, rid in enumerate(ids)}
    gave: dict[str, set[tuple[int, int]]] = defaultdict(set)
    for rid, name, source, label, _, _ in rows:
        gave[str(label)].add((row[int(rid)], col[str(name or source)]))
    parts = []
    for label in labels:
        if not gave.get(label):
            continue
        L = np.full((len(ids), len(names)), -1, dtype=np.int64)
        for i, j in gave[label]:
            L[i, j] = 0
        y = np.array([(0 if label in valid[r] else 1) if r in valid else -1 for r in ids], dtype=np.int64)
        stats = refinery_stats(L, heuristic_names=names, label_names=[label, f"not {label}"], y=y)
        parts.append(stats[stats["label"] == label])
    if not parts:
        return pd.DataFrame()
    order = {name: j for j, name in enumerate(names)}
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values("heuristic", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
