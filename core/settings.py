"""Where Loupe keeps its data, read from the environment.

``LOUPE_HOME`` (default ``./data/workspace``) holds the SQLite database and the
Chroma directory. ``DATABASE_URL`` overrides the database, e.g.
``postgresql+psycopg://user:pw@host/db`` for a team server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = Path("data") / "workspace"


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the store and the derived index."""

    home: Path
    database_url: str

    @property
    def chroma_path(self) -> Path:
        return self.home / "chroma"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read ``LOUPE_HOME`` and ``DATABASE_URL`` (from ``env`` or the process environment)."""
    env = dict(os.environ) if env is None else env
    home = Path(env.get("LOUPE_HOME") or DEFAULT_HOME).expanduser().resolve()
    url = _absolute_sqlite(env.get("DATABASE_URL") or f"sqlite:///{home / 'loupe.db'}")
    # Heroku-style URLs name the dialect "postgres"; SQLAlchemy wants an explicit driver.
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return Settings(home=home, database_url=url)


def _absolute_sqlite(url: str) -> str:
    """A SQLite URL with a relative path, resolved against the working directory now (once)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path, sep, query = url[len(prefix) :].partition("?")
    if not path or path == ":memory:" or path.startswith("/"):
        return url
    return f"{prefix}{Path(path).expanduser().resolve()}{sep}{query}"


def child_environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a process that must use the same store: ``LOUPE_HOME`` and ``DATABASE_URL`` absolute.

    The defaults are relative to the working directory, so a child started elsewhere (the
    Streamlit server runs in the repository) would otherwise open another database.
    """
    env = dict(os.environ if base is None else base)
    env["LOUPE_HOME"] = str(settings.home)
    if env.get("DATABASE_URL"):
        env["DATABASE_URL"] = settings.database_url
    return env
