"""Inter-annotator agreement: percent agreement and Cohen's kappa per pair, Krippendorff's alpha over all.

The pure functions take answers as arrays (one value per item, ``None`` or NaN
where an annotator gave none) or as an items × annotators DataFrame; pairs are
compared on the items both annotators labeled. :func:`agreement_report` reads a
task's manual labels from the store: classification and multi-label answers
are compared per record (a multi-label answer as a whole set), extraction
answers per token (a token's label, or ``O`` outside every span) on records both
annotators marked spans in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from core.errors import NotFoundError, ValidationError
from core.store.models import Annotator, Label, LabelAssociation, LabelingTask, SourceType, TaskKind

OUTSIDE = "O"
PAIR_COLUMNS = ["a", "b", "n", "percent", "cohen_kappa"]


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False  # sets, tuples: a present answer


def _paired(a: Sequence[Hashable | None], b: Sequence[Hashable | None]) -> tuple[list[Any], list[Any]]:
    if len(a) != len(b):
        raise ValidationError(f"a and b must be the same length, but a is length {len(a)} and b is length {len(b)}.")
    both = [(x, y) for x, y in zip(a, b, strict=True) if not _missing(x) and not _missing(y)]
    return [x for x, _ in both], [y for _, y in both]


def percent_agreement(a: Sequence[Hashable | None], b: Sequence[Hashable | None]) -> float:
    """Share of items both labeled on which they agree, in percent (NaN without common items)."""
    x, y = _paired(a, b)
    if not x:
        return float("nan")
    return 100.0 * sum(p == q for p, q in zip(x, y, strict=True)) / len(x)


def cohen_kappa(a: Sequence[Hashable | None], b: Sequence[Hashable | None]) -> float:
    """Cohen's kappa of two annotators on their common items: (p_o − p_e) / (1 − p_e).

    NaN when there are no common items or when chance agreement is 1 (both used
    one and the same label throughout), as scikit-learn's ``cohen_kappa_score``.
    """
    x, y = _paired(a, b)
    n = len(x)
    if n == 0:
        return float("nan")
    observed = sum(p == q for p, q in zip(x, y, strict=True)) / n
    count_x: dict[Any, int] = defaultdict(int)
    count_y: dict[Any, int] = defaultdict(int)
    for p, q in zip(x, y, strict=True):
        count_x[p] += 1
        count_y[q] += 1
    expected = sum(count_x[k] * count_y.get(k, 0) for k in count_x) / (n * n)
    if np.isclose(expected, 1.0):
        return float("nan")
    return float((observed - expected) / (1.0 - expected))


def krippendorff_alpha(answers: pd.DataFrame | Sequence[Sequence[Hashable | None]]) -> float:
    """Krippendorff's alpha for nominal data; rows are items (units), columns annotators (coders).

    alpha = 1 − (n − 1) · Σ_{c≠k} o_ck / Σ_{c≠k} n_c · n_k, with the coincidence
    matrix o built from the items at least two annotators labeled. NaN when
    fewer than two values are pairable or only one category occurs.
    """
    rows = answers.itertuples(index=False, name=None) if isinstance(answers, pd.DataFrame) else answers
    coincidence: dict[tuple[Any, Any], float] = defaultdict(float)
    for row in rows:
        values = [v for v in row if not _missing(v)]
        m = len(values)
        if m < 2:
            continue
        for i, j in ((i, j) for i in range(m) for j in range(m) if i != j):
            coincidence[(values[i], values[j])] += 1.0 / (m - 1)
    totals: dict[Any, float] = defaultdict(float)
    for (c, _k), weight in coincidence.items():
        totals[c] += weight
    n = sum(totals.values())
    if n <= 1:
        return float("nan")
    disagreement = sum(w for (c, k), w in coincidence.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1) * disagreement / expected)


def pairwise_agreement(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per annotator pair: ``a``, ``b``, ``n`` (common items), ``percent``, ``cohen_kappa``."""
    rows = []
    for a, b in combinations(list(answers.columns), 2):
        x, y = answers[a].tolist(), answers[b].tolist()
        n = len(_paired(x, y)[0])
        rows.append({"a": a, "b": b, "n": n, "percent": percent_agreement(x, y), "cohen_kappa": cohen_kappa(x, y)})
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def agreement_matrix(answers: pd.DataFrame, *, value: str = "percent") -> pd.DataFrame:
    """Annotator × annotator matrix of ``percent``, ``cohen_kappa`` or ``n`` (diagonal: own items, 100, 1)."""
    if value not in {"percent", "cohen_kappa", "n"}:
        raise ValidationError(f"value is one of 'percent', 'cohen_kappa', 'n'; got {value!r}.")
    names = list(answers.columns)
    matrix = pd.DataFrame(np.nan, index=names, columns=names, dtype=float)
    for row in pairwise_agreement(answers).itertuples(index=False):
        matrix.loc[row.a, row.b] = matrix.loc[row.b, row.a] = getattr(row, value)
    for name in names:
        own = int(answers[name].map(lambda v: not _missing(v)).sum())
        matrix.loc[name, name] = {"percent": 100.0, "cohen_kappa": 1.0, "n": float(own)}[value] if own else np.nan
    return matrix


