"""core.store.tasks_service: the one way the CLI and the Overview page create a labeling task."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.errors import NotFoundError, ValidationError
from core.importers import import_file
from core.store import session_scope
from core.store.models import LabelingTask, RecordTokens
from core.store.projects import get_project
from core.store.tasks import get_task, list_labels
from core.store.tasks_service import add_task, split_labels
from tests.conftest import DATA


@pytest.fixture()
def reviews(engine: Engine) -> Engine:
    import_file(engine, project="reviews", path=DATA / "reviews.csv")
    return engine


def test_split_labels_drops_blanks_and_spaces() -> None:
    assert split_labels(" positive, negative ,, neutral ,") == ["positive", "negative", "neutral"]
    assert split_labels("") == [] and split_labels(None) == []


def test_add_task_creates_labels_with_hotkeys_and_bumps_the_revision(reviews: Engine) -> None:
    created = add_task(
        reviews, project="reviews", name="sentiment", kind="classification", labels=["positive", "negative"]
    )
    assert created.summary() == (
        "Created classification task 'sentiment' on the whole record with 2 label(s): positive, negative"
    )
    with session_scope(reviews) as session:
        project = get_project(session, "reviews")
        task = get_task(session, project.id or 0, "sentiment")
        assert [(label.name, label.hotkey) for label in list_labels(session, task.id or 0)] == [
            ("positive", "1"), ("negative", "2"),
        ]  # fmt: skip
        assert project.revision == 2  # the import, then the task


def test_an_extraction_task_tokenizes_its_attribute(reviews: Engine) -> None:
    created = add_task(
        reviews, project="reviews", name="aspects", kind="extraction", attribute="text", labels=["battery", "screen"]
    )
    assert created.tokenized == 10
    with session_scope(reviews) as session:
        assert session.execute(select(func.count()).select_from(RecordTokens)).scalar_one() == 10


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"project": "nope", "labels": ["a"]}, NotFoundError, "No project named 'nope'"),
        ({"project": "reviews", "labels": []}, ValidationError, "at least one label"),
        ({"project": "reviews", "labels": ["a", "a"]}, ValidationError, "given twice"),
        ({"project": "reviews", "labels": ["a"], "attribute": "missing"}, NotFoundError, "No attribute 'missing'"),
    ],
)
def test_bad_input_writes_nothing(reviews: Engine, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        add_task(reviews, name="topic", kind="classification", **kwargs)
    with session_scope(reviews) as session:
        assert session.execute(select(func.count()).select_from(LabelingTask)).scalar_one() == 0
        assert get_project(session, "reviews").revision == 1
