"""Shared fixtures: a temporary LOUPE_HOME with its own SQLite store, and tiny data paths.

Fixtures specific to one area live in that area's test module or in a
``tests/fixtures_*.py`` module that the tests import them from.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from core.store import make_engine

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
ARTIFACTS = TESTS / "artifacts"
REPO = TESTS.parent

# Browser-test fixtures (a server per test, Chromium) are shared by every test_e2e_* module.
pytest.register_assert_rewrite("tests.e2e_helpers")
pytest_plugins = ["tests.e2e_helpers"]


@pytest.fixture()
def loupe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh LOUPE_HOME for one test; DATABASE_URL is cleared so SQLite under it is used."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("LOUPE_HOME", str(home))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return home


@pytest.fixture()
def engine(loupe_home: Path) -> Iterator[Engine]:
    """An engine on a fresh SQLite database under the test's LOUPE_HOME."""
    eng = make_engine(f"sqlite:///{loupe_home / 'loupe.db'}")
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where browser tests save screenshots (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_configure(config: pytest.Config) -> None:
    # Tests never reach the network; make libraries that would try fail fast instead.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
