"""Likely label errors: manual labels a cross-validated classifier on embeddings confidently disagrees with.

Confident learning as cleanlab does it (Northcutt, Jiang & Chuang, 2021):

1. out-of-sample class probabilities ``pred_probs`` from scikit-learn's
   ``cross_val_predict`` (a logistic regression on the records' embeddings,
   stratified folds, so no record is scored by a model that saw it);
2. per-class thresholds ``t_k`` = the mean probability of class ``k`` over the
   records labeled ``k`` (their average *self-confidence*);
3. each record's confident class: the one class whose probability reaches its
   threshold, or, when several do, the most probable class; records reaching
   no threshold are not counted;
4. records in an **off-diagonal** cell of the resulting confident joint
   (given label ≠ confident class) are the likely errors, with the confident
   class as the suggested label;
5. ranked by **normalized margin**: ``(p[given] − max p[other] + 1) / 2``, the
   label-quality score in [0, 1]; lowest first (most likely wrong).

:func:`find_label_issues` takes an embedding matrix and labels (testable
without any model); :func:`label_errors_for_task` reads a task's valid manual
labels and their stored embeddings from the store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sqlmodel import Session

from core.errors import ValidationError

ISSUE_COLUMNS = ["position", "label", "suggested", "score", "self_confidence", "suggested_confidence"]


def _check_probs(pred_probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(pred_probs, dtype=float)
    y = np.asarray(labels)
    if probs.ndim != 2:
        raise ValidationError(f"pred_probs must be an n × k matrix, but it has {probs.ndim} dimension(s).")
    if len(y) != len(probs):
        raise ValidationError(
            f"pred_probs and labels must be same length, but pred_probs is length {len(probs)} "
            f"and labels is length {len(y)}."
        )
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= probs.shape[1])):
        raise ValidationError(
            f"labels must be class indices 0..{probs.shape[1] - 1}; got values of type {y.dtype}. "
            "Map label names to indices first."
        )
    return probs, y.astype(np.int64)


def confident_thresholds(pred_probs: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Per class ``k``: the mean of ``pred_probs[:, k]`` over records labeled ``k`` (NaN for an unused class)."""
    probs, y = _check_probs(pred_probs, labels)
    return np.array([probs[y == k, k].mean() if np.any(y == k) else np.nan for k in range(probs.shape[1])])


