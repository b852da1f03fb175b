"""The Chroma index of a project's embeddings: derived data, rebuilt from the store on demand.

One collection per embedding space (project, attribute, model), cosine distance,
item ids = ``Record.id``. Loupe always passes its own vectors
(``embedding_function=None``), so Chroma never loads or downloads a model.

The client is embedded (``PersistentClient`` under ``LOUPE_HOME/chroma``) unless
``CHROMA_HOST`` is set, which switches to a Chroma server (``HttpClient`` on
``CHROMA_PORT``, default 8000) that a team can share. Telemetry is off either way.

Each collection stores the uid and the revision of the space it was built from
in its metadata; :func:`index_status` compares them (and the item count) with
the store to tell ``fresh`` from ``stale`` or ``missing``, and
:func:`ensure_index` rebuilds whatever is not fresh. The uid matters because
collection names hold database ids, which a database hands out again after a
deletion: a new project's space must never take over a deleted one's collection.
Deleting a project drops its collections (:func:`drop_project_indexes`).

Writes to one collection are serialised within the process (a search and the
app's background rebuild never rebuild the same collection at once); a search
that waited finds the index fresh and does not rebuild it again.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlmodel import Session

from core.errors import LoupeError, ValidationError
from core.settings import load_settings
from core.store.embeddings import ProjectEmbedding, list_spaces, load_vectors, reload_space

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

DEFAULT_PORT = 8000
REVISION_KEY = "loupe_revision"
SPACE_KEY = "loupe_space"  # the uid of the embedding space a collection was built from
Progress = Callable[[int, int], None]
SyncAction = Literal["unchanged", "updated", "rebuilt"]
_lock = threading.Lock()
_write_locks: dict[str, threading.RLock] = {}


class IndexStatus(StrEnum):
    FRESH = "fresh"
    STALE = "stale"
    MISSING = "missing"


@dataclass(frozen=True)
class ChromaSettings:
    """Where the index lives: a local directory, or a Chroma server when ``host`` is set."""

    path: Path
    host: str | None = None
    port: int = DEFAULT_PORT

    def describe(self) -> str:
        return f"Chroma server {self.host}:{self.port}" if self.host else f"Chroma directory {self.path}"


def load_chroma_settings(env: dict[str, str] | None = None) -> ChromaSettings:
    """Read ``LOUPE_HOME`` (the embedded client's directory), ``CHROMA_HOST`` and ``CHROMA_PORT``."""
    env = dict(os.environ) if env is None else env
    path = load_settings(env).chroma_path
    host = (env.get("CHROMA_HOST") or "").strip() or None
    raw_port = (env.get("CHROMA_PORT") or "").strip()
    try:
        port = int(raw_port) if raw_port else DEFAULT_PORT
    except ValueError as e:
        raise ValidationError(f"CHROMA_PORT must be a port number such as 8000; got {raw_port!r}.") from e
    return ChromaSettings(path=path, host=host, port=port)


def _chroma_settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


_persistent: dict[str, ClientAPI] = {}


def _persistent_client(path: str) -> ClientAPI:
    # One client per directory and process: Chroma refuses a second one with other settings.
    client = _persistent.get(path)
    if client is None:
        import chromadb

        Path(path).mkdir(parents=True, exist_ok=True)
        client = _persistent[path] = chromadb.PersistentClient(path=path, settings=_chroma_settings())
    return client


@lru_cache(maxsize=8)
def _http_client(host: str, port: int) -> ClientAPI:
    import chromadb

    try:
        return chromadb.HttpClient(host=host, port=port, settings=_chroma_settings())
    except (ValueError, ConnectionError) as e:
        raise LoupeError(
            f"Cannot reach the Chroma server at {host}:{port} ({e}). Start it, fix CHROMA_HOST/CHROMA_PORT, "
            "or unset CHROMA_HOST to use the embedded index under LOUPE_HOME."
        ) from e


def get_client(settings: ChromaSettings | None = None) -> ClientAPI:
    """The Chroma client for the settings, one per directory (or server) and process.

    If the embedded directory was deleted while the process ran, the cached
    client is dropped and a new one starts on an empty directory, so the next
    :func:`ensure_index` rebuilds from the store.
    """
    settings = settings or load_chroma_settings()
    if settings.host:
        return _http_client(settings.host, settings.port)
    path = settings.path.expanduser().resolve()
    with _lock:
        if path.as_posix() in _persistent and not (path / "chroma.sqlite3").exists():
            # The directory was deleted under a live client, which would keep serving its old state.
            reset_clients()
        return _persistent_client(path.as_posix())


def reset_clients() -> None:
    """Forget every cached Chroma client of this process (Chroma's own shared cache too)."""
    from chromadb.api.client import SharedSystemClient

    _persistent.clear()
    _http_client.cache_clear()
    SharedSystemClient.clear_system_cache()


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()[:40] or "model"


def collection_name(space: ProjectEmbedding) -> str:
    """``loupe-p{project}-a{attribute}-{model slug}-{hash}``: valid for Chroma, unique per space."""
    digest = hashlib.blake2b(space.model.encode("utf-8"), digest_size=4).hexdigest()
    return f"loupe-p{space.project_id}-a{space.attribute_id}-{_slug(space.model)}-{digest}"


def _get_collection(client: ClientAPI, space: ProjectEmbedding) -> Collection | None:
    from chromadb.errors import NotFoundError as ChromaNotFound

    try:
        return client.get_collection(collection_name(space), embedding_function=None)  # type: ignore[arg-type]
    except (ChromaNotFound, ValueError):
        return None


def _write_lock(space: ProjectEmbedding) -> threading.RLock:
    with _lock:
        return _write_locks.setdefault(collection_name(space), threading.RLock())


def _built_from(collection: Collection, space: ProjectEmbedding) -> bool:
    """Whether the collection was built for this very space (not one that had its id before)."""
    return (collection.metadata or {}).get(SPACE_KEY) == space.uid


def _is_fresh(collection: Collection, space: ProjectEmbedding) -> bool:
    revision = (collection.metadata or {}).get(REVISION_KEY)
    return _built_from(collection, space) and revision == space.revision and collection.count() == space.count


def index_status(session: Session, *, space: ProjectEmbedding, client: ClientAPI | None = None) -> IndexStatus:
    """Whether the space's collection is ``fresh``, ``stale`` (out of date) or ``missing``.

    Stale means the collection was built from another space (a deleted one whose
    ids were reused), from another revision of the stored embeddings, or holds a
    different number of items.
    """
    space = reload_space(session, space)
    collection = _get_collection(client or get_client(), space)
    if collection is None:
        return IndexStatus.MISSING
    return IndexStatus.FRESH if _is_fresh(collection, space) else IndexStatus.STALE


def _create(client: ClientAPI, space: ProjectEmbedding) -> Collection:
    name = collection_name(space)
    if _get_collection(client, space) is not None:
        client.delete_collection(name)
    return client.create_collection(
        name,
        embedding_function=None,  # type: ignore[arg-type]
        configuration={"hnsw": {"space": "cosine"}},
        # The revision is set only when the collection is complete: a crash mid-way leaves it stale.
        metadata={REVISION_KEY: -1, SPACE_KEY: space.uid, "project_id": space.project_id, "model": space.model},
    )


def _upsert(client: ClientAPI, collection: Collection, ids: np.ndarray, vectors: np.ndarray,
            progress: Progress | None = None) -> None:
    batch = max(1, min(int(client.get_max_batch_size()), 5000))
    total = len(ids)
    for start in range(0, total, batch):
        collection.upsert(
            ids=[str(int(i)) for i in ids[start : start + batch]],
            embeddings=vectors[start : start + batch],
        )
        if progress is not None:
            progress(min(start + batch, total), total)


def _mark(collection: Collection, space: ProjectEmbedding) -> None:
    metadata = dict(collection.metadata or {})
    metadata[REVISION_KEY] = space.revision
    collection.modify(metadata=metadata)


def rebuild_index(
    session: Session, *, space: ProjectEmbedding, client: ClientAPI | None = None, progress: Progress | None = None
) -> int:
    """Recreate the space's collection from the stored vectors; returns the number of items.

    ``progress(done, total)`` counts the records written to the collection.
    """
    client = client or get_client()
    space = reload_space(session, space)
    with _write_lock(space):
        ids, vectors = load_vectors(session, space)
        if progress is not None:
            progress(0, len(ids))
        collection = _create(client, space)
        _upsert(client, collection, ids, vectors, progress)
        _mark(collection, space)
    return len(ids)


def ensure_index(
    session: Session, *, space: ProjectEmbedding, client: ClientAPI | None = None, progress: Progress | None = None
) -> IndexStatus:
    """Rebuild the space's collection unless it is fresh; returns the status found before.

    When another thread is rebuilding it, waits for that rebuild instead of starting a second one.
    """
    client = client or get_client()
    status = index_status(session, space=space, client=client)
    if status is IndexStatus.FRESH:
        return status
    with _write_lock(space):
        if index_status(session, space=space, client=client) is not IndexStatus.FRESH:
            rebuild_index(session, space=space, client=client, progress=progress)
    return status


def sync_index(
    session: Session,
    *,
    space: ProjectEmbedding,
    changed: Sequence[int],
    removed: Sequence[int],
    previous_revision: int,
    client: ClientAPI | None = None,
    progress: Progress | None = None,
) -> SyncAction:
    """Bring the collection up to date after the store changed ``changed`` and ``removed`` records.

    If the collection was built for this space from ``previous_revision``, only
    those records are written (new vectors replace old ones under the same record
    id); a missing or otherwise stale collection is rebuilt.

    Parameters
    ----------
    progress
        Called as ``progress(done, total)`` with the records written to the collection.

    Returns
    -------
    str
        ``"unchanged"``, ``"updated"`` (only the changed records written) or ``"rebuilt"``.
    """
    client = client or get_client()
    space = reload_space(session, space)
    with _write_lock(space):
        collection = _get_collection(client, space)
        if collection is not None and _built_from(collection, space):
            if _is_fresh(collection, space):
                return "unchanged"
            if (collection.metadata or {}).get(REVISION_KEY) == previous_revision:
                if removed:
                    collection.delete(ids=[str(int(r)) for r in removed])
                ids, vectors = load_vectors(session, space, record_ids=changed)
                if progress is not None:
                    progress(0, len(ids))
                if len(ids):
                    _upsert(client, collection, ids, vectors, progress)
                if collection.count() == space.count:
                    _mark(collection, space)
                    return "updated"
        rebuild_index(session, space=space, client=client, progress=progress)
    return "rebuilt"


def drop_index(space: ProjectEmbedding, *, client: ClientAPI | None = None) -> bool:
    """Delete the space's collection; returns whether there was one."""
    client = client or get_client()
    if _get_collection(client, space) is None:
        return False
    client.delete_collection(collection_name(space))
    return True


def drop_project_indexes(session: Session, *, project_id: int, client: ClientAPI | None = None) -> int:
    """Delete the collections of every embedding space of the project; returns how many there were.

    Touches no Chroma client when the project has no embeddings.
    """
    spaces = list_spaces(session, project_id)
    if not spaces:
        return 0
    client = client or get_client()
    dropped = 0
    for space in spaces:
        with _write_lock(space):
            dropped += drop_index(space, client=client)
    return dropped


def rebuild_project_indexes(
    session: Session, *, project_id: int, client: ClientAPI | None = None, progress: Progress | None = None
) -> list[tuple[ProjectEmbedding, int]]:
    """Rebuild the collections of every embedding space of the project; returns (space, items) pairs."""
    client = client or get_client()
    return [
        (space, rebuild_index(session, space=space, client=client, progress=progress))
        for space in list_spaces(session, project_id)
    ]


def query_index(
    session: Session,
    *,
    space: ProjectEmbedding,
    vector: np.ndarray,
    k: int,
    exclude: int | None = None,
    client: ClientAPI | None = None,
) -> list[tuple[int, float]]:
    """The ``k`` nearest records to ``vector`` as ``(record id, cosine similarity)``, best first.

    ``exclude`` (a record id) is left out of the results, which still hold ``k`` items when enough exist.
    """
    client = client or get_client()
    collection = _get_collection(client, space)
    if collection is None:
        raise LoupeError(
            "The search index is missing; rebuild it with loupe index rebuild --project PROJECT "
            "(the app rebuilds it on its own)."
        )
    available = collection.count()
    n = min(k + (1 if exclude is not None else 0), available)
    if n <= 0:
        return []
    result = collection.query(
        query_embeddings=[np.asarray(vector, dtype=np.float32)],  # type: ignore[arg-type]
        n_results=n,
        include=["distances"],  # type: ignore[list-item]
    )
    ids = result["ids"][0]
    distances = (result.get("distances") or [[]])[0]
    hits = [(int(i), 1.0 - float(d)) for i, d in zip(ids, distances, strict=True) if int(i) != exclude]
    return hits[:k]
