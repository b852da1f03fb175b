"""Statistics of heuristics, as pandas DataFrames ready for a grid or a heatmap.

Two views of the same votes, plus what neither has:

* :func:`refinery_stats` / :func:`refinery_extraction_stats`: refinery's per heuristic
  *and label* counts (coverage, hits, overlaps, conflicts, true/false positives,
  estimated precision).
* :func:`lf_summary`: Snorkel's ``LFAnalysis.lf_summary`` per heuristic (polarity and
  fractions of records covered, overlapped and in conflict; correct, incorrect and
  empirical accuracy against manual labels).
* :func:`overlap_matrix` / :func:`conflict_matrix`: heuristic × heuristic.

Inputs follow :mod:`core.labelmodels`: ``L`` is ``n × m`` (``-1`` = abstain), ``y`` holds
valid manual labels (``-1`` = none). Shapes are validated once here, at the edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from core.errors import ValidationError
from core.labelmodels import (
    Span,
    check_manual_labels,
    check_manual_spans,
    check_spans,
    check_vote_matrix,
    extraction_precision,
    manual_token_labels,
    token_votes_from_spans,
)

__all__ = [
    "conflict_matrix",
    "lf_summary",
    "overlap_matrix",
    "refinery_extraction_stats",
    "refinery_stats",
]

REFINERY_COLUMNS = [
    "heuristic",
    "label",
    "coverage",
    "hits",
    "overlaps",
    "conflicts",
    "true_positives",
    "false_positives",
    "est_precision",
]


def _check_names(names: Sequence[str], *, expected: int, what: str, where: str) -> list[str]:
    names = [str(name) for name in names]
    if len(names) != expected:
        raise ValidationError(
            f"{what} must have one name per {where} ({expected}), but it has {len(names)}; "
            f"pass the names in the order of the {where}s."
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValidationError(f"{what} must be unique, but these repeat: {', '.join(duplicates)}.")
    return names


def _validate(
    L: ArrayLike, heuristic_names: Sequence[str], label_names: Sequence[str], y: ArrayLike | None
) -> tuple[np.ndarray, list[str], list[str], np.ndarray | None]:
    labels = [str(name) for name in label_names]
    if not labels:
        raise ValidationError("label_names is empty; a task needs at least one label.")
    votes = check_vote_matrix(L, cardinality=len(labels))
    names = _check_names(heuristic_names, expected=votes.shape[1], what="heuristic_names", where="column of L")
    _check_names(labels, expected=len(labels), what="label_names", where="label")
    manual = check_manual_labels(y, n=votes.shape[0], cardinality=len(labels))
    return votes, names, labels, manual


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with 0.0 where the denominator is 0 (refinery's and Snorkel's rule)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def _class_counts(votes: np.ndarray, k: int) -> np.ndarray:
    """``n × k``: how many heuristics voted each class on each record."""
    return np.stack([(votes == cls).sum(axis=1) for cls in range(k)], axis=1)


# --------------------------------------------------------------------------- refinery


def refinery_stats(
    L: ArrayLike,
    *,
    heuristic_names: Sequence[str],
    label_names: Sequence[str],
    y: ArrayLike | None = None,
    include_empty: bool = False,
) -> pd.DataFrame:
    """refinery's statistics of classification heuristics, one row per heuristic and label.

    Parameters
    ----------
    L
        ``n × m`` votes.
    heuristic_names
        ``m`` names, in column order.
    label_names
        ``k`` names; class ``i`` is ``label_names[i]``.
    y
        Valid manual labels (``-1`` = none). Without them TP, FP and precision are 0.
    include_empty
        Also list (heuristic, label) pairs the heuristic never voted (all zeros).

    Returns
    -------
    pandas.DataFrame
        Columns ``heuristic, label, coverage, hits, overlaps, conflicts, true_positives,
        false_positives, est_precision``, for heuristic ``h`` and label ``l``:

        * coverage: records ``h`` labeled ``l``; hits: the same (one vote per record).
        * overlaps: of those, records where another heuristic also gave ``l``.
        * conflicts: of those, records where another heuristic gave a different label.
        * true_positives / false_positives: of those, records whose manual label is /
          is not ``l`` (records without a manual label are not counted).
        * est_precision: ``TP / (TP + FP)``, 0 when undefined.
    """
    votes, names, labels, manual = _validate(L, heuristic_names, label_names, y)
    k = len(labels)
    per_class = _class_counts(votes, k)
    total = per_class.sum(axis=1)
    rows = []
    for cls, label in enumerate(labels):
        said = votes == cls  # n × m
        others_same = (per_class[:, cls] >= 2)[:, None]  # h's own vote is one of them
        others_diff = (total - per_class[:, cls] > 0)[:, None]
        coverage = said.sum(axis=0)
        overlaps = (said & others_same).sum(axis=0)
        conflicts = (said & others_diff).sum(axis=0)
        if manual is None:
            tp = fp = np.zeros(votes.shape[1], dtype=np.int64)
        else:
            tp = (said & (manual == cls)[:, None]).sum(axis=0)
            fp = (said & ((manual >= 0) & (manual != cls))[:, None]).sum(axis=0)
        for j, name in enumerate(names):
            if coverage[j] or include_empty:
                rows.append(
                    (
                        name,
                        label,
                        int(coverage[j]),
                        int(coverage[j]),
                        int(overlaps[j]),
                        int(conflicts[j]),
                        int(tp[j]),
                        int(fp[j]),
                        float(_safe_ratio(tp[j], tp[j] + fp[j])),
                    )
                )
    frame = pd.DataFrame(rows, columns=REFINERY_COLUMNS)
    # heuristics in column order, then labels in task order: what the grid shows
    order = {name: i for i, name in enumerate(names)}
    label_order = {label: i for i, label in enumerate(labels)}
    frame = frame.sort_values(
        ["heuristic", "label"], key=lambda s: s.map(order if s.name == "heuristic" else label_order)
    )
    return frame.reset_index(drop=True)


def refinery_extraction_stats(
    spans: Sequence[Sequence[Iterable[Span]]],
    n_tokens: Sequence[int],
    *,
    heuristic_names: Sequence[str],
    label_names: Sequence[str],
    manual_spans: Sequence[Iterable[Span] | None] | None = None,
    include_empty: bool = False,
) -> pd.DataFrame:
    """refinery's statistics of extraction heuristics, one row per heuristic and label.

    Parameters
    ----------
    spans
        ``spans[i][j]``: spans ``(label, start, end)`` (end exclusive) of heuristic ``j``
        on record ``i``.
    n_tokens
        Token count of each record.
    heuristic_names, label_names
        Names in order.
    manual_spans
        Valid manual spans per record; ``None`` for a record nobody labeled, ``[]`` for a
        labeled record without entities (all its tokens are then "outside").
    include_empty
        Also list pairs without any span.

    Returns
    -------
    pandas.DataFrame
        Columns ``heuristic, label, coverage, hits, overlaps, conflicts, true_positives,
        false_positives, false_negatives, est_precision``:

        * coverage: records with at least one span of the label; hits: number of spans.
        * overlaps / conflicts: spans sharing at least one token with another heuristic's
          span of the same / a different label.
        * TP, FP, FN per token on manually labeled records (see
          :func:`core.labelmodels.extraction_precision`); est_precision = TP / (TP + FP),
          0 when undefined.
    """
    labels = [str(name) for name in label_names]
    k = len(labels)
    clean = check_spans(spans, n_tokens, k)
    m = len(clean[0]) if clean else len(heuristic_names)
    names = _check_names(heuristic_names, expected=m, what="heuristic_names", where="heuristic")
    _check_names(labels, expected=k, what="label_names", where="label")
    manual = check_manual_spans(manual_spans, n_tokens, k)

    votes = token_votes_from_spans(clean, n_tokens, n_labels=k) if clean else None
    coverage = np.zeros((m, k), dtype=np.int64)
    hits = np.zeros((m, k), dtype=np.int64)
    overlaps = np.zeros((m, k), dtype=np.int64)
    conflicts = np.zeros((m, k), dtype=np.int64)
    tp = fp = fn = np.zeros((m, k), dtype=np.int64)
    if votes is not None and votes.L.size:
        tok = votes.L
        per_class = _class_counts(tok, k)  # T × k
        total = per_class.sum(axis=1)
        # prefix sums turn "any token of the span" into two lookups per span
        zero = np.zeros((1, k), dtype=np.int64)
        cum_class = np.vstack([zero, np.cumsum(per_class, axis=0)])
        cum_total = np.concatenate([[0], np.cumsum(total)])
        starts, ends, heur, lab = [], [], [], []
        for i, row in enumerate(clean):
            base = int(votes.offsets[i])
            seen: set[tuple[int, int]] = set()
            for j, items in enumerate(row):
                for label, start, end, _ in items:
                    starts.append(base + start)
                    ends.append(base + end)
                    heur.append(j)
                    lab.append(label)
                    hits[j, label] += 1
                    if (j, label) not in seen:
                        seen.add((j, label))
                        coverage[j, label] += 1
        s, e, h, lb = (np.asarray(a, dtype=np.int64) for a in (starts, ends, heur, lab))
        for j in range(m):
            own = tok[:, j]
            for label in range(k):
                pick = (h == j) & (lb == label)
                if not pick.any():
                    continue
                own_same = np.concatenate([[0], np.cumsum(own == label)])
                own_any = np.concatenate([[0], np.cumsum(own >= 0)])
                same = (cum_class[e[pick], label] - cum_class[s[pick], label]) - (own_same[e[pick]] - own_same[s[pick]])
                other_votes = (cum_total[e[pick]] - cum_total[s[pick]]) - (own_any[e[pick]] - own_any[s[pick]])
                overlaps[j, label] = int((same > 0).sum())
                conflicts[j, label] = int((other_votes - same > 0).sum())
        if manual is not None:
            y_tok = manual_token_labels(manual, votes.offsets, outside=k)
            tp, fp, fn = extraction_precision(votes, y_tok, n_labels=k)
    rows = [
        (
            names[j],
            labels[label],
            int(coverage[j, label]),
            int(hits[j, label]),
            int(overlaps[j, label]),
            int(conflicts[j, label]),
            int(tp[j, label]),
            int(fp[j, label]),
            int(fn[j, label]),
            float(_safe_ratio(tp[j, label], tp[j, label] + fp[j, label])),
        )
        for j in range(m)
        for label in range(k)
        if hits[j, label] or include_empty
    ]
    columns = [*REFINERY_COLUMNS[:-1], "false_negatives", "est_precision"]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------- Snorkel


def lf_summary(
    L: ArrayLike,
    *,
    heuristic_names: Sequence[str],
    label_names: Sequence[str],
    y: ArrayLike | None = None,
) -> pd.DataFrame:
    """Snorkel's ``LFAnalysis.lf_summary``: one row per heuristic, indexed by name.

    Parameters
    ----------
    L
        ``n × m`` votes.
    heuristic_names, label_names
        Names in order.
    y
        Valid manual labels (``-1`` = none); adds ``correct``, ``incorrect``, ``emp_acc``.

    Returns
    -------
    pandas.DataFrame
        ``polarity``: sorted label names the heuristic emitted. Fractions of all ``n``
        records: ``coverage`` (the heuristic voted), ``overlaps`` (it and at least one other
        heuristic voted), ``conflicts`` (it voted and another heuristic gave a different
        label). With ``y``: ``correct`` / ``incorrect`` votes on records with a manual
        label, ``emp_acc`` = correct / (correct + incorrect), 0 when undefined.

    Notes
    -----
    Same definitions as Snorkel. One difference when ``y`` has ``-1`` entries: Snorkel's
    Emp. Acc. assumes every record has a gold label and counts a vote on a record with
    ``-1`` as wrong; here those records are left out, so ``emp_acc`` always equals
    correct / (correct + incorrect), as Snorkel's does when ``y`` is complete.
    """
    votes, names, labels, manual = _validate(L, heuristic_names, label_names, y)
    n = votes.shape[0]
    voted = votes >= 0
    n_votes = voted.sum(axis=1)
    distinct = (_class_counts(votes, len(labels)) > 0).sum(axis=1)
    denominator = max(n, 1)  # an empty matrix has fractions 0, not nan
    data: dict[str, object] = {
        "polarity": [[labels[c] for c in np.unique(votes[voted[:, j], j])] for j in range(votes.shape[1])],
        "coverage": voted.sum(axis=0) / denominator,
        "overlaps": (voted & (n_votes >= 2)[:, None]).sum(axis=0) / denominator,
        # with two distinct labels on a record, every voter has someone disagreeing with it
        "conflicts": (voted & (distinct >= 2)[:, None]).sum(axis=0) / denominator,
    }
    if manual is not None:
        known = (manual >= 0)[:, None] & voted
        correct = (known & (votes == manual[:, None])).sum(axis=0)
        incorrect = known.sum(axis=0) - correct
        data["correct"] = correct
        data["incorrect"] = incorrect
        data["emp_acc"] = _safe_ratio(correct, correct + incorrect)
    return pd.DataFrame(data, index=pd.Index(names, name="heuristic"))


# --------------------------------------------------------------------------- pairwise


Normalize = Literal["count", "records", "row_coverage"]


def _pairwise(L: ArrayLike, heuristic_names: Sequence[str], normalize: Normalize, *, conflicts: bool) -> pd.DataFrame:
    votes = check_vote_matrix(L)
    names = _check_names(heuristic_names, expected=votes.shape[1], what="heuristic_names", where="column of L")
    if normalize not in ("count", "records", "row_coverage"):
        raise ValidationError(f"normalize must be 'count', 'records' or 'row_coverage', but it is {normalize!r}.")
    voted = (votes >= 0).astype(np.int64)
    both = voted.T @ voted  # records where both voted; diagonal = coverage
    if conflicts:
        k = int(votes.max()) + 1 if votes.size else 0
        agree = np.zeros_like(both)
        for cls in range(k):
            said = (votes == cls).astype(np.int64)
            agree += said.T @ said
        matrix = both - agree
    else:
        matrix = both
    if normalize == "records":
        values = matrix / max(votes.shape[0], 1)
    elif normalize == "row_coverage":
        values = _safe_ratio(matrix, np.broadcast_to(np.diag(both)[:, None], matrix.shape))
    else:
        values = matrix
    index = pd.Index(names, name="heuristic")
    return pd.DataFrame(values, index=index, columns=pd.Index(names, name="other"))


def overlap_matrix(L: ArrayLike, *, heuristic_names: Sequence[str], normalize: Normalize = "count") -> pd.DataFrame:
    """Heuristic × heuristic: records on which both voted (any labels).

    Parameters
    ----------
    L
        ``n × m`` votes.
    heuristic_names
        ``m`` names.
    normalize
        ``"count"`` (records), ``"records"`` (fraction of all records) or
        ``"row_coverage"`` (fraction of the row heuristic's votes: "of the records A
        labeled, B also labeled this share"; not symmetric).

    Returns
    -------
    pandas.DataFrame
        Indexed and columned by heuristic name; the diagonal is each heuristic's coverage
        (1.0 with ``"row_coverage"`` when it voted at all).
    """
    return _pairwise(L, heuristic_names, normalize, conflicts=False)


def conflict_matrix(L: ArrayLike, *, heuristic_names: Sequence[str], normalize: Normalize = "count") -> pd.DataFrame:
    """Heuristic × heuristic: records on which both voted with different labels.

    Parameters
    ----------
    L
        ``n × m`` votes.
    heuristic_names
        ``m`` names.
    normalize
        As in :func:`overlap_matrix`.

    Returns
    -------
    pandas.DataFrame
        Indexed and columned by heuristic name; the diagonal is 0.
    """
    return _pairwise(L, heuristic_names, normalize, conflicts=True)