def confident_joint(pred_probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The confident joint and each record's confident class.

    Returns
    -------
    joint : numpy.ndarray
        ``k × k`` counts, rows the given label, columns the confident class
        (not calibrated: the raw counts, which is what the off-diagonal filter uses).
    guess : numpy.ndarray
        Confident class per record, ``-1`` where no class reaches its threshold.
    off_diagonal : numpy.ndarray
        Positions of records whose confident class differs from their label.
    """
    probs, y = _check_probs(pred_probs, labels)
    thresholds = np.nan_to_num(confident_thresholds(probs, y), nan=np.inf)
    confident = probs >= thresholds - 1e-6  # cleanlab's tolerance
    n_confident = confident.sum(axis=1)
    guess = np.where(n_confident > 1, probs.argmax(axis=1), confident.argmax(axis=1))
    guess = np.where(n_confident > 0, guess, -1)
    k = probs.shape[1]
    joint = np.zeros((k, k), dtype=np.int64)
    counted = guess >= 0
    np.add.at(joint, (y[counted], guess[counted]), 1)
    off_diagonal = np.flatnonzero(counted & (guess != y))
    return joint, guess, off_diagonal


def normalized_margin(pred_probs: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """cleanlab's label-quality score ``(p[given] − max p[other] + 1) / 2`` per record, in [0, 1]."""
    probs, y = _check_probs(pred_probs, labels)
    rows = np.arange(len(y))
    self_conf = probs[rows, y]
    others = probs.copy()
    others[rows, y] = -np.inf
    return (self_conf - others.max(axis=1) + 1.0) / 2.0


def label_issues_from_probs(pred_probs: ArrayLike, labels: ArrayLike) -> pd.DataFrame:
    """Likely errors from out-of-sample probabilities, most likely first.

    Returns
    -------
    pandas.DataFrame
        ``position`` (row in the input), ``label`` and ``suggested`` (class
        indices), ``score`` (normalized margin, lower = more likely wrong),
        ``self_confidence`` (p of the given label) and ``suggested_confidence``.
    """
    probs, y = _check_probs(pred_probs, labels)
    _, guess, issues = confident_joint(probs, y)
    score = normalized_margin(probs, y)
    frame = pd.DataFrame({
        "position": issues.astype(np.int64),
        "label": y[issues],
        "suggested": guess[issues],
        "score": score[issues],
        "self_confidence": probs[issues, y[issues]],
        "suggested_confidence": probs[issues, guess[issues]],
    }, columns=ISSUE_COLUMNS)
    return frame.sort_values(["score", "position"], kind="stable").reset_index(drop=True)


def cross_validated_probs(
    X: ArrayLike, labels: ArrayLike, *, n_folds: int = 5, classifier: Any = None, seed: int = 0
) -> np.ndarray:
    """Out-of-sample ``predict_proba`` of every record with stratified ``n_folds``-fold cross-validation.

    ``classifier`` is any scikit-learn classifier with ``predict_proba``
    (default: ``LogisticRegression(max_iter=1000)``).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    matrix = np.asarray(X, dtype=float)
    y = np.asarray(labels)
    model = classifier if classifier is not None else LogisticRegression(max_iter=1000)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return np.asarray(cross_val_predict(model, matrix, y, cv=folds, method="predict_proba"))


def find_label_issues(
    X: ArrayLike,
    labels: Sequence[Any],
    *,
    ids: Sequence[Any] | None = None,
    n_folds: int = 5,
    classifier: Any = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Likely label errors among records with embeddings ``X`` and labels ``labels``.

    Labels given to fewer than two records cannot be cross-validated and are
    left out; folds are reduced to the rarest remaining label's count.

    Parameters
    ----------
    X
        ``n × d`` embeddings.
    labels
        ``n`` label names (or any hashable values).
    ids
        ``n`` identifiers to report (default: positions).
    n_folds
        Cross-validation folds (at least 2).

    Returns
    -------
    pandas.DataFrame
        ``id``, ``label``, ``suggested``, ``score`` (normalized margin, lower =
        more likely wrong), ``self_confidence``, ``suggested_confidence``;
        most likely errors first.

    Raises
    ------
    ValidationError
        Shapes that do not match, NaNs, or fewer than two labels with two records each.
    """
    matrix = np.asarray(X, dtype=float)
    names = list(labels)
    keys = list(ids) if ids is not None else list(range(len(names)))
    if matrix.ndim != 2:
        raise ValidationError(f"X must be an n × d matrix of embeddings, but it has {matrix.ndim} dimension(s).")
    if not len(matrix) == len(names) == len(keys):
        raise ValidationError(
            f"X and labels must be same length, but X is length {len(matrix)}, labels is length {len(names)}"
            + (f" and ids is length {len(keys)}." if ids is not None else ".")
        )
    if not np.isfinite(matrix).all():
        raise ValidationError("X holds NaN or infinite values; recompute the embeddings of those records.")
    if n_folds < 2:
        raise ValidationError(f"Cross-validation needs at least 2 folds; got {n_folds}.")
    counts = Counter(names)
    classes = sorted((c for c, n in counts.items() if n >= 2), key=str)
    if len(classes) < 2:
        found = ", ".join(f"{c!r}: {n}" for c, n in sorted(counts.items(), key=lambda kv: str(kv[0]))) or "none"
        raise ValidationError(
            "Finding label errors needs at least two labels with two or more manually labeled records each; "
            f"found {found}. Label more records first."
        )
    index = {c: i for i, c in enumerate(classes)}
    keep = np.array([n in index for n in names], dtype=bool)
    y = np.array([index[n] for n in names if n in index], dtype=np.int64)
    folds = min(n_folds, min(counts[c] for c in classes))
    probs = cross_validated_probs(matrix[keep], y, n_folds=folds, classifier=classifier, seed=seed)
    issues = label_issues_from_probs(probs, y)
    kept_keys = [k for k, flag in zip(keys, keep, strict=True) if flag]
    return pd.DataFrame({
        "id": [kept_keys[p] for p in issues["position"]],
        "label": [classes[i] for i in issues["label"]],
        "suggested": [classes[i] for i in issues["suggested"]],
        "score": issues["score"].to_numpy(dtype=float),
        "self_confidence": issues["self_confidence"].to_numpy(dtype=float),
        "suggested_confidence": issues["suggested_confidence"].to_numpy(dtype=float),
    })


def label_errors_for_task(
    session: Session,
    *,
    project_id: int,
    task: str,
    attribute: str | None = None,
    model: str | None = None,
    record_ids: Sequence[int] | None = None,
    n_folds: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Likely errors among a classification task's valid manual labels, on the project's stored embeddings.

    Parameters
    ----------
    attribute, model
        Which embedding space to use; either may be omitted when the project has one.
    record_ids
        Only these records (a slice or a filter); all labeled records when None.

    Returns
    -------
    pandas.DataFrame
        As :func:`find_label_issues`, ``id`` being the record key, plus ``record_id``.

    Raises
    ------
    NotFoundError
        No embeddings yet (the message says how to compute them), unknown task.
    ValidationError
        Not a classification task, or too few labels.
    """
    from sqlalchemy import select

    from core.store.embeddings import load_vectors, resolve_space
    from core.store.models import TaskKind
    from core.store.tables import RECORD
    from core.store.tasks import get_task
    from core.valid_labels import valid_manual_labels

    target = get_task(session, project_id, task)
    if target.kind != TaskKind.CLASSIFICATION.value:
        raise ValidationError(
            f"Label errors are found for classification tasks; {task!r} is a task of kind {target.kind!r}."
        )
    space = resolve_space(session, project_id=project_id, attribute=attribute, model=model)
    valid = valid_manual_labels(session, task_id=target.id or 0)
    wanted = sorted(valid) if record_ids is None else sorted(set(record_ids) & set(valid))
    ids, vectors = load_vectors(session, space, record_ids=wanted)
    rids = [int(i) for i in ids]
    keys: dict[int, str] = {}
    for start in range(0, len(rids), 900):
        chunk = rids[start:start + 900]
        keys.update({int(r): str(k) for r, k in session.execute(
            select(RECORD.c.id, RECORD.c.key).where(RECORD.c.id.in_(chunk))).all()})
    found = find_label_issues(vectors, [str(valid[r]) for r in rids], ids=rids, n_folds=n_folds, seed=seed)
    found.insert(0, "record_id", found["id"].astype("int64"))
    found["id"] = [keys.get(int(r), str(r)) for r in found["record_id"]]
    return found
