"""A tiny movie-review project for the heuristics tests, with numbers small enough to check by hand.

Import the fixture with ``from tests.fixtures_heuristics import reviews_fixture  # noqa: F401`` and ask
for ``reviews``. Six records, a classification task ``sentiment`` (positive, negative) with four
valid manual labels, an extraction task ``food`` on ``text`` (FOOD), and three keyword functions:

====  =================================  ========  ====  ====  ====
key   text                               manual    good  bad   fun
====  =================================  ========  ====  ====  ====
1     a good movie to watch tonight      positive  pos.
2     a bad movie to skip tonight        negative        neg.
3     good start but bad ending overall  negative  pos.  neg.
4     great fun for the whole family     -                     pos.
5     good fun with pizza and friends    positive  pos.        pos.
6     nothing here to see at all         -
====  =================================  ========  ====  ====  ====
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.importers import import_file
from core.store import session_scope
from core.store.models import Record
from core.store.projects import get_project
from core.store.tasks import create_task, get_task

PROJECT = "movies"
ROWS = [
    ("a good movie to watch tonight", "positive"),
    ("a bad movie to skip tonight", "negative"),
    ("good start but bad ending overall", "negative"),
    ("great fun for the whole family", None),
    ("good fun with pizza and friends", "positive"),
    ("nothing here to see at all", None),
]
KEYWORDS = '''
def good(record):
    """Says good."""
    return "positive" if "good" in record["text"] else None


def bad(record):
    return "negative" if "bad" in record["text"] else None


def fun(record):
    return "positive" if "fun" in record["text"] else None
'''


@dataclass(frozen=True)
class Reviews:
    engine: Engine
    project_id: int
    sentiment: int
    food: int
    record_ids: list[int]  # in running-id order; keys "1" .. "6"


def make_reviews(engine: Engine) -> Reviews:
    rows = [{"text": text, "__sentiment": label} for text, label in ROWS]
    import_file(engine, project=PROJECT, data=json.dumps(rows).encode(), name="movies.json", fmt="json")
    with session_scope(engine) as session:
        project = get_project(session, PROJECT)
        food = create_task(session, project=project, name="food", kind="extraction", attribute="text",
                           labels=["FOOD"])
        ids = session.execute(
            select(Record.id).where(Record.project_id == project.id).order_by(Record.running_id)
        ).scalars().all()
        return Reviews(engine=engine, project_id=project.id or 0,
                       sentiment=get_task(session, project.id or 0, "sentiment").id or 0,
                       food=food.id or 0, record_ids=[int(i) for i in ids])


@pytest.fixture(name="reviews")
def reviews_fixture(engine: Engine) -> Reviews:
    return make_reviews(engine)
