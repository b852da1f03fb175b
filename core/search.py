"""Neural search on stored embeddings: similar records, free-text search, outliers and a 2D map.

Similar-record and free-text search query the project's Chroma collection
(rebuilt first when missing or stale, see :mod:`core.index`); outliers and the map
read the vectors straight from the store. Scores of searches are cosine
similarities (higher is closer); outlier scores are distances (higher is farther).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlmodel import Session, col

from core.errors import ValidationError
from core.store.embeddings import ProjectEmbedding, load_vectors, record_vector, resolve_space
from core.store.models import Attribute, LabelAssociation, Record, SourceType
from core.store.records import get_record
from core.store.slices import DataSlice, SliceKind, save_slice
from core.store.tasks import get_task

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

DEFAULT_K = 10
MAX_K = 1000
# refinery flags at most 5% of the unlabeled records, and at most 100 of them.
OUTLIER_FRACTION = 0.05
OUTLIER_LIMIT = 100
# Labeled records compared against, sampled when there are more (as refinery does).
MAX_REFERENCE = 10_000
MAP_SAMPLE = 20_000
OUTLIER_SLICE = "outliers"


@dataclass(frozen=True)
class SearchHit:
    """One result: the store's record id, the record's key (primary-key value or running id) and a score."""

    record_id: int
    key: str
    score: float

    def as_dict(self) -> dict[str, object]:
        """``{"id": key, "score": score}``, the form ``--json`` prints."""
        return {"id": self.key, "score": round(self.score, 6)}


def _check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise ValidationError(f"k (the number of results) must be between 1 and {MAX_K}; got {k}.")
    return int(k)


def _keys(session: Session, record_ids: Sequence[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    ids = list(record_ids)
    for start in range(0, len(ids), 900):
        stmt = select(col(Record.id), col(Record.key)).where(col(Record.id).in_(ids[start : start + 900]))
        out.update({int(i): str(k) for i, k in session.execute(stmt)})
    return out


def _hits(session: Session, pairs: Sequence[tuple[int, float]]) -> list[SearchHit]:
    keys = _keys(session, [rid for rid, _ in pairs])
    # A record deleted since the index was built has no key: leave it out.
    return [SearchHit(record_id=rid, key=keys[rid], score=score) for rid, score in pairs if rid in keys]


def _attribute_name(session: Session, space: ProjectEmbedding) -> str:
    attribute = session.get(Attribute, space.attribute_id)
    return attribute.name if attribute else str(space.attribute_id)


def similar_records(
    session: Session,
    *,
    project_id: int,
    key: str,
    attribute: str | None = None,
    model: str | None = None,
    k: int = DEFAULT_K,
    client: ClientAPI | None = None,
) -> list[SearchHit]:
    """The ``k`` records most similar to the record ``key``, best first, the record itself excluded.

    Parameters
    ----------
    project_id
        The project.
    key
        The record's primary-key value (or running id), as shown in the data browser.
    attribute, model
        Which embeddings to compare; may be omitted when the project has one embedding space.
    k
        Number of results.
    client
        A Chroma client; the configured one by default. A missing or stale index is rebuilt first.
    """
    from core.index import ensure_index, query_index

    k = _check_k(k)
    space = resolve_space(session, project_id=project_id, attribute=attribute, model=model)
    record = get_record(session, project_id=project_id, key=key)
    vector = record_vector(session, space, record.id or 0)
    if vector is None:
        raise ValidationError(
            f"Record {key!r} has no embedding: its {_attribute_name(session, space)!r} is empty or was added "
            f"after the last run. Run loupe embed again, or pick a record with text."
        )
    ensure_index(session, space=space, client=client)
    return _hits(session, query_index(session, space=space, vector=vector, k=k, exclude=record.id, client=client))


def semantic_search(
    session: Session,
    *,
    project_id: int,
    query: str,
    attribute: str | None = None,
    model: str | None = None,
    k: int = DEFAULT_K,
    client: ClientAPI | None = None,
) -> list[SearchHit]:
    """The ``k`` records closest in meaning to a free-text ``query``, best first."""
    from core.embeddings import embed_texts
    from core.index import ensure_index, query_index

    k = _check_k(k)
    text = (query or "").strip()
    if not text:
        raise ValidationError("A semantic search needs a query text; got an empty one.")
    space = resolve_space(session, project_id=project_id, attribute=attribute, model=model)
    vector = embed_texts([text], model=space.model)[0]
    ensure_index(session, space=space, client=client)
    return _hits(session, query_index(session, space=space, vector=vector, k=k, client=client))


def hits_frame(session: Session, hits: Sequence[SearchHit]) -> pd.DataFrame:
    """Hits with their records' attribute values: columns ``id``, ``score``, then the attributes."""
    if not hits:
        return pd.DataFrame(columns=["id", "score"])
    stmt = select(col(Record.id), col(Record.data)).where(col(Record.id).in_([h.record_id for h in hits]))
    data: dict[int | None, dict[str, Any]] = dict(session.execute(stmt).all())
    rows = [{"id": h.key, "score": h.score, **data.get(h.record_id, {})} for h in hits]
    return pd.DataFrame(rows)


# --- outliers -----------------------------------------------------------------------------------


