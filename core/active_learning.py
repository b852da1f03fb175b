"""Active learner: a classifier on the embeddings of manually labeled records (a heuristic).

refinery's contract: trained on the embeddings of the records with a valid manual
label, it predicts every record and emits a label only above ``min_confidence``
(default 0.8), with its probability as confidence.

What a user relies on is that its statistics are honest, so it never grades its
own homework: each *training* record gets the prediction of a model fitted on
the other folds (``cross_val_predict``), and every statistic (cross-validated
accuracy, per-label precision) is computed from those predictions only. The
labels it emits for training records are those out-of-fold predictions too, so
statistics computed later from the stored heuristic labels are just as honest.
Records without a manual label get the prediction of a model fitted on all of
the training records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sqlmodel import Session

from core.errors import ValidationError
from core.store.embeddings import load_vectors, resolve_space
from core.store.models import Attribute, TaskKind
from core.store.tasks import get_task, list_labels

DEFAULT_MIN_CONFIDENCE = 0.8
MAX_FOLDS = 5
STATS_COLUMNS = ["label", "training", "coverage", "true_positives", "false_positives", "est_precision"]


def _check_min_confidence(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValidationError(f"min_confidence must be between 0 and 1; got {value}.")
    return float(value)


class ActiveLearner:
    """Logistic regression on embeddings with out-of-fold predictions for its training records.

    Parameters
    ----------
    min_confidence
        Labels are emitted only when the predicted probability is at least this.
    C
        Inverse regularisation strength of the logistic regression.
    max_folds
        Folds of the cross-validation (fewer when the rarest label has fewer examples).
    random_state
        Seed of the fold split.

    Attributes
    ----------
    classes_ : ndarray
        Label names, in the column order of the probabilities.
    estimator_ : LogisticRegression
        Fitted on all training records; predicts records outside the training set.
    cv_proba_ : ndarray
        Out-of-fold probabilities of the training records, ``(n_train, n_classes)``.
    n_folds_ : int
        Folds actually used.
    """

    def __init__(
        self,
        *,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        C: float = 10.0,
        max_folds: int = MAX_FOLDS,
        random_state: int = 0,
    ) -> None:
        self.min_confidence = min_confidence
        self.C = C
        self.max_folds = max_folds
        self.random_state = random_state

    def __repr__(self) -> str:
        return f"ActiveLearner(min_confidence={self.min_confidence}, C={self.C}, max_folds={self.max_folds})"

    def fit(self, X: ArrayLike, y: Sequence[str]) -> ActiveLearner:
        """Fit on embeddings ``X`` (n × d) and label names ``y``, and compute out-of-fold probabilities.

        Raises
        ------
        ValidationError
            Shapes disagree, fewer than two labels are used, or a label has a single example.
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        _check_min_confidence(self.min_confidence)
        X_arr = np.asarray(X, dtype=np.float32)
        y_arr = np.asarray([str(v) for v in y], dtype=object)
        if X_arr.ndim != 2 or len(X_arr) != len(y_arr):
            raise ValidationError(
                f"X must be a 2D matrix with one row per label, but X has shape {X_arr.shape} "
                f"and there are {len(y_arr)} labels."
            )
        classes, counts = np.unique(y_arr, return_counts=True)
        if len(classes) < 2:
            raise ValidationError(
                f"The active learner needs manual labels of at least two different labels; found "
                f"{len(classes)} ({', '.join(map(str, classes)) or 'none'}). Label more records."
            )
        if counts.min() < 2:
            rare = ", ".join(f"{c!r}" for c, n in zip(classes, counts, strict=True) if n < 2)
            raise ValidationError(
                f"Every label needs at least two manually labeled records to be cross-validated; "
                f"{rare} has only one. Label another record with it, or remove the label."
            )
        self.n_folds_ = int(min(self.max_folds, counts.min()))
        self.estimator_ = LogisticRegression(C=self.C, max_iter=2000)
        folds = StratifiedKFold(n_splits=self.n_folds_, shuffle=True, random_state=self.random_state)
        self.cv_proba_ = cross_val_predict(self.estimator_, X_arr, y_arr, cv=folds, method="predict_proba")
        self.estimator_.fit(X_arr, y_arr)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Probabilities of the model fitted on all training records, ``(n, n_classes)``."""
        return np.asarray(self.estimator_.predict_proba(np.asarray(X, dtype=np.float32)))

    def emit(self, proba: np.ndarray) -> tuple[list[str | None], np.ndarray]:
        """Top label per row if its probability reaches ``min_confidence`` (else None), and that probability."""
        top = proba.argmax(axis=1)
        confidence = proba[np.arange(len(proba)), top]
        labels = [
            str(self.classes_[t]) if c >= self.min_confidence else None for t, c in zip(top, confidence, strict=True)
        ]
        return labels, confidence


def emitted_label_stats(
    emitted: Mapping[int, str | None],
    reference: Mapping[int, str],
    *,
    labels: Sequence[str],
    training: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """refinery-style per-label statistics of emitted labels against valid manual labels.

    Columns: ``label``, ``training`` (training records with that label), ``coverage``
    (records labeled with it), ``true_positives`` / ``false_positives`` (on records with
    a manual label) and ``est_precision`` = TP / (TP + FP), 0 when undefined.
    """
    rows = []
    for label in labels:
        covered = [rid for rid, lab in emitted.items() if lab == label]
        tp = sum(1 for rid in covered if reference.get(rid) == label)
        fp = sum(1 for rid in covered if rid in reference and reference[rid] != label)
        rows.append({
            "label": label,
            "training": int((training or {}).get(label, 0)),
            "coverage": len(covered),
            "true_positives": tp,
            "false_positives": fp,
            "est_precision": tp / (tp + fp) if tp + fp else 0.0,
        })
    return pd.DataFrame(rows, columns=STATS_COLUMNS)


@dataclass(frozen=True)
class ActiveLearnerResult:
    """Emitted labels and honest statistics of one active-learner run.

    Attributes
    ----------
    predictions : DataFrame
        One row per record with an emitted label: ``record_id``, ``label``, ``confidence``,
        ``trained_on`` (True for training records, whose label comes from the out-of-fold model).
    training_size : int
        Records with a valid manual label and an embedding.
    cv_accuracy : float
        Accuracy of the out-of-fold top labels on the training records (ignores ``min_confidence``).
    cv_folds : int
        Folds used.
    stats : DataFrame
        :func:`emitted_label_stats` of the out-of-fold labels above ``min_confidence``, i.e.
        measured only on records each model did not train on.
    """

    task: str
    attribute: str
    model: str
    min_confidence: float
    predictions: pd.DataFrame
    training_size: int
    cv_accuracy: float
    cv_folds: int
    stats: pd.DataFrame
    skipped_unembedded: int = 0
    params: dict[str, Any] = field(default_factory=dict)


def run_active_learner(
    session: Session,
    *,
    project_id: int,
    task: str,
    attribute: str | None = None,
    model: str | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    C: float = 10.0,
    max_folds: int = MAX_FOLDS,
    random_state: int = 0,
) -> ActiveLearnerResult:
    """Train an active learner for a classification task on stored embeddings and predict every record.

    Parameters
    ----------
    project_id, task
        The project and the name of its classification task.
    attribute, model
        The embedding space to train on; may be omitted when the project has one.
    min_confidence
        Only predictions at least this probable are emitted.
    C, max_folds, random_state
        See :class:`ActiveLearner`.
    """
    from core.valid_labels import valid_manual_labels

    _check_min_confidence(min_confidence)
    labeling_task = get_task(session, project_id, task)
    if labeling_task.kind != TaskKind.CLASSIFICATION.value:
        raise ValidationError(
            f"The active learner labels classification tasks; {task!r} is a {labeling_task.kind} task."
        )
    space = resolve_space(session, project_id=project_id, attribute=attribute, model=model)
    manual = {rid: str(v) for rid, v in valid_manual_labels(session, task_id=labeling_task.id or 0).items()}
    ids, X = load_vectors(session, space)
    position = {int(r): i for i, r in enumerate(ids)}
    train_ids = [rid for rid in sorted(manual) if rid in position]
    y = [manual[rid] for rid in train_ids]
    learner = ActiveLearner(min_confidence=min_confidence, C=C, max_folds=max_folds, random_state=random_state)
    learner.fit(X[[position[r] for r in train_ids]], y)

    train_set = set(train_ids)
    rest = np.array([i for i, r in enumerate(ids) if int(r) not in train_set], dtype=np.int64)
    rest_labels, rest_conf = learner.emit(learner.predict_proba(X[rest]) if len(rest) else np.zeros((0, 2)))
    cv_labels, cv_conf = learner.emit(learner.cv_proba_)
    cv_top = learner.classes_[learner.cv_proba_.argmax(axis=1)]
    cv_accuracy = float(np.mean(cv_top == np.asarray(y, dtype=object)))

    rows = [
        {"record_id": rid, "label": lab, "confidence": float(c), "trained_on": True}
        for rid, lab, c in zip(train_ids, cv_labels, cv_conf, strict=True)
        if lab is not None
    ]
    rows += [
        {"record_id": int(ids[i]), "label": lab, "confidence": float(c), "trained_on": False}
        for i, lab, c in zip(rest, rest_labels, rest_conf, strict=True)
        if lab is not None
    ]
    predictions = pd.DataFrame(rows, columns=["record_id", "label", "confidence", "trained_on"])
    predictions = predictions.sort_values("record_id", ignore_index=True)
    label_names = [label.name for label in list_labels(session, labeling_task.id or 0)]
    counts = pd.Series(y).value_counts().to_dict()
    stats = emitted_label_stats(
        dict(zip(train_ids, cv_labels, strict=True)), {r: manual[r] for r in train_ids},
        labels=label_names, training=counts,
    )
    attr = session.get(Attribute, space.attribute_id)
    return ActiveLearnerResult(
        task=labeling_task.name,
        attribute=attr.name if attr else str(space.attribute_id),
        model=space.model,
        min_confidence=min_confidence,
        predictions=predictions,
        training_size=len(train_ids),
        cv_accuracy=cv_accuracy,
        cv_folds=learner.n_folds_,
        stats=stats,
        skipped_unembedded=len(manual) - len(train_ids),
        params={"C": C, "max_folds": max_folds, "random_state": random_state},
    )
