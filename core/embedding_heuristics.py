"""The active learner and zero-shot classification as heuristics of a task.

Each is an ``external`` heuristic (:func:`core.heuristics.store_external_votes`): its
votes are label associations like any other heuristic's, so they appear in the
statistics, can be enabled or disabled, and take part in weak supervision with their
probability as confidence. What produced them is kept in the heuristic's ``settings``
(``learner``, the embedding space, ``min_confidence``, the zero-shot label descriptions)
together with the figures of the last training (training size, cross-validated
accuracy), so :func:`retrain` can run it again with the same options.

The active learner stores, for each record it trained on, the label of a model fitted
on the other folds (see :mod:`core.active_learning`): the statistics computed later from
the stored votes against the manual labels are therefore measured only on records the
model that voted did not see.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from core.active_learning import DEFAULT_MIN_CONFIDENCE as LEARNER_MIN_CONFIDENCE
from core.active_learning import run_active_learner
from core.errors import ConflictError, NotFoundError, ValidationError
from core.heuristics import list_heuristics, store_external_votes
from core.store.heuristics import Heuristic, HeuristicKind
from core.store.models import LabelingTask
from core.zero_shot import DEFAULT_MIN_CONFIDENCE as ZERO_SHOT_MIN_CONFIDENCE
from core.zero_shot import DEFAULT_TEMPLATE, run_zero_shot

ACTIVE_LEARNER = "active_learner"
ZERO_SHOT = "zero_shot"
LEARNERS = {ACTIVE_LEARNER: "active learner", ZERO_SHOT: "zero-shot"}
# The heuristic's settings key that tells which learner produced its votes.
LEARNER_KEY = "learner"

__all__ = [
    "ACTIVE_LEARNER",
    "LEARNERS",
    "ZERO_SHOT",
    "LearnerRun",
    "add_active_learner",
    "add_zero_shot",
    "learner_of",
    "retrain",
]


@dataclass(frozen=True)
class LearnerRun:
    """What one training (and vote) of an active learner or a zero-shot heuristic did.

    Attributes
    ----------
    votes : int
        Records given a label (probability at least ``min_confidence``).
    training_size : int or None
        Active learner: records with a valid manual label and an embedding.
    cv_accuracy : float or None
        Active learner: accuracy of the out-of-fold labels on its training records;
        zero-shot: accuracy of its top label on the manually labeled records (None without any).
    """

    heuristic_id: int
    name: str
    learner: str
    created: bool
    votes: int
    records: int
    min_confidence: float
    attribute: str
    model: str
    training_size: int | None
    cv_accuracy: float | None
    cv_folds: int | None
    duration_s: float

    def summary(self) -> str:
        what = LEARNERS[self.learner]
        text = (f"{'Added' if self.created else 'Retrained'} {what} {self.name!r} on {self.attribute} · {self.model}: "
                f"{self.votes:,} of {self.records:,} record(s) labeled at confidence ≥ {self.min_confidence:g}")
        if self.learner == ACTIVE_LEARNER:
            text += (f"; trained on {self.training_size:,} manually labeled record(s), cross-validated accuracy "
                     f"{self.cv_accuracy:.1%} ({self.cv_folds} folds)")
        elif self.cv_accuracy is not None:
            text += f"; accuracy on the {self.training_size:,} manually labeled record(s) {self.cv_accuracy:.1%}"
        return text + "."


def learner_of(heuristic: Heuristic) -> str | None:
    """``active_learner`` or ``zero_shot`` when the heuristic is one of them, else None."""
    if heuristic.kind != HeuristicKind.EXTERNAL:
        return None
    learner = (heuristic.settings or {}).get(LEARNER_KEY)
    return learner if learner in LEARNERS else None


def _task(session: Session, project_id: int, task_id: int) -> LabelingTask:
    task = session.get(LabelingTask, task_id)
    if task is None or task.project_id != project_id:
        raise NotFoundError(f"No labeling task with id {task_id} in this project.")
    return task


def _existing(session: Session, *, project_id: int, task_id: int, name: str, learner: str) -> Heuristic | None:
    """The heuristic of that name when it is the same learner (to be retrained); refuses any other."""
    found = next((h for h in list_heuristics(session, project_id=project_id, task_id=task_id) if h.name == name), None)
    if found is not None and learner_of(found) != learner:
        kind = LEARNERS.get(learner_of(found) or "", str(found.kind).replace("_", " "))
        raise ConflictError(
            f"This task has a {kind} heuristic named {name!r} already; choose another name for the {LEARNERS[learner]}."
        )
    return found


def _check_confidence(value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValidationError(f"min_confidence must be between 0 and 1; got {value}.")
    return float(value)


def _store(
    session: Session, *, project_id: int, task_id: int, name: str, predictions: Any, description: str,
    settings: dict[str, Any], enabled: bool, duration_s: float, existed: bool,
) -> Heuristic:
    votes = {int(r): str(lab) for r, lab in zip(predictions["record_id"], predictions["label"], strict=True)}
    confidences = {int(r): min(1.0, max(0.0, float(c)))
                   for r, c in zip(predictions["record_id"], predictions["confidence"], strict=True)}
    h = store_external_votes(session, project_id=project_id, task_id=task_id, name=name, votes=votes,
                             confidences=confidences, description=description, duration_s=duration_s)
    h.settings = settings
    if not existed:
        h.enabled = bool(enabled)
    session.add(h)
    session.flush()
    return h


def add_active_learner(
    session: Session,
    *,
    project_id: int,
    task_id: int,
    name: str = ACTIVE_LEARNER,
    attribute: str | None = None,
    model: str | None = None,
    min_confidence: float = LEARNER_MIN_CONFIDENCE,
    enabled: bool = True,
) -> LearnerRun:
    """Train an active learner on the task's valid manual labels and store its votes as a heuristic.

    A heuristic of that name that is an active learner already is retrained with these options.

    Parameters
    ----------
    name
        The heuristic's name in the task.
    attribute, model
        The embedding space to learn from; may be omitted when the project has one.
    min_confidence
        Only labels at least this probable are stored (refinery's default is 0.8).
    enabled
        Whether a new heuristic takes part in weak supervision (a retrained one keeps its flag).

    Raises
    ------
    ValidationError
        The task is not a classification task, or has too few manual labels to cross-validate.
    ConflictError
        Another kind of heuristic has that name.
    """
    started = time.perf_counter()
    task = _task(session, project_id, task_id)
    _check_confidence(min_confidence)
    existing = _existing(session, project_id=project_id, task_id=task_id, name=name, learner=ACTIVE_LEARNER)
    result = run_active_learner(session, project_id=project_id, task=task.name, attribute=attribute, model=model,
                                min_confidence=min_confidence)
    settings = {LEARNER_KEY: ACTIVE_LEARNER, "attribute": result.attribute, "model": result.model,
                "min_confidence": min_confidence, "training_size": result.training_size,
                "cv_accuracy": result.cv_accuracy, "cv_folds": result.cv_folds}
    description = (f"Active learner on {result.attribute} · {result.model}: trained on {result.training_size} "
                   f"manual label(s), cross-validated accuracy {result.cv_accuracy:.0%}")
    duration = time.perf_counter() - started
    h = _store(session, project_id=project_id, task_id=task_id, name=name, predictions=result.predictions,
               description=description, settings=settings, enabled=enabled, duration_s=duration,
               existed=existing is not None)
    return LearnerRun(heuristic_id=h.id or 0, name=h.name, learner=ACTIVE_LEARNER, created=existing is None,
                      votes=len(result.predictions), records=_embedded(session, project_id, result.attribute,
                                                                        result.model),
                      min_confidence=min_confidence, attribute=result.attribute, model=result.model,
                      training_size=result.training_size, cv_accuracy=result.cv_accuracy, cv_folds=result.cv_folds,
                      duration_s=duration)


def add_zero_shot(
    session: Session,
    *,
    project_id: int,
    task_id: int,
    name: str = ZERO_SHOT,
    attribute: str | None = None,
    model: str | None = None,
    descriptions: Mapping[str, str] | None = None,
    template: str = DEFAULT_TEMPLATE,
    min_confidence: float = ZERO_SHOT_MIN_CONFIDENCE,
    enabled: bool = True,
) -> LearnerRun:
    """Label records by their similarity to the task's label names (and descriptions); store it as a heuristic.

    A heuristic of that name that is a zero-shot heuristic already is run again with these options.

    Parameters
    ----------
    descriptions
        Label name → a few words saying what the label means; they sharpen the prompts.
    template
        The prompt of each label; must contain ``{label}``.
    min_confidence
        Only labels at least this probable are stored.

    Raises
    ------
    ValidationError
        The task is not a classification task, has fewer than two labels, or a description names no label.
    ConflictError
        Another kind of heuristic has that name.
    """
    started = time.perf_counter()
    task = _task(session, project_id, task_id)
    _check_confidence(min_confidence)
    existing = _existing(session, project_id=project_id, task_id=task_id, name=name, learner=ZERO_SHOT)
    cleaned = {k: v.strip() for k, v in (descriptions or {}).items() if v and v.strip()}
    result = run_zero_shot(session, project_id=project_id, task=task.name, attribute=attribute, model=model,
                           descriptions=cleaned, template=template, min_confidence=min_confidence)
    settings = {LEARNER_KEY: ZERO_SHOT, "attribute": result.attribute, "model": result.model,
                "min_confidence": min_confidence, "descriptions": cleaned, "template": template,
                "labeled_records": result.labeled_records, "accuracy": result.accuracy}
    graded = "" if result.accuracy is None else (
        f", accuracy {result.accuracy:.0%} on {result.labeled_records} manual label(s)")
    description = f"Zero-shot on {result.attribute} · {result.model} from the label names{graded}"
    duration = time.perf_counter() - started
    h = _store(session, project_id=project_id, task_id=task_id, name=name, predictions=result.predictions,
               description=description, settings=settings, enabled=enabled, duration_s=duration,
               existed=existing is not None)
    return LearnerRun(heuristic_id=h.id or 0, name=h.name, learner=ZERO_SHOT, created=existing is None,
                      votes=len(result.predictions),
                      records=_embedded(session, project_id, result.attribute, result.model),
                      min_confidence=min_confidence, attribute=result.attribute, model=result.model,
                      training_size=result.labeled_records, cv_accuracy=result.accuracy, cv_folds=None,
                      duration_s=duration)


def retrain(session: Session, *, heuristic_id: int, min_confidence: float | None = None) -> LearnerRun:
    """Train an active learner (or run a zero-shot heuristic) again with its saved options, on today's labels.

    Parameters
    ----------
    min_confidence
        A new threshold; by default the saved one.
    """
    h = session.get(Heuristic, heuristic_id)
    if h is None:
        raise NotFoundError(f"No heuristic with id {heuristic_id}; it may have been deleted.")
    learner = learner_of(h)
    if learner is None:
        raise ValidationError(
            f"Heuristic {h.name!r} is not an active learner or a zero-shot heuristic; run it instead."
        )
    saved = dict(h.settings or {})
    common: dict[str, Any] = {
        "project_id": h.project_id, "task_id": h.task_id, "name": h.name, "attribute": saved.get("attribute"),
        "model": saved.get("model"),
        "min_confidence": float(saved.get("min_confidence", 0.8) if min_confidence is None else min_confidence),
    }
    if learner == ACTIVE_LEARNER:
        return add_active_learner(session, **common)
    return add_zero_shot(session, **common, descriptions=saved.get("descriptions") or {},
                         template=saved.get("template") or DEFAULT_TEMPLATE)


def _embedded(session: Session, project_id: int, attribute: str, model: str) -> int:
    from core.store.embeddings import resolve_space

    return resolve_space(session, project_id=project_id, attribute=attribute, model=model).count
