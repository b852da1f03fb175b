"""Engine and sessions, built from settings in functions (never at import time)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from core.settings import Settings, load_settings

# ensure_ascii=False keeps non-ASCII text searchable with LIKE in SQLite. One encoder for all rows:
# json.dumps with options builds a new one per call, a measurable cost when importing 100,000 records.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)


def _json_dumps(value: Any) -> str:
    return _JSON_ENCODER.encode(value)


@lru_cache(maxsize=8)
def make_engine(database_url: str) -> Engine:
    """Create (once per URL and process) an engine with the tables in place."""
    kwargs: dict[str, Any] = {"json_serializer": _json_dumps}
    if database_url.startswith("sqlite"):
        # Streamlit serves each session from its own thread.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database_url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    _register_tables()
    SQLModel.metadata.create_all(engine)
    # create_all adds no index to a table that exists already; databases made before an index was
    # declared get it here (one catalog query when nothing is missing).
    from core.store.browse_indexes import ensure_browse_indexes

    ensure_browse_indexes(engine)
    from core.store.embeddings import ensure_space_uids

    ensure_space_uids(engine)  # likewise for a column added to an existing table
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the app read while an import or a label write is in progress.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _register_tables() -> None:
    """Import every module of ``core.store`` so ``create_all`` sees all tables.

    Areas that add tables (heuristics, slices, embeddings, ...) put them in their
    own module under ``core/store/``; nothing needs registering by hand.
    """
    import importlib
    import pkgutil

    import core.store

    for module in pkgutil.iter_modules(core.store.__path__):
        importlib.import_module(f"core.store.{module.name}")


def get_engine(settings: Settings | None = None) -> Engine:
    """The engine for the configured ``DATABASE_URL`` (SQLite under ``LOUPE_HOME`` by default)."""
    settings = settings or load_settings()
    return make_engine(settings.database_url)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
