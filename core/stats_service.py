"""Statistics of a task's heuristics, computed from the store.

Reads every heuristic's stored votes (all heuristics with results, enabled or not, plus
heuristic labels imported from a file and not yet linked to a heuristic, by name) and
the valid manual labels, and returns the views of :mod:`core.heuristic_stats`:

- refinery's per heuristic and label counts (coverage, hits, overlaps, conflicts,
  true/false positives, estimated precision);
- Snorkel's ``lf_summary`` per heuristic (polarity, coverage, overlaps, conflicts as
  fractions; correct, incorrect, empirical accuracy);
- heuristic × heuristic overlap and conflict matrices.

Classification counts records. Extraction counts records and spans in refinery's view and
tokens in the Snorkel view and the matrices (TP/FP per token, as refinery does). A
multi-label task is seen per label: a vote for another label is not a conflict, and a
vote is correct when the label is among the record's manual labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from core.heuristic_stats import conflict_matrix, lf_summary, overlap_matrix, refinery_extraction_stats, refinery_stats
from core.labelmodels import check_manual_spans, manual_token_labels, token_votes_from_spans
from core.store.heuristics import Heuristic
from core.store.models import LabelAssociation, SourceType, TaskKind
from core.weak_supervision import VoteData, _task, load_votes

__all__ = ["HeuristicStatistics", "heuristic_statistics"]

OUTSIDE = "outside"


@dataclass(frozen=True)
class HeuristicStatistics:
    """All statistics of one task's heuristics.

    Attributes
    ----------
    task, kind : str
    unit : str
        What the Snorkel view and the matrices count: ``"records"`` or ``"tokens"``.
    n_records, n_manual : int
        Records in the project; records with a valid manual label.
    heuristics : list of str
        Column order of the matrices.
    refinery, summary, overlaps, conflicts : pandas.DataFrame
        See the module docstring. ``summary`` is indexed by heuristic name.
    """

    task: str
    kind: str
    unit: str
    n_records: int
    n_manual: int
    heuristics: list[str]
    refinery: pd.DataFrame
    summary: pd.DataFrame
    overlaps: pd.DataFrame
    conflicts: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: lists of row objects and matrices as ``{row: {column: value}}``."""
        summary = self.summary.reset_index()
        return {
            "task": self.task,
            "kind": self.kind,
            "unit": self.unit,
            "n_records": self.n_records,
            "n_manual": self.n_manual,
            "heuristics": self.heuristics,
            "refinery": _records(self.refinery),
            "summary": _records(summary),
            "overlaps": {str(k): {str(c): _plain(v) for c, v in row.items()} for k, row in self.overlaps.iterrows()},
            "conflicts": {str(k): {str(c): _plain(v) for c, v in row.items()} for k, row in self.conflicts.iterrows()},
        }


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _with_unlinked(session: Session, data: VoteData, *, task_id: int) -> VoteData:
    """Add imported heuristic labels that no heuristic owns, one column per source name."""
    stmt = sa_select(
        col(LabelAssociation.record_id), col(LabelAssociation.source_name), col(LabelAssociation.label_id),
        col(LabelAssociation.confidence), col(LabelAssociation.token_start), col(LabelAssociation.token_end),
    ).where(
        col(LabelAssociation.task_id) == task_id, col(LabelAssociation.source_type) == SourceType.HEURISTIC.value,
        col(LabelAssociation.heuristic_id).is_(None),
    )
    rows = session.execute(stmt).all()
    if not rows:
        return data
    names = sorted({str(r[1] or "imported") for r in rows})
    names = [n if n not in data.heuristic_names else f"{n} (imported)" for n in names]
    column = {n: len(data.heuristic_names) + j for j, n in enumerate(sorted({str(r[1] or "imported") for r in rows}))}
    m = len(data.heuristic_names) + len(names)
    row = {r: i for i, r in enumerate(data.record_ids)}
    label_index = {lid: i for i, lid in enumerate(data.label_ids)}
    L = np.full((len(data.record_ids), m), -1, dtype=np.int64)
    L[:, : data.L.shape[1]] = data.L
    for sets in data.label_sets:
        sets.extend(set() for _ in names)
    for spans in data.spans:
        spans.extend([] for _ in names)
    for rid, name, lid, conf, ts, te in rows:
        if rid not in row or lid not in label_index:
            continue
        i, j = row[rid], column[str(name or "imported")]
        if data.kind == TaskKind.EXTRACTION:
            if ts is not None and te is not None:
                data.spans[i][j].append((label_index[lid], int(ts), int(te), 1.0 if conf is None else float(conf)))
                data.n_tokens[i] = max(data.n_tokens[i], int(te))
        else:
            if data.label_sets:
                data.label_sets[i][j].add(label_index[lid])
            if L[i, j] < 0:
                L[i, j] = label_index[lid]
    data.L = L
    data.heuristic_names = [*data.heuristic_names, *names]
    return data


