"""A tiny labeling project: six short texts, a single-label, a multi-label and an extraction task.

Import the fixtures into a test module with
``from tests.fixtures_labeling import labeling_project_fixture  # noqa: F401`` and ask for
``labeling_project``; ``labeling_project_db`` (from ``labeling_project_db_fixture``) runs on SQLite
and PostgreSQL and needs the fixtures of :mod:`tests.fixtures_pg` imported too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.importers import import_file
from core.store import session_scope
from core.store.models import Attribute, Record
from core.store.projects import get_project
from core.store.tasks import create_task
from core.tokenize import ensure_tokens, get_nlp

PROJECT = "reviews"
TEXTS = [
    "Great phone from Apple , love it",
    "Terrible service at the Berlin store",
    "Alice said the battery is fine",
    "<script>alert('x')</script> not a real review",
    "Bob works for Google in Paris",
    "Meh . Nothing special",
]


@dataclass(frozen=True)
class LabelingProject:
    """Ids of the tiny project's parts, for tests to address directly."""

    engine: Engine
    project_id: int
    sentiment: int  # classification: positive, negative, neutral (hotkeys 1, 2, 3)
    topics: int  # multi-label: price, service, quality
    entities: int  # extraction on "text": PER, ORG, LOC
    record_ids: list[int]  # in running-id order; record keys are "1" .. "6"


def make_labeling_project(engine: Engine, name: str = PROJECT) -> LabelingProject:
    rows = [{"text": t, "stars": i % 5 + 1} for i, t in enumerate(TEXTS)]
    import_file(engine, project=name, data=json.dumps(rows).encode(), name="reviews.json", fmt="json")
    with session_scope(engine) as session:
        project = get_project(session, name)
        sentiment = create_task(session, project=project, name="sentiment", kind="classification",
                                labels=["positive", "negative", "neutral"])
        topics = create_task(session, project=project, name="topics", kind="multilabel",
                             labels=["price", "service", "quality"])
        entities = create_task(session, project=project, name="entities", kind="extraction", attribute="text",
                               labels=["PER", "ORG", "LOC"])
        attribute = session.execute(
            select(Attribute).where(Attribute.project_id == project.id, Attribute.name == "text")
        ).scalar_one()
        ensure_tokens(session, attribute=attribute, nlp=get_nlp("blank:en"))
        ids = session.execute(
            select(Record.id).where(Record.project_id == project.id).order_by(Record.running_id)
        ).scalars().all()
        return LabelingProject(engine=engine, project_id=project.id or 0, sentiment=sentiment.id or 0,
                               topics=topics.id or 0, entities=entities.id or 0,
                               record_ids=[i or 0 for i in ids])


@pytest.fixture(name="labeling_project")
def labeling_project_fixture(engine: Engine) -> LabelingProject:
    """The tiny project on SQLite under the test's LOUPE_HOME."""
    return make_labeling_project(engine)


@pytest.fixture(name="labeling_project_db")
def labeling_project_db_fixture(db_engine: Engine) -> LabelingProject:
    """The tiny project on SQLite and on PostgreSQL (import ``db_engine`` and friends from tests.fixtures_pg)."""
    return make_labeling_project(db_engine)
