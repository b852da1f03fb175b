"""Where Loupe keeps its data, read from the environment.

``LOUPE_HOME`` (default ``./data/workspace``) holds the SQLite database and the
Chroma directory. ``DATABASE_URL`` overrides the database, e.g.
``postgresql+psycopg://user:pw@host/db`` for a team server.
"""

from __future__ import annotations

import os
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
    url = env.get("DATABASE_URL") or f"sqlite:///{home / 'loupe.db'}"
    # Heroku-style URLs name the dialect "postgres"; SQLAlchemy wants an explicit driver.
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return Settings(home=home, database_url=url)