def heuristic_statistics(
    session: Session, *, project_id: int, task_id: int, normalize: str = "count"
) -> HeuristicStatistics:
    """Statistics of every heuristic of the task that has votes (enabled or not).

    Parameters
    ----------
    normalize
        Of the matrices: ``"count"``, ``"records"`` (fraction of all records or tokens)
        or ``"row_coverage"`` (share of the row heuristic's votes).
    """
    task = _task(session, project_id, task_id)
    with_votes = list(session.execute(
        select(Heuristic).where(Heuristic.task_id == task_id, col(Heuristic.last_run_state).is_not(None))
        .order_by(col(Heuristic.id))
    ).scalars().all())
    data = load_votes(session, project_id=project_id, task_id=task_id, heuristics=with_votes)
    data = _with_unlinked(session, data, task_id=task_id)
    names, labels = data.heuristic_names, data.label_names
    empty = pd.DataFrame(index=pd.Index([], name="heuristic"))
    if not labels:
        return HeuristicStatistics(task.name, task.kind, "records", len(data.record_ids), 0, names,
                                   pd.DataFrame(), empty, empty, empty)
    if data.kind == TaskKind.EXTRACTION:
        return _extraction(task.name, data, normalize)
    if data.kind == TaskKind.MULTILABEL:
        return _multilabel(task.name, data, normalize)
    return HeuristicStatistics(
        task=task.name, kind=task.kind, unit="records", n_records=len(data.record_ids), n_manual=data.n_manual,
        heuristics=names,
        refinery=refinery_stats(data.L, heuristic_names=names, label_names=labels, y=data.y),
        summary=lf_summary(data.L, heuristic_names=names, label_names=labels, y=data.y),
        overlaps=overlap_matrix(data.L, heuristic_names=names, normalize=normalize),  # type: ignore[arg-type]
        conflicts=conflict_matrix(data.L, heuristic_names=names, normalize=normalize),  # type: ignore[arg-type]
    )


def _multilabel(task: str, data: VoteData, normalize: str) -> HeuristicStatistics:
    names, labels = data.heuristic_names, data.label_names
    n, m = len(data.record_ids), len(names)
    parts = []
    for cls, label in enumerate(labels):
        # Binary view of one label: class 0 = "label", class 1 = "another label" (never voted here).
        L = np.where(np.array([[cls in s for s in row] for row in data.label_sets], dtype=bool).reshape(n, m), 0, -1)
        y = np.full(n, -1, dtype=np.int64)
        for i, chosen in data.y_sets.items():
            y[i] = 0 if cls in chosen else 1
        stats = refinery_stats(L, heuristic_names=names, label_names=[label, f"not {label}"], y=y)
        parts.append(stats[stats["label"] == label])
    refinery = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not refinery.empty:
        order = {name: j for j, name in enumerate(names)}
        refinery = refinery.sort_values("heuristic", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    voted = (data.L >= 0)
    summary = lf_summary(data.L, heuristic_names=names, label_names=labels)
    # every label a heuristic gave, not just the first one per record that data.L keeps
    summary["polarity"] = [
        [labels[c] for c in sorted(set().union(*(row[j] for row in data.label_sets)))] for j in range(m)
    ]
    summary["conflicts"] = 0.0
    correct = np.zeros(m, dtype=np.int64)
    incorrect = np.zeros(m, dtype=np.int64)
    for i, chosen in data.y_sets.items():
        for j in range(m):
            for cls in data.label_sets[i][j]:
                if cls in chosen:
                    correct[j] += 1
                else:
                    incorrect[j] += 1
    summary["correct"], summary["incorrect"] = correct, incorrect
    total = correct + incorrect
    summary["emp_acc"] = np.divide(correct, total, out=np.zeros(m), where=total > 0)
    overlaps = overlap_matrix(np.where(voted, 0, -1), heuristic_names=names, normalize=normalize)  # type: ignore[arg-type]
    conflicts = overlaps * 0
    return HeuristicStatistics(task, TaskKind.MULTILABEL.value, "records", n, data.n_manual, names, refinery, summary,
                               overlaps, conflicts)


def _extraction(task: str, data: VoteData, normalize: str) -> HeuristicStatistics:
    names, labels = data.heuristic_names, data.label_names
    k = len(labels)
    spans = [[[s[:3] for s in h] for h in row] for row in data.spans]
    manual = data.manual_spans if any(x is not None for x in data.manual_spans) else None
    refinery = refinery_extraction_stats(spans, data.n_tokens, heuristic_names=names, label_names=labels,
                                         manual_spans=manual)
    votes = token_votes_from_spans(spans, data.n_tokens, n_labels=k) if data.record_ids and names else None
    if votes is None:
        empty = pd.DataFrame(index=pd.Index([], name="heuristic"))
        return HeuristicStatistics(task, TaskKind.EXTRACTION.value, "tokens", len(data.record_ids), data.n_manual,
                                   names, refinery, empty, empty, empty)
    y = manual_token_labels(check_manual_spans(manual, data.n_tokens, k), votes.offsets, outside=k)
    token_labels = [*labels, OUTSIDE if OUTSIDE not in labels else "(outside)"]
    summary = lf_summary(votes.L, heuristic_names=names, label_names=token_labels, y=y)
    return HeuristicStatistics(
        task=task, kind=TaskKind.EXTRACTION.value, unit="tokens", n_records=len(data.record_ids),
        n_manual=data.n_manual, heuristics=names, refinery=refinery, summary=summary,
        overlaps=overlap_matrix(votes.L, heuristic_names=names, normalize=normalize),  # type: ignore[arg-type]
        conflicts=conflict_matrix(votes.L, heuristic_names=names, normalize=normalize),  # type: ignore[arg-type]
    )