def token_answers(
    spans: dict[tuple[Any, Any], Iterable[tuple[str, int, int]]], n_tokens: dict[Any, int]
) -> pd.DataFrame:
    """Per-token answers for extraction: rows (item, token), columns annotators, values label or ``O``.

    ``spans`` maps (item, annotator) to that annotator's spans ``(label, start, end)``
    (end exclusive); an annotator without spans in an item has no answer there.
    """
    annotators = sorted({a for _, a in spans}, key=str)
    items = sorted({i for i, _ in spans}, key=str)
    first: dict[Any, int] = {}
    index: list[tuple[Any, int]] = []
    for item in items:
        first[item] = len(index)
        index.extend((item, t) for t in range(n_tokens.get(item, 0)))
    columns: dict[Any, list[Any]] = {a: [None] * len(index) for a in annotators}
    for (item, annotator), annotator_spans in spans.items():
        size = n_tokens.get(item, 0)
        tags = [OUTSIDE] * size
        for label, start, end in annotator_spans:
            for t in range(max(start, 0), min(end, size)):
                tags[t] = label
        columns[annotator][first[item] : first[item] + size] = tags
    if not index:
        return pd.DataFrame(columns=annotators, dtype=object)
    return pd.DataFrame(columns, index=pd.MultiIndex.from_tuples(index, names=["item", "token"]), dtype=object)


# --- store-reading wrapper -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementReport:
    """Agreement of a task's annotators: pairs, percent matrix, Krippendorff's alpha."""

    task: str
    kind: str
    level: str  # "record" or "token"
    pairs: pd.DataFrame
    matrix: pd.DataFrame
    alpha: float
    items: int  # records labeled by at least two annotators
    answers: pd.DataFrame = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The ``loupe agreement --json`` object, exactly ``{"pairs": [...], "krippendorff_alpha": A}``; NaN as null.

        The task and the level (record or token) are the caller's to show (the text output does).
        """
        return {
            "pairs": [
                {"a": r.a, "b": r.b, "n": int(r.n), "percent": _num(r.percent), "cohen_kappa": _num(r.cohen_kappa)}
                for r in self.pairs.itertuples(index=False)
            ],
            "krippendorff_alpha": _num(self.alpha),
        }


def _num(value: float) -> float | None:
    return None if value is None or np.isnan(value) else round(float(value), 6)


def agreement_report(session: Session, *, task_id: int, record_ids: Iterable[int] | None = None) -> AgreementReport:
    """Agreement of the manual labels of a task, optionally on some records only (a slice)."""
    task = session.get(LabelingTask, task_id)
    if task is None:
        raise NotFoundError(f"No labeling task with id {task_id}.")
    stmt = (
        select(LabelAssociation.record_id, Annotator.name, Label.name, LabelAssociation.token_start,
               LabelAssociation.token_end)
        .join(Label, Label.id == LabelAssociation.label_id)
        .outerjoin(Annotator, Annotator.id == LabelAssociation.annotator_id)
        .where(LabelAssociation.task_id == task_id, LabelAssociation.source_type == SourceType.MANUAL.value)
    )
    if record_ids is not None:
        stmt = stmt.where(LabelAssociation.record_id.in_(list(record_ids)))  # type: ignore[attr-defined]
    parts: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for rid, who, label, ts, te in session.execute(stmt).all():
        parts[(rid, who or "(unknown)")].append((label, ts, te))
    per_record: dict[int, set[str]] = defaultdict(set)
    for rid, who in parts:
        per_record[rid].add(who)
    items = sum(1 for names in per_record.values() if len(names) >= 2)
    if task.kind == TaskKind.EXTRACTION:
        level, answers = "token", _extraction_answers(session, task, parts)
        common_records = _records_frame(parts, lambda p: "x")
    else:
        level = "record"
        answers = _records_frame(parts, _category)
        common_records = answers
    pairs = pairwise_agreement(answers)
    if level == "token":
        # n counts common records (as for classification); percent and kappa are over their tokens.
        counts = pairwise_agreement(common_records).set_index(["a", "b"])["n"]
        pairs["n"] = [int(counts.get((a, b), 0)) for a, b in zip(pairs["a"], pairs["b"], strict=True)]
    return AgreementReport(task=task.name, kind=task.kind, level=level, pairs=pairs,
                           matrix=agreement_matrix(answers), alpha=krippendorff_alpha(answers), items=items,
                           answers=answers)


def _category(parts: list[Any]) -> str:
    # A multi-label answer is compared as a whole set.
    return " | ".join(sorted({p[0] for p in parts}))


def _records_frame(parts: dict[tuple[int, str], list[Any]], value: Any) -> pd.DataFrame:
    annotators = sorted({who for _, who in parts})
    records = sorted({rid for rid, _ in parts})
    frame = pd.DataFrame(None, index=pd.Index(records, name="record_id"), columns=annotators, dtype=object)
    for (rid, who), p in parts.items():
        frame.loc[rid, who] = value(p)
    return frame


def _extraction_answers(session: Session, task: LabelingTask, parts: dict[tuple[int, str], list[Any]]) -> pd.DataFrame:
    from core.tokenize import load_tokens

    record_ids = sorted({rid for rid, _ in parts})
    offsets = load_tokens(session, attribute_id=task.attribute_id or 0, record_ids=record_ids)
    n_tokens = {rid: len(offsets.get(rid, [])) for rid in record_ids}
    for (rid, _), p in parts.items():
        # Spans past the stored tokens (a re-tokenized text) still count up to their end.
        n_tokens[rid] = max([n_tokens[rid], *(te or 0 for _, _, te in p)])
    spans = {key: [(lb, ts or 0, te or 0) for lb, ts, te in p] for key, p in parts.items()}
    return token_answers(spans, n_tokens)
