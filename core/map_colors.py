"""What colours the points of the embedding map: one value per record for one task.

Four layers, each a mapping record id → value (records without one are absent):

- ``manual``: the valid manual label (:func:`core.valid_labels.valid_manual_labels`);
- ``weak_supervision``: the label(s) of the latest weak-supervision run;
- ``confidence``: how sure weak supervision is (the top label's confidence; for
  extraction the weakest span's), a float in [0, 1];
- ``heuristic``: the label(s) one heuristic voted.

Several labels (multi-label tasks, spans) are joined with ``", "`` in name order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

from sqlalchemy import func, select
from sqlmodel import Session, col

from core.errors import NotFoundError, ValidationError
from core.store.heuristics import Heuristic
from core.store.models import Label, LabelAssociation, LabelingTask, SourceType, TaskKind

ColorBy = Literal["manual", "weak_supervision", "confidence", "heuristic"]
COLOR_BY: tuple[ColorBy, ...] = ("manual", "weak_supervision", "confidence", "heuristic")
_CHUNK = 900


def _joined(names: Iterable[str]) -> str:
    return ", ".join(sorted(set(names)))


def _labels_of(session: Session, *, task_id: int, source: SourceType, heuristic_id: int | None,
               record_ids: list[int]) -> dict[int, str]:
    found: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(record_ids), _CHUNK):
        stmt = (
            select(col(LabelAssociation.record_id), col(Label.name))
            .join(Label, col(Label.id) == col(LabelAssociation.label_id))
            .where(LabelAssociation.task_id == task_id, LabelAssociation.source_type == source.value,  # type: ignore[arg-type]
                   LabelAssociation.record_id.in_(record_ids[start : start + _CHUNK]))  # type: ignore[attr-defined]
        )
        if heuristic_id is not None:
            stmt = stmt.where(LabelAssociation.heuristic_id == heuristic_id)  # type: ignore[arg-type]
        for record_id, name in session.execute(stmt).all():
            found[int(record_id)].append(str(name))
    return {rid: _joined(names) for rid, names in found.items()}


def _confidence(session: Session, *, task: LabelingTask, record_ids: list[int]) -> dict[int, float]:
    agg = func.min if task.kind == TaskKind.EXTRACTION else func.max
    out: dict[int, float] = {}
    for start in range(0, len(record_ids), _CHUNK):
        stmt = (
            select(col(LabelAssociation.record_id), agg(func.coalesce(col(LabelAssociation.confidence), 0.0)))
            .where(LabelAssociation.task_id == task.id,  # type: ignore[arg-type]
                   LabelAssociation.source_type == SourceType.WEAK_SUPERVISION.value,  # type: ignore[arg-type]
                   LabelAssociation.record_id.in_(record_ids[start : start + _CHUNK]))  # type: ignore[attr-defined]
            .group_by(col(LabelAssociation.record_id))
        )
        out.update({int(r): float(c) for r, c in session.execute(stmt).all()})
    return out


def map_colors(
    session: Session,
    *,
    task_id: int,
    by: ColorBy,
    record_ids: Iterable[int],
    heuristic_id: int | None = None,
) -> dict[int, str] | dict[int, float]:
    """The value each of ``record_ids`` is coloured by (see the module docstring).

    Raises
    ------
    ValidationError
        An unknown layer, or ``heuristic`` without a heuristic.
    NotFoundError
        The task or the heuristic does not exist (the heuristic must be the task's).
    """
    if by not in COLOR_BY:
        raise ValidationError(f"Colour the map by one of {', '.join(COLOR_BY)}; got {by!r}.")
    task = session.get(LabelingTask, task_id)
    if task is None:
        raise NotFoundError(f"No labeling task with id {task_id}; it may have been deleted.")
    ids = sorted({int(r) for r in record_ids})
    if by == "manual":
        from core.valid_labels import valid_manual_labels

        wanted = set(ids)
        out: dict[int, str] = {}
        for rid, answer in valid_manual_labels(session, task_id=task_id).items():
            if rid in wanted:
                if isinstance(answer, str):
                    out[rid] = answer
                else:  # a multi-label set, or extraction spans (label first)
                    out[rid] = _joined(part if isinstance(part, str) else part[0] for part in answer)
        return out
    if by == "confidence":
        return _confidence(session, task=task, record_ids=ids)
    if by == "heuristic":
        if heuristic_id is None:
            raise ValidationError("Colouring the map by a heuristic needs the heuristic.")
        heuristic = session.get(Heuristic, heuristic_id)
        if heuristic is None or heuristic.task_id != task_id:
            raise NotFoundError(f"Task {task.name!r} has no heuristic with id {heuristic_id}.")
        return _labels_of(session, task_id=task_id, source=SourceType.HEURISTIC, heuristic_id=heuristic_id,
                          record_ids=ids)
    return _labels_of(session, task_id=task_id, source=SourceType.WEAK_SUPERVISION, heuristic_id=None,
                      record_ids=ids)