def outlier_scores(candidates: np.ndarray, reference: np.ndarray | None = None, *, chunk: int = 1024) -> np.ndarray:
    """Mean Euclidean distance of each candidate vector to the reference vectors.

    With no reference vectors, the distance to the candidates' centroid (refinery's
    rule when nothing is labeled yet).

    Parameters
    ----------
    candidates
        ``(n, d)`` vectors to score.
    reference
        ``(m, d)`` vectors of the labeled records, or None / empty.
    """
    X = np.asarray(candidates, dtype=np.float32)
    if X.ndim != 2:
        raise ValidationError(f"candidates must be a 2D matrix (n, d); got shape {X.shape}.")
    R = X.mean(axis=0, keepdims=True) if reference is None or len(reference) == 0 else np.asarray(reference, np.float32)
    if R.shape[1] != X.shape[1]:
        raise ValidationError(
            f"candidates and reference must have the same dimension, but got {X.shape[1]} and {R.shape[1]}."
        )
    r2 = (R * R).sum(axis=1)
    out = np.empty(len(X), dtype=np.float64)
    for start in range(0, len(X), chunk):
        block = X[start : start + chunk]
        d2 = (block * block).sum(axis=1)[:, None] + r2[None, :] - 2.0 * block @ R.T
        out[start : start + chunk] = np.sqrt(np.clip(d2, 0.0, None)).mean(axis=1)
    return out


def manually_labeled(session: Session, *, project_id: int, task_id: int | None = None) -> set[int]:
    """Ids of records with at least one manual label (for one task, or any)."""
    stmt = select(col(LabelAssociation.record_id)).where(
        LabelAssociation.project_id == project_id,  # type: ignore[arg-type]
        LabelAssociation.source_type == SourceType.MANUAL.value,  # type: ignore[arg-type]
    )
    if task_id is not None:
        stmt = stmt.where(LabelAssociation.task_id == task_id)  # type: ignore[arg-type]
    return {int(r) for r in session.execute(stmt.distinct()).scalars()}


def find_outliers(
    session: Session,
    *,
    project_id: int,
    attribute: str | None = None,
    model: str | None = None,
    task: str | None = None,
    fraction: float = OUTLIER_FRACTION,
    limit: int = OUTLIER_LIMIT,
    seed: int = 0,
) -> list[SearchHit]:
    """Unlabeled records far from the labeled data, farthest first (refinery's definition).

    A record's score is its mean Euclidean distance to the manually labeled
    records (of ``task``, or of any task), or to the centroid of the unlabeled
    records when nothing is labeled. At most ``fraction`` of the unlabeled
    records and at most ``limit`` are returned (at least one when any exist).
    """
    if not 0 < fraction <= 1:
        raise ValidationError(f"fraction must be in (0, 1]; got {fraction}.")
    if limit < 1:
        raise ValidationError(f"limit must be at least 1; got {limit}.")
    space = resolve_space(session, project_id=project_id, attribute=attribute, model=model)
    task_id = get_task(session, project_id, task).id if task else None
    labeled = manually_labeled(session, project_id=project_id, task_id=task_id)
    ids, vectors = load_vectors(session, space)
    is_labeled = np.isin(ids, np.fromiter(labeled, dtype=np.int64, count=len(labeled)))
    cand_ids, cand = ids[~is_labeled], vectors[~is_labeled]
    if len(cand_ids) == 0:
        return []
    reference = vectors[is_labeled]
    if len(reference) > MAX_REFERENCE:
        rng = np.random.default_rng(seed)
        reference = reference[rng.choice(len(reference), MAX_REFERENCE, replace=False)]
    scores = outlier_scores(cand, reference)
    n = max(1, min(round(fraction * len(cand_ids)), limit))
    top = np.argsort(-scores, kind="stable")[:n]
    return _hits(session, [(int(cand_ids[i]), float(scores[i])) for i in top])


def save_outliers(
    session: Session, *, project_id: int, hits: Sequence[SearchHit], name: str = OUTLIER_SLICE
) -> DataSlice:
    """Save outliers as an ``outlier`` data slice (ids and scores, farthest first), replacing one of that name."""
    return save_slice(
        session,
        project_id=project_id,
        name=name,
        kind=SliceKind.OUTLIER,
        record_ids=[h.record_id for h in hits],
        scores=[h.score for h in hits],
        replace=True,
    )


# --- 2D map -------------------------------------------------------------------------------------


def project_2d(vectors: np.ndarray, *, method: Literal["pca", "tsne"] = "pca", seed: int = 0) -> np.ndarray:
    """Project vectors to 2D with PCA or t-SNE; returns an ``(n, 2)`` array (zeros for fewer than 3 rows)."""
    X = np.asarray(vectors, dtype=np.float32)
    if method not in ("pca", "tsne"):
        raise ValidationError(f"Unknown projection {method!r}; use 'pca' or 'tsne'.")
    if len(X) < 3:
        return np.zeros((len(X), 2), dtype=np.float32)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(X).astype(np.float32)
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(X) - 1) // 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(X).astype(np.float32)


def embedding_map(
    session: Session,
    *,
    project_id: int,
    attribute: str | None = None,
    model: str | None = None,
    method: Literal["pca", "tsne"] = "pca",
    sample: int = MAP_SAMPLE,
    seed: int = 0,
) -> pd.DataFrame:
    """2D coordinates of the records (a seeded sample of at most ``sample``).

    Returns
    -------
    DataFrame
        Columns ``id`` (record key), ``record_id``, ``x``, ``y``.
    """
    if sample < 1:
        raise ValidationError(f"sample must be at least 1; got {sample}.")
    space = resolve_space(session, project_id=project_id, attribute=attribute, model=model)
    ids, vectors = load_vectors(session, space)
    if len(ids) > sample:
        keep = np.sort(np.random.default_rng(seed).choice(len(ids), sample, replace=False))
        ids, vectors = ids[keep], vectors[keep]
    xy = project_2d(vectors, method=method, seed=seed)
    keys = _keys(session, ids.tolist())
    return pd.DataFrame({
        "id": [keys.get(int(i), str(i)) for i in ids],
        "record_id": ids,
        "x": xy[:, 0] if len(xy) else np.zeros(0, np.float32),
        "y": xy[:, 1] if len(xy) else np.zeros(0, np.float32),
    })
