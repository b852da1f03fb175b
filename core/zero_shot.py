"""Zero-shot classification by embedding similarity (a heuristic that needs no manual labels).

Each label becomes a short prompt (``"This text is about {label}."``, followed by
the label's description when one is given), embedded with the same model as the
records. A record's scores are the cosine similarities to the prompts; a softmax
with a small temperature turns them into probabilities, and the top label is
emitted when its probability reaches ``min_confidence`` (refinery's contract).
Because nothing is trained, every manually labeled record is fair ground for
its statistics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sqlmodel import Session

from core.active_learning import emitted_label_stats
from core.errors import ValidationError
from core.store.embeddings import load_vectors, resolve_space
from core.store.models import Attribute, TaskKind
from core.store.tasks import get_task, list_labels

DEFAULT_TEMPLATE = "This text is about {label}."
DEFAULT_MIN_CONFIDENCE = 0.5
# Cosine similarities of sentence embeddings differ by a few hundredths; 0.05 spreads them into usable probabilities.
DEFAULT_TEMPERATURE = 0.05


def label_prompts(
    labels: Sequence[str],
    *,
    descriptions: Mapping[str, str] | None = None,
    template: str = DEFAULT_TEMPLATE,
) -> list[str]:
    """The text embedded for each label: the template filled with the name, then the description if any."""
    if "{label}" not in template:
        raise ValidationError(f"The prompt template must contain '{{label}}'; got {template!r}.")
    unknown = sorted(set(descriptions or {}) - set(labels))
    if unknown:
        raise ValidationError(
            f"Descriptions given for unknown label(s) {', '.join(map(repr, unknown))}; labels are: "
            f"{', '.join(map(repr, labels))}."
        )
    out = []
    for label in labels:
        prompt = template.format(label=label)
        description = ((descriptions or {}).get(label) or "").strip()
        out.append(f"{prompt} {description}" if description else prompt)
    return out


def zero_shot_proba(
    vectors: ArrayLike, label_vectors: ArrayLike, *, temperature: float = DEFAULT_TEMPERATURE
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities ``(n, k)`` of normalised vectors to label vectors, and their softmax probabilities."""
    if temperature <= 0:
        raise ValidationError(f"temperature must be positive; got {temperature}.")
    X = np.asarray(vectors, dtype=np.float32)
    L = np.asarray(label_vectors, dtype=np.float32)
    if X.ndim != 2 or L.ndim != 2 or X.shape[1] != L.shape[1]:
        raise ValidationError(
            f"Record and label vectors must be 2D with the same dimension; got {X.shape} and {L.shape}."
        )
    similarity = X @ L.T
    logits = similarity / temperature
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    return similarity, proba


def _emit(
    labels: Sequence[str], similarity: np.ndarray, proba: np.ndarray, min_confidence: float
) -> list[tuple[str | None, float, float]]:
    top = proba.argmax(axis=1)
    out: list[tuple[str | None, float, float]] = []
    for row, t in enumerate(top):
        confidence = float(proba[row, t])
        out.append((labels[t] if confidence >= min_confidence else None, confidence, float(similarity[row, t])))
    return out


def _check(labels: Sequence[str], min_confidence: float) -> None:
    if len(labels) < 2:
        raise ValidationError(f"Zero-shot classification needs at least two labels; got {len(labels)}.")
    if not 0.0 <= min_confidence <= 1.0:
        raise ValidationError(f"min_confidence must be between 0 and 1; got {min_confidence}.")


def classify_texts(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    model: str | None = None,
    descriptions: Mapping[str, str] | None = None,
    template: str = DEFAULT_TEMPLATE,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    temperature: float = DEFAULT_TEMPERATURE,
) -> list[tuple[str | None, float]]:
    """Zero-shot labels of free texts: ``(label or None, confidence)`` per text (e.g. to try prompts)."""
    from core.embeddings import DEFAULT_MODEL, embed_texts

    _check(labels, min_confidence)
    name = model or DEFAULT_MODEL
    X = embed_texts(list(texts), model=name)
    L = embed_texts(label_prompts(labels, descriptions=descriptions, template=template), model=name)
    similarity, proba = zero_shot_proba(X, L, temperature=temperature)
    return [(label, conf) for label, conf, _ in _emit(labels, similarity, proba, min_confidence)]


@dataclass(frozen=True)
class ZeroShotResult:
    """Emitted labels of a zero-shot run and their statistics against valid manual labels.

    Attributes
    ----------
    predictions : DataFrame
        One row per record with an emitted label: ``record_id``, ``label``, ``confidence``, ``similarity``.
    stats : DataFrame
        :func:`core.active_learning.emitted_label_stats` on the manually labeled records.
    accuracy : float or None
        Share of manually labeled records whose top label is right (None without manual labels).
    """

    task: str
    attribute: str
    model: str
    min_confidence: float
    prompts: list[str]
    predictions: pd.DataFrame
    stats: pd.DataFrame
    labeled_records: int
    accuracy: float | None


def run_zero_shot(
    session: Session,
    *,
    project_id: int,
    task: str,
    attribute: str | None = None,
    model: str | None = None,
    descriptions: Mapping[str, str] | None = None,
    template: str = DEFAULT_TEMPLATE,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    temperature: float = DEFAULT_TEMPERATURE,
) -> ZeroShotResult:
    """Score every embedded record against the task's labels and emit the top label above ``min_confidence``.

    Works with no manual labels; when there are some, they grade the run.
    """
    from core.embeddings import embed_texts
    from core.valid_labels import valid_manual_labels

    labeling_task = get_task(session, project_id, task)
    if labeling_task.kind != TaskKind.CLASSIFICATION.value:
        raise ValidationError(f"Zero-shot labels classification tasks; {task!r} is a {labeling_task.kind} task.")
    labels = [label.name for label in list_labels(session, labeling_task.id or 0)]
    _check(labels, min_confidence)
    space = resolve_space(session, project_id=project_id, attribute=attribute, model=model)
    prompts = label_prompts(labels, descriptions=descriptions, template=template)
    ids, X = load_vectors(session, space)
    similarity, proba = zero_shot_proba(X, embed_texts(prompts, model=space.model), temperature=temperature)
    emitted = _emit(labels, similarity, proba, min_confidence)
    rows = [
        {"record_id": int(rid), "label": label, "confidence": conf, "similarity": sim}
        for rid, (label, conf, sim) in zip(ids, emitted, strict=True)
        if label is not None
    ]
    manual = {rid: str(v) for rid, v in valid_manual_labels(session, task_id=labeling_task.id or 0).items()}
    position = {int(r): i for i, r in enumerate(ids)}
    graded = [rid for rid in manual if rid in position]
    top = proba.argmax(axis=1) if len(ids) else np.zeros(0, dtype=np.int64)
    accuracy = (
        float(np.mean([labels[top[position[rid]]] == manual[rid] for rid in graded])) if graded else None
    )
    stats = emitted_label_stats(
        {int(rid): label for rid, (label, _, _) in zip(ids, emitted, strict=True)},
        {rid: manual[rid] for rid in graded},
        labels=labels,
    )
    attr = session.get(Attribute, space.attribute_id)
    return ZeroShotResult(
        task=labeling_task.name,
        attribute=attr.name if attr else str(space.attribute_id),
        model=space.model,
        min_confidence=min_confidence,
        prompts=prompts,
        predictions=pd.DataFrame(rows, columns=["record_id", "label", "confidence", "similarity"]),
        stats=stats,
        labeled_records=len(graded),
        accuracy=accuracy,
    )
