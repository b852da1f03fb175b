"""Stored sentence embeddings: the source of truth the Chroma index is derived from.

Three tables:

- :class:`EmbeddingVector` caches one vector per ``(model, text hash)``, shared by
  all projects, so a text that was embedded once is never embedded again;
- :class:`ProjectEmbedding` is one *embedding space* of a project: a text
  attribute embedded with a model. Its ``revision`` grows with every change to
  the space's vectors; the index stores the revision it was built from, which
  is how a stale index is noticed. Its random ``uid`` tells it from a space that
  had the same id before (databases reuse the ids of deleted rows), and its
  ``updated_at`` is when the last embedding run read the records, so records
  updated since can be counted (:func:`pending_records`);
- :class:`RecordEmbedding` maps each record of a space to the hash of the text
  it was embedded from (records without text have no row).

Vectors are L2-normalised float32 stored as raw bytes (``ndarray.tobytes()``),
which works the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint, delete, func, insert, inspect, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql import ColumnElement
from sqlmodel import Field, Session, SQLModel, col

from core.errors import NotFoundError, ValidationError
from core.store.models import Attribute, Project, Record, utcnow

# Bound parameters per statement stay well below SQLite's limit (32,766) and PostgreSQL's (65,535).
CHUNK = 900


class EmbeddingVector(SQLModel, table=True):
    """One embedding of one text by one model, shared across projects."""

    __table_args__ = (UniqueConstraint("model", "text_hash", name="uq_embeddingvector_model_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=300)
    text_hash: str = Field(max_length=64)
    dim: int
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


def new_uid() -> str:
    """A random identifier of an embedding space (32 hex digits)."""
    return uuid.uuid4().hex


class ProjectEmbedding(SQLModel, table=True):
    """A project's text attribute embedded with one model (an *embedding space*)."""

    __table_args__ = (UniqueConstraint("project_id", "attribute_id", "model", name="uq_projectembedding_space"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    attribute_id: int = Field(foreign_key="attribute.id")
    model: str = Field(max_length=300)
    dim: int = 0
    # Records that have a vector in this space.
    count: int = 0
    # Bumped by every write that changes the space's vectors; the index records the revision it was built from.
    revision: int = 0
    # Random, so that a space created with the id of a deleted one never matches the deleted one's index.
    uid: str = Field(default_factory=new_uid, max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    # When the last embedding run read the records: records updated after it may have new text.
    updated_at: datetime = Field(default_factory=utcnow)


class RecordEmbedding(SQLModel, table=True):
    """The text hash a record's vector was computed from, in one embedding space."""

    __table_args__ = (Index("ix_recordembedding_project", "project_id"),)

    embedding_id: int = Field(foreign_key="projectembedding.id", primary_key=True)
    record_id: int = Field(foreign_key="record.id", primary_key=True)
    project_id: int = Field(foreign_key="project.id")
    text_hash: str = Field(max_length=64)


def _chunks(items: Sequence[object], size: int = CHUNK) -> Iterable[Sequence[object]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Little-endian float32, whatever the machine: stored bytes (and snapshots of them) read the same everywhere.
VECTOR_DTYPE = np.dtype("<f4")


def to_bytes(vector: np.ndarray) -> bytes:
    """A vector as the bytes stored in :attr:`EmbeddingVector.vector` (little-endian float32)."""
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def from_bytes(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Stack stored vectors into an ``(n, dim)`` float32 matrix."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype=VECTOR_DTYPE).reshape(len(blobs), dim)
    return matrix.astype(np.float32)  # a writable copy in native order


def ensure_space_uids(engine: Engine) -> None:
    """Give ``projectembedding`` its ``uid`` column in databases created before it existed.

    ``create_all`` adds no column to a table that exists already. Each existing
    space gets a random uid; its Chroma collection (built without one) is then
    stale and rebuilt by the next search. One catalog query when nothing is missing.
    """
    table = "projectembedding"  # ProjectEmbedding.__tablename__
    inspector = inspect(engine)
    if not inspector.has_table(table) or "uid" in {c["name"] for c in inspector.get_columns(table)}:
        return
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN uid VARCHAR(32) NOT NULL DEFAULT ''"))
        ids = conn.execute(select(col(ProjectEmbedding.id))).scalars().all()
        for space_id in ids:
            conn.execute(update(ProjectEmbedding).where(col(ProjectEmbedding.id) == space_id).values(uid=new_uid()))


# --- embedding spaces ---------------------------------------------------------------------------


def find_space(session: Session, *, project_id: int, attribute_id: int, model: str) -> ProjectEmbedding | None:
    """The embedding space of that attribute and model, or None."""
    stmt = select(ProjectEmbedding).where(
        ProjectEmbedding.project_id == project_id,  # type: ignore[arg-type]
        ProjectEmbedding.attribute_id == attribute_id,  # type: ignore[arg-type]
        ProjectEmbedding.model == model,  # type: ignore[arg-type]
    )
    return session.execute(stmt).scalars().first()


def get_or_create_space(session: Session, *, project_id: int, attribute_id: int, model: str) -> ProjectEmbedding:
    """The embedding space of that attribute and model, created empty when missing."""
    space = find_space(session, project_id=project_id, attribute_id=attribute_id, model=model)
    if space is None:
        space = ProjectEmbedding(project_id=project_id, attribute_id=attribute_id, model=model)
        session.add(space)
        session.flush()
    return space


def reload_space(session: Session, space: ProjectEmbedding) -> ProjectEmbedding:
    """The space's current row, attached to ``session`` (``space`` may come from another session)."""
    current = session.get(ProjectEmbedding, space.id, populate_existing=True)
    if current is None:
        raise NotFoundError(
            f"The embeddings of model {space.model!r} (id {space.id}) were deleted meanwhile; compute them again "
            "with loupe embed."
        )
    return current


def list_spaces(session: Session, project_id: int) -> list[ProjectEmbedding]:
    """The project's embedding spaces, oldest first."""
    stmt = select(ProjectEmbedding).where(ProjectEmbedding.project_id == project_id).order_by(ProjectEmbedding.id)  # type: ignore[arg-type]
    return list(session.execute(stmt).scalars().all())


def space_label(session: Session, space: ProjectEmbedding) -> str:
    """``attribute · model``, how pages and messages name a space."""
    attribute = session.get(Attribute, space.attribute_id)
    return f"{attribute.name if attribute else space.attribute_id} · {space.model}"


def resolve_space(
    session: Session, *, project_id: int, attribute: str | None = None, model: str | None = None
) -> ProjectEmbedding:
    """The embedding space named by ``attribute`` and ``model``; either may be omitted when unambiguous.

    Raises
    ------
    NotFoundError
        The project has no embeddings (or none matching); the message says how to compute them.
    ValidationError
        Several spaces match; the message lists them and the options that choose one.
    """
    spaces = list_spaces(session, project_id)
    project = session.get(Project, project_id)
    pname = project.name if project else str(project_id)
    if not spaces:
        raise NotFoundError(
            f"Project {pname!r} has no embeddings yet. Compute them first: "
            f"loupe embed --project {pname!r} --attribute ATTRIBUTE"
        )
    attributes = session.execute(select(Attribute).where(Attribute.project_id == project_id)).scalars()  # type: ignore[arg-type]
    names = {a.id: a.name for a in attributes}
    matching = [
        s
        for s in spaces
        if (attribute is None or names.get(s.attribute_id) == attribute) and (model is None or s.model == model)
    ]
    known = "; ".join(f"attribute {names.get(s.attribute_id)!r} with model {s.model!r}" for s in spaces)
    if not matching:
        raise NotFoundError(
            f"Project {pname!r} has no embeddings for attribute {attribute or 'any'!r} and model "
            f"{model or 'any'!r}. It has: {known}. Compute them with loupe embed --project {pname!r} "
            f"--attribute {attribute or 'ATTRIBUTE'}" + (f" --model {model!r}" if model else "")
        )
    if len(matching) > 1:
        raise ValidationError(
            f"Project {pname!r} has several embeddings ({known}); choose one with --attribute and --model."
        )
    return matching[0]


# --- vectors ------------------------------------------------------------------------------------


def known_hashes(session: Session, *, model: str, hashes: Iterable[str]) -> set[str]:
    """The subset of ``hashes`` that has a cached vector for ``model``."""
    wanted = sorted(set(hashes))
    found: set[str] = set()
    for chunk in _chunks(wanted):
        stmt = select(col(EmbeddingVector.text_hash)).where(
            EmbeddingVector.model == model,  # type: ignore[arg-type]
            EmbeddingVector.text_hash.in_(chunk),  # type: ignore[attr-defined]
        )
        found.update(session.execute(stmt).scalars().all())
    return found


def model_dim(session: Session, *, model: str) -> int | None:
    """The dimension of ``model``'s cached vectors, or None when it has none."""
    stmt = select(col(EmbeddingVector.dim)).where(EmbeddingVector.model == model).limit(1)  # type: ignore[arg-type]
    return session.execute(stmt).scalars().first()


def vectors_by_hash(session: Session, *, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
    """Cached vectors of ``model`` for the given text hashes (missing ones are absent)."""
    out: dict[str, np.ndarray] = {}
    wanted = sorted(set(hashes))
    for chunk in _chunks(wanted):
        stmt = select(col(EmbeddingVector.text_hash), col(EmbeddingVector.vector)).where(
            EmbeddingVector.model == model,  # type: ignore[arg-type]
            EmbeddingVector.text_hash.in_(chunk),  # type: ignore[attr-defined]
        )
        for text_hash, blob in session.execute(stmt).all():
            out[text_hash] = np.frombuffer(blob, dtype=VECTOR_DTYPE).astype(np.float32)
    return out


def insert_vectors(session: Session, *, model: str, vectors: Mapping[str, np.ndarray]) -> int:
    """Cache new vectors of ``model`` keyed by text hash; hashes cached already are skipped."""
    if not vectors:
        return 0
    present = known_hashes(session, model=model, hashes=vectors.keys())
    rows = [
        {"model": model, "text_hash": h, "dim": int(v.shape[0]), "vector": to_bytes(v)}
        for h, v in vectors.items()
        if h not in present
    ]
    if rows:
        session.execute(insert(EmbeddingVector), rows)
    return len(rows)


def prune_vectors(session: Session) -> int:
    """Delete cached vectors no embedding space refers to any more; returns how many."""
    used = (
        select(col(EmbeddingVector.id))
        .join(ProjectEmbedding, ProjectEmbedding.model == EmbeddingVector.model)  # type: ignore[arg-type]
        .join(
            RecordEmbedding,
            (RecordEmbedding.embedding_id == ProjectEmbedding.id)  # type: ignore[arg-type]
            & (RecordEmbedding.text_hash == EmbeddingVector.text_hash),
        )
    )
    result = session.execute(delete(EmbeddingVector).where(EmbeddingVector.id.not_in(used)))  # type: ignore[union-attr]
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# --- record mapping -----------------------------------------------------------------------------


def record_hashes(session: Session, embedding_id: int) -> dict[int, str]:
    """Record id → text hash of every record with a vector in the space."""
    stmt = select(col(RecordEmbedding.record_id), col(RecordEmbedding.text_hash)).where(
        RecordEmbedding.embedding_id == embedding_id  # type: ignore[arg-type]
    )
    return dict(session.execute(stmt).all())


def write_record_hashes(
    session: Session,
    *,
    space: ProjectEmbedding,
    changed: Mapping[int, str],
    removed: Iterable[int],
    dim: int,
    read_at: datetime | None = None,
) -> None:
    """Point records at new text hashes, drop removed records, and bump the space's revision.

    The vectors of ``changed`` hashes must be cached already (:func:`insert_vectors`).
    Keeps the revision when there is nothing to change.

    Parameters
    ----------
    read_at
        When the run read the records' texts (stored as the space's ``updated_at``, even when nothing
        changed): records updated later are counted by :func:`pending_records`. Now when None.
    """
    stamp = read_at or utcnow()
    gone = sorted(set(removed) | set(changed))
    if not gone and space.dim == dim:
        session.execute(update(ProjectEmbedding).where(col(ProjectEmbedding.id) == space.id).values(updated_at=stamp))
        return
    for chunk in _chunks(gone):
        session.execute(
            delete(RecordEmbedding).where(
                RecordEmbedding.embedding_id == space.id,  # type: ignore[arg-type]
                RecordEmbedding.record_id.in_(chunk),  # type: ignore[attr-defined]
            )
        )
    rows = [
        {"embedding_id": space.id, "record_id": rid, "project_id": space.project_id, "text_hash": h}
        for rid, h in changed.items()
    ]
    if rows:
        session.execute(insert(RecordEmbedding), rows)
    count = session.execute(
        select(func.count()).select_from(RecordEmbedding).where(col(RecordEmbedding.embedding_id) == space.id)
    ).scalar_one()
    session.execute(
        update(ProjectEmbedding)
        .where(col(ProjectEmbedding.id) == space.id)
        .values(revision=col(ProjectEmbedding.revision) + 1, count=count, dim=dim, updated_at=stamp)
    )


@dataclass(frozen=True)
class PendingRecords:
    """Records an embedding space is behind on.

    Attributes
    ----------
    new : int
        Records with text in the attribute but no vector (added, or given text, after the last run).
    changed : int
        Records with a vector that were updated after the last run read them (their text may differ now).
    """

    new: int
    changed: int

    @property
    def total(self) -> int:
        return self.new + self.changed


def _has_text(value: ColumnElement[str]) -> ColumnElement[bool]:
    # As embed_attribute's str(value).strip(): blanks, tabs and line breaks alone are no text.
    blanked = func.replace(func.replace(func.replace(value, "\n", " "), "\r", " "), "\t", " ")
    return value.is_not(None) & (func.length(func.trim(blanked)) > 0)


def pending_records(session: Session, space: ProjectEmbedding) -> PendingRecords:
    """How many records are new or changed since the space's last embedding run (two counting queries).

    A record is *new* when its attribute has text but the space has no vector for it, and *changed*
    when it has a vector but was updated (e.g. re-imported with ``--primary-key``) after the last run
    read the texts. Running the embedding again brings both to zero, encoding only texts that differ.
    """
    attribute = session.get(Attribute, space.attribute_id)
    if attribute is None:
        return PendingRecords(new=0, changed=0)
    value = Record.data[attribute.name].as_string()  # type: ignore[index]
    embedded = select(col(RecordEmbedding.record_id)).where(col(RecordEmbedding.embedding_id) == space.id)
    # NOT IN rather than NOT EXISTS: SQLite then reads the text of the unembedded records only (60 ms, not
    # 350 ms, for 100,000 records).
    new = session.execute(
        select(func.count())
        .select_from(Record)
        .where(col(Record.project_id) == space.project_id, col(Record.id).not_in(embedded), _has_text(value))
    ).scalar_one()
    # Compared in SQL, column to column: both times are stored the same way on every backend.
    last_run = select(col(ProjectEmbedding.updated_at)).where(col(ProjectEmbedding.id) == space.id).scalar_subquery()
    changed = session.execute(
        select(func.count())
        .select_from(RecordEmbedding)
        .join(Record, col(Record.id) == col(RecordEmbedding.record_id))
        .where(col(RecordEmbedding.embedding_id) == space.id, col(Record.updated_at) > last_run)
    ).scalar_one()
    return PendingRecords(new=int(new), changed=int(changed))


def load_vectors(
    session: Session, space: ProjectEmbedding, *, record_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Record ids (sorted) and their vectors as an ``(n, dim)`` float32 matrix.

    Parameters
    ----------
    space
        The embedding space to read.
    record_ids
        Only these records (those without a vector are left out); all when None.
    """
    base = (
        select(col(RecordEmbedding.record_id), col(EmbeddingVector.vector))
        .join(
            EmbeddingVector,
            (EmbeddingVector.model == space.model) & (EmbeddingVector.text_hash == RecordEmbedding.text_hash),  # type: ignore[arg-type]
        )
        .where(RecordEmbedding.embedding_id == space.id)  # type: ignore[arg-type]
    )
    rows: list[tuple[int, bytes]] = []
    if record_ids is None:
        rows = list(session.execute(base).all())
    else:
        for chunk in _chunks(sorted(set(record_ids))):
            rows.extend(session.execute(base.where(RecordEmbedding.record_id.in_(chunk))).all())  # type: ignore[attr-defined]
    rows.sort(key=lambda row: row[0])
    ids = np.array([r for r, _ in rows], dtype=np.int64)
    return ids, from_bytes([blob for _, blob in rows], space.dim)


def record_vector(session: Session, space: ProjectEmbedding, record_id: int) -> np.ndarray | None:
    """The vector of one record in the space, or None when it has none (e.g. empty text)."""
    ids, matrix = load_vectors(session, space, record_ids=[record_id])
    return matrix[0] if len(ids) else None
