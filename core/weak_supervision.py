"""Weak supervision from the store: votes of a task's heuristics → one label model → stored labels.

:func:`load_votes` reads the votes of the enabled heuristics (their label associations)
and the valid manual labels into the arrays :mod:`core.labelmodels` works on;
:func:`run_weak_supervision` fits a label model and stores its output as
``WEAK_SUPERVISION`` label associations with their confidence, replacing the task's
previous result in one transaction, and records the run (:class:`WeakSupervisionRun`).

- classification: one label per record, from the model's vote matrix;
- multi-label: one binary model per label; every label it assigns is stored;
- extraction: token-level votes, spans back out (refinery's span rule for ``"refinery"``).

Records on which no heuristic voted get no label.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.errors import NotFoundError, ValidationError
from core.labelmodels import (
    DEFAULT_MODEL,
    MODELS,
    PredictedSpan,
    fit_predict_extraction,
    fit_predict_multilabel,
    make_label_model,
    multilabel_votes_from_lists,
    refinery_extraction,
)
from core.store import session_scope
from core.store.heuristics import Heuristic, RunState, WeakSupervisionRun
from core.store.models import (
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
from core.store.tasks import list_labels
from core.tokenize import load_tokens
from core.valid_labels import valid_manual_labels

__all__ = ["DEFAULT_MODEL", "MODEL_NAMES", "VoteData", "list_runs", "load_votes", "run_weak_supervision"]

#: Label models by name, as the page and the CLI offer them.
MODEL_NAMES = {"dawid_skene": "Dawid–Skene (EM)", "refinery": "refinery weighted vote", "majority": "Majority vote"}
_INSERT_BATCH = 5000


@dataclass
class VoteData:
    """The votes of a task's heuristics over all of its project's records, in running-id order.

    Attributes
    ----------
    kind : str
        The task's kind.
    record_ids : list of int
    heuristic_ids, heuristic_names : list
        One per column, in heuristic order.
    label_names, label_ids : list
        The task's labels; class ``i`` is ``label_names[i]``.
    L, C : numpy.ndarray
        Classification and multi-label: ``n × m`` votes (``-1`` = abstain; for multi-label
        the first label a heuristic gave) and their confidences (1.0 when not given).
    label_sets : list
        Multi-label: ``label_sets[i][j]`` the set of classes heuristic ``j`` gave record ``i``.
    y : numpy.ndarray
        Classification: valid manual label per record (``-1`` = none).
    y_sets : dict
        Multi-label: record position → set of manually assigned classes.
    spans : list
        Extraction: ``spans[i][j]`` = ``(label, start, end, confidence)`` of heuristic ``j``.
    n_tokens, offsets : list
        Extraction: token count and ``[start, end]`` character offsets per record.
    manual_spans : list
        Extraction: valid manual spans ``(label, start, end)`` per record, None where none.
    """

    kind: str
    record_ids: list[int]
    heuristic_ids: list[int]
    heuristic_names: list[str]
    label_names: list[str]
    label_ids: list[int]
    L: np.ndarray
    C: np.ndarray
    label_sets: list[list[set[int]]] = field(default_factory=list)
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    y_sets: dict[int, set[int]] = field(default_factory=dict)
    spans: list[list[list[tuple[int, int, int, float]]]] = field(default_factory=list)
    n_tokens: list[int] = field(default_factory=list)
    offsets: list[list[list[int]]] = field(default_factory=list)
    manual_spans: list[list[tuple[int, int, int]] | None] = field(default_factory=list)

    @property
    def n_manual(self) -> int:
        if self.kind == TaskKind.CLASSIFICATION:
            return int((self.y >= 0).sum())
        if self.kind == TaskKind.MULTILABEL:
            return len(self.y_sets)
        return sum(1 for m in self.manual_spans if m is not None)


def _task(session: Session, project_id: int, task_id: int) -> LabelingTask:
    task = session.get(LabelingTask, task_id)
    if task is None or task.project_id != project_id:
        raise NotFoundError(f"No labeling task with id {task_id} in this project.")
    return task


def voting_heuristics(session: Session, *, task_id: int, enabled_only: bool = True) -> list[Heuristic]:
    """Heuristics whose votes count: finished last run (and enabled, by default), in creation order."""
    stmt = select(Heuristic).where(Heuristic.task_id == task_id, Heuristic.last_run_state == RunState.FINISHED.value)
    if enabled_only:
        stmt = stmt.where(Heuristic.enabled.is_(True))  # type: ignore[attr-defined]
    return list(session.execute(stmt.order_by(col(Heuristic.id))).scalars().all())


def load_votes(
    session: Session, *, project_id: int, task_id: int, heuristics: list[Heuristic] | None = None
) -> VoteData:
    """The votes of ``heuristics`` (by default the enabled ones with results) and the manual labels."""
    task = _task(session, project_id, task_id)
    chosen = voting_heuristics(session, task_id=task_id) if heuristics is None else heuristics
    labels = list_labels(session, task_id)
    label_index = {label.id: i for i, label in enumerate(labels)}
    names = [label.name for label in labels]
    ids = [int(r) for r in session.execute(
        select(Record.id).where(Record.project_id == project_id).order_by(col(Record.running_id))
    ).scalars()]
    row = {r: i for i, r in enumerate(ids)}
    column = {h.id: j for j, h in enumerate(chosen)}
    n, m = len(ids), len(chosen)
    data = VoteData(
        kind=task.kind, record_ids=ids, heuristic_ids=[h.id or 0 for h in chosen],
        heuristic_names=[h.name for h in chosen], label_names=names, label_ids=[label.id or 0 for label in labels],
        L=np.full((n, m), -1, dtype=np.int64), C=np.zeros((n, m)),
    )
    stmt = sa_select(
        col(LabelAssociation.record_id), col(LabelAssociation.heuristic_id), col(LabelAssociation.label_id),
        col(LabelAssociation.confidence), col(LabelAssociation.token_start), col(LabelAssociation.token_end),
    ).where(
        col(LabelAssociation.task_id) == task_id, col(LabelAssociation.source_type) == SourceType.HEURISTIC.value,
        col(LabelAssociation.heuristic_id).in_(list(column)),
    )
    votes = session.execute(stmt).all() if m else []
    valid = valid_manual_labels(session, task_id=task_id)
    by_name = {name: i for i, name in enumerate(names)}
    if task.kind == TaskKind.EXTRACTION:
        data.spans = [[[] for _ in range(m)] for _ in range(n)]
        for rid, hid, lid, conf, ts, te in votes:
            if rid in row and ts is not None and te is not None:
                data.spans[row[rid]][column[hid]].append(
                    (label_index[lid], int(ts), int(te), 1.0 if conf is None else float(conf))
                )
        attribute = session.get(Attribute, task.attribute_id) if task.attribute_id else None
        stored = load_tokens(session, attribute_id=attribute.id or 0, record_ids=ids) if attribute else {}
        data.offsets = [stored.get(r, []) for r in ids]
        data.n_tokens = [len(o) for o in data.offsets]
        for i in range(n):  # records without stored tokens: as long as their spans need
            if not data.offsets[i]:
                data.n_tokens[i] = max([e for h in data.spans[i] for _, _, e, _ in h], default=0)
        data.manual_spans = [None] * n
        for rid, answer in valid.items():
            if rid in row:
                data.manual_spans[row[rid]] = [
                    (by_name[s[0]], int(s[1]), int(s[2])) for s in answer  # type: ignore[union-attr]
                    if s[0] in by_name and s[1] is not None and s[2] is not None
                    and int(s[2]) <= data.n_tokens[row[rid]]
                ]
        return data
    sets: list[list[set[int]]] = [[set() for _ in range(m)] for _ in range(n)]
    for rid, hid, lid, conf, _, _ in votes:
        if rid not in row:
            continue
        i, j = row[rid], column[hid]
        sets[i][j].add(label_index[lid])
        if data.L[i, j] < 0:
            data.L[i, j] = label_index[lid]
            data.C[i, j] = 1.0 if conf is None else float(conf)
    data.label_sets = sets
    data.y = np.full(n, -1, dtype=np.int64)
    for rid, answer in valid.items():
        if rid not in row:
            continue
        if task.kind == TaskKind.MULTILABEL:
            data.y_sets[row[rid]] = {by_name[x] for x in answer if x in by_name}
        elif isinstance(answer, str) and answer in by_name:
            data.y[row[rid]] = by_name[answer]
    return data


@dataclass(frozen=True)
class _Prediction:
    record_index: int
    label: int
    confidence: float
    start: int | None = None
    end: int | None = None


def _predict(data: VoteData, model: str, params: Mapping[str, Any]) -> list[_Prediction]:
    k = len(data.label_names)
    out: list[_Prediction] = []
    if data.kind == TaskKind.EXTRACTION:
        if model == "refinery":
            manual = data.manual_spans if any(x is not None for x in data.manual_spans) else None
            predicted: list[list[PredictedSpan]] = refinery_extraction(
                data.spans, data.n_tokens, n_labels=k, manual_spans=manual, **params  # type: ignore[arg-type]
            )
        else:
            lm = make_label_model(model, cardinality=k + 1, **params)
            predicted = fit_predict_extraction(data.spans, data.n_tokens, n_labels=k, model=lm,
                                               manual_spans=data.manual_spans)
        for i, spans in enumerate(predicted):
            out += [_Prediction(i, s.label, s.confidence, s.start, s.end) for s in spans]
        return out
    voted = (data.L >= 0).any(axis=1)
    if data.kind == TaskKind.MULTILABEL:
        V = multilabel_votes_from_lists([[sorted(s) for s in row] for row in data.label_sets], n_labels=k)
        y = np.full((len(data.record_ids), k), -1, dtype=np.int64)
        for i, chosen in data.y_sets.items():
            y[i] = 0
            y[i, sorted(chosen)] = 1
        assigned, confidence = fit_predict_multilabel(
            V, model=lambda: make_label_model(model, cardinality=2, **params), y=y
        )
        rows, cols = np.nonzero(np.logical_and(assigned, np.asarray(voted)[:, None]))
        out += [_Prediction(int(i), int(j), float(confidence[i, j])) for i, j in zip(rows, cols, strict=True)]
        return out
    lm = make_label_model(model, cardinality=k, **params)
    lm.fit(data.L, C=data.C, y=data.y if (data.y >= 0).any() else None)
    labels, confidence = lm.predict_with_confidence(data.L, C=data.C)
    picked = np.nonzero((labels >= 0) & voted)[0]
    return [_Prediction(int(i), int(labels[i]), float(confidence[i])) for i in picked]


def run_weak_supervision(
    engine: Engine,
    *,
    project_id: int,
    task_id: int,
    model: str = DEFAULT_MODEL,
    params: Mapping[str, Any] | None = None,
) -> WeakSupervisionRun:
    """Combine the enabled heuristics' votes with a label model and store one label per record.

    Parameters
    ----------
    model
        ``"dawid_skene"`` (default), ``"refinery"`` or ``"majority"``.
    params
        Keyword options of the model (e.g. ``{"tie_break": "lowest"}`` for majority).

    Returns
    -------
    WeakSupervisionRun
        The stored run, with its counts. Its labels replace the task's previous weak
        supervision labels in the same transaction: a failure leaves the old ones.

    Raises
    ------
    ValidationError
        For an unknown model or option, or when no enabled heuristic has votes.
    """
    if model not in MODELS:
        raise ValidationError(f"Unknown label model {model!r}; choose one of {', '.join(MODEL_NAMES)}.")
    options = dict(params or {})
    started = time.monotonic()
    with session_scope(engine) as session:
        task = _task(session, project_id, task_id)
        data = load_votes(session, project_id=project_id, task_id=task_id)
    if not data.heuristic_ids:
        raise ValidationError(
            f"Task {task.name!r} has no enabled heuristic with results: run the heuristics (and enable some) first."
        )
    if not data.label_names:
        raise ValidationError(f"Task {task.name!r} has no labels.")
    predictions = _predict(data, model, options)
    now = utcnow()
    with session_scope(engine) as session:
        run = WeakSupervisionRun(
            project_id=project_id, task_id=task_id, model=model, params=options,
            heuristics=list(data.heuristic_names), created_at=now, n_records=len(data.record_ids),
            n_labeled=len({p.record_index for p in predictions}), n_labels=len(predictions), n_manual=data.n_manual,
        )
        session.add(run)
        session.flush()
        _replace_labels(session, task_id=task_id, project_id=project_id, run=run, data=data, predictions=predictions)
        run.duration_s = round(time.monotonic() - started, 3)
        session.add(run)
        bump_revision(session, project_id)
    return run


def _replace_labels(
    session: Session, *, task_id: int, project_id: int, run: WeakSupervisionRun, data: VoteData,
    predictions: list[_Prediction],
) -> None:
    session.execute(
        delete(LabelAssociation).where(
            LabelAssociation.task_id == task_id,  # type: ignore[arg-type]
            LabelAssociation.source_type == SourceType.WEAK_SUPERVISION.value,  # type: ignore[arg-type]
        )
    )
    now = utcnow()
    base = {"project_id": project_id, "task_id": task_id, "source_type": SourceType.WEAK_SUPERVISION.value,
            "source_id": run.id, "heuristic_id": None, "source_name": run.model, "annotator_id": None,
            "is_gold": False, "created_at": now, "updated_at": now, "seconds_spent": None}
    rows = []
    for p in predictions:
        row = {**base, "record_id": data.record_ids[p.record_index], "label_id": data.label_ids[p.label],
               "confidence": round(p.confidence, 6), "token_start": p.start, "token_end": p.end,
               "char_start": None, "char_end": None}
        if p.start is not None and p.end is not None:
            offsets = data.offsets[p.record_index] if data.offsets else []
            if p.end <= len(offsets):
                row["char_start"], row["char_end"] = offsets[p.start][0], offsets[p.end - 1][1]
        rows.append(row)
    table = LabelAssociation.__table__  # type: ignore[attr-defined]
    for start in range(0, len(rows), _INSERT_BATCH):
        session.execute(table.insert(), rows[start : start + _INSERT_BATCH])


def list_runs(
    session: Session, *, project_id: int, task_id: int | None = None, limit: int = 50
) -> list[WeakSupervisionRun]:
    """The latest weak-supervision runs first."""
    stmt = select(WeakSupervisionRun).where(WeakSupervisionRun.project_id == project_id)
    if task_id is not None:
        stmt = stmt.where(WeakSupervisionRun.task_id == task_id)
    return list(session.execute(stmt.order_by(WeakSupervisionRun.id.desc()).limit(limit)).scalars().all())  # type: ignore[union-attr]


def label_distribution(session: Session, *, task_id: int) -> dict[str, int]:
    """Weak-supervision labels per label name (the latest run's result)."""
    stmt = (
        select(Label.name, LabelAssociation.record_id)
        .join(Label, col(Label.id) == col(LabelAssociation.label_id))
        .where(LabelAssociation.task_id == task_id,
               LabelAssociation.source_type == SourceType.WEAK_SUPERVISION.value)
    )
    counts: dict[str, int] = defaultdict(int)
    for name, _ in session.execute(stmt).all():
        counts[name] += 1
    return dict(counts)
