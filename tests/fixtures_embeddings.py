"""The embedding model (loaded once per test session) and a tiny embedded project.

Import into a test module with
``from tests.fixtures_embeddings import embedded_project_fixture, embedding_model_fixture  # noqa: F401``
and request them as ``embedding_model`` and ``embedded_project``.
The model is the packaged all-MiniLM-L6-v2 (no download); the index is a real
embedded Chroma under each test's own ``LOUPE_HOME``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from core.embeddings import DEFAULT_MODEL, EmbedResult, embed_attribute, load_model
from core.importers import import_file
from core.store import session_scope
from core.store.projects import get_project

PROJECT = "news"
# Short texts on four topics; record keys are the running ids "1".."16" in this order.
# "1" and "2" are near-duplicates; "16" has no text; topics label 8 records by hand (task "topic").
ROWS: list[dict[str, Any]] = [
    {"text": "The striker scored twice in the cup final.", "__topic": "sports"},
    {"text": "The striker scored two goals in the cup final!", "__topic": None},
    {"text": "Whisk the eggs, then fold in the flour and sugar.", "__topic": "cooking"},
    {"text": "Parliament passed the new budget bill after a long debate.", "__topic": "politics"},
    {"text": "Bake the bread for forty minutes at 200 degrees.", "__topic": "cooking"},
    {"text": "The goalkeeper saved a penalty in the last minute.", "__topic": "sports"},
    {"text": "The minister resigned after the election defeat.", "__topic": "politics"},
    {"text": "Simmer the tomato sauce with garlic and basil.", "__topic": "cooking"},
    {"text": "The senate voted against the new tax law.", "__topic": "politics"},
    {"text": "The tennis champion won the match in straight sets.", "__topic": None},
    {"text": "Roast the chicken with lemon and rosemary.", "__topic": None},
    {"text": "The president signed the treaty with the neighbouring country.", "__topic": None},
    {"text": "The marathon runner broke the world record.", "__topic": None},
    {"text": "Quantum entanglement links the spins of two distant particles.", "__topic": None},
    {"text": "Chop the onions finely and fry them in butter.", "__topic": None},
    {"text": "", "__topic": None},
]


@dataclass(frozen=True)
class EmbeddedProject:
    engine: Engine
    project_id: int
    name: str
    result: EmbedResult


@pytest.fixture(scope="session", name="embedding_model")
def embedding_model_fixture() -> Any:
    """all-MiniLM-L6-v2, loaded once; ``core.embeddings.load_model`` returns this same object afterwards."""
    return load_model(DEFAULT_MODEL)


def make_project(engine: Engine, *, name: str = PROJECT, rows: list[dict[str, Any]] | None = None) -> int:
    """Import ``rows`` (default :data:`ROWS`) as a project; returns its id."""
    payload = json.dumps(rows if rows is not None else ROWS).encode("utf-8")
    import_file(engine, project=name, data=payload, name=f"{name}.json", fmt="json")
    with session_scope(engine) as session:
        return get_project(session, name).id or 0


@pytest.fixture(name="embedded_project")
def embedded_project_fixture(engine: Engine, embedding_model: Any) -> EmbeddedProject:
    """:data:`ROWS` imported and its ``text`` attribute embedded and indexed."""
    project_id = make_project(engine)
    result = embed_attribute(engine, project=PROJECT, attribute="text")
    return EmbeddedProject(engine=engine, project_id=project_id, name=PROJECT, result=result)
