"""Weak supervision from the store: which heuristics vote, what is stored, and that a new run
replaces the previous result in one transaction. Votes are written with ``store_external_votes``
(no worker processes); the keyword heuristics of the tiny project give numbers checkable by hand."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select

from core import weak_supervision
from core.errors import ValidationError
from core.heuristics import store_external_votes, update_heuristic
from core.store import session_scope
from core.store.heuristics import WeakSupervisionRun
from core.store.models import Label, LabelAssociation, Record, SourceType
from core.store.projects import get_project
from core.store.tasks import create_task
from core.weak_supervision import run_weak_supervision
from tests.fixtures_heuristics import Reviews, reviews_fixture  # noqa: F401

# The keyword heuristics' votes on records "1" .. "6" (see tests/fixtures_heuristics.py).
VOTES = {
    "good": {"1": "positive", "3": "positive", "5": "positive"},
    "bad": {"2": "negative", "3": "negative"},
    "fun": {"4": "positive", "5": "positive"},
}


def sigmoid(margin: float) -> float:
    return 1 / (1 + math.exp(-(7 * margin - 3)))


def store_votes(reviews: Reviews, task_id: int | None = None, votes: dict | None = None) -> dict[str, int]:
    ids = {str(i + 1): rid for i, rid in enumerate(reviews.record_ids)}
    out = {}
    with session_scope(reviews.engine) as session:
        for name, by_key in (votes or VOTES).items():
            h = store_external_votes(session, project_id=reviews.project_id, task_id=task_id or reviews.sentiment,
                                     name=name, votes={ids[k]: v for k, v in by_key.items()})
            out[name] = h.id or 0
    return out


def weak_labels(reviews: Reviews, task_id: int | None = None) -> dict[str, tuple[str, float, int]]:
    """Record key → (label, confidence, run id) of the stored weak-supervision labels."""
    stmt = (
        select(Record.key, Label.name, LabelAssociation.confidence, LabelAssociation.source_id)
        .join(Record, Record.id == LabelAssociation.record_id)
        .join(Label, Label.id == LabelAssociation.label_id)
        .where(LabelAssociation.task_id == (task_id or reviews.sentiment),
               LabelAssociation.source_type == SourceType.WEAK_SUPERVISION.value)
    )
    with session_scope(reviews.engine) as session:
        return {key: (name, conf, sid) for key, name, conf, sid in session.execute(stmt).all()}


def weak_label_rows(reviews: Reviews, task_id: int) -> list[tuple[str, str, float]]:
    """Sorted (record key, label, confidence) of every stored weak-supervision label: several per record
    for multi-label tasks, which :func:`weak_labels` keys by record."""
    stmt = (
        select(Record.key, Label.name, LabelAssociation.confidence)
        .join(Record, Record.id == LabelAssociation.record_id)
        .join(Label, Label.id == LabelAssociation.label_id)
        .where(LabelAssociation.task_id == task_id, LabelAssociation.source_type == SourceType.WEAK_SUPERVISION.value)
    )
    with session_scope(reviews.engine) as session:
        return sorted(session.execute(stmt).all())  # type: ignore[arg-type]


def test_majority_labels_only_records_with_a_clear_vote(reviews: Reviews) -> None:
    store_votes(reviews)
    run = run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment,
                               model="majority")
    labels = weak_labels(reviews)
    assert {k: v[0] for k, v in labels.items()} == {"1": "positive", "2": "negative", "4": "positive",
                                                   "5": "positive"}  # 3 is a tie, 6 has no vote
    assert {v[2] for v in labels.values()} == {run.id}
    assert (run.model, run.n_records, run.n_labeled, run.n_labels, run.n_manual) == ("majority", 6, 4, 4, 4)
    assert run.heuristics == ["good", "bad", "fun"]


def test_refinery_weighted_vote_uses_precision_against_manual_labels(reviews: Reviews) -> None:
    store_votes(reviews)
    run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment, model="refinery")
    labels = weak_labels(reviews)
    # precision: good→positive 2/3 (records 1, 5 right, 3 wrong), bad→negative 1, fun→positive 1 (record 4 unlabeled)
    expected = {
        "1": ("positive", sigmoid(2 / 3)),
        "2": ("negative", sigmoid(1.0)),
        "3": ("negative", sigmoid(1 - 2 / 3)),
        "4": ("positive", sigmoid(1.0)),
        "5": ("positive", sigmoid(2 / 3 + 1)),
    }
    assert set(labels) == set(expected)
    for key, (label, confidence) in expected.items():
        assert labels[key][0] == label
        assert labels[key][1] == pytest.approx(confidence, abs=1e-6)


def test_default_model_and_disabled_heuristics(reviews: Reviews) -> None:
    ids = store_votes(reviews)
    with session_scope(reviews.engine) as session:
        update_heuristic(session, heuristic_id=ids["bad"], enabled=False)
    run = run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment)
    assert run.model == weak_supervision.DEFAULT_MODEL == "dawid_skene"
    assert run.heuristics == ["good", "fun"]
    labels = weak_labels(reviews)
    assert set(labels) == {"1", "3", "4", "5"}  # record 2 had only the disabled heuristic's vote
    assert {v[0] for v in labels.values()} == {"positive"}
    assert all(0.0 < v[1] <= 1.0 for v in labels.values())


def test_a_new_run_replaces_the_previous_result_atomically(reviews: Reviews, monkeypatch: pytest.MonkeyPatch) -> None:
    store_votes(reviews)
    first = run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment,
                                 model="majority")
    before = weak_labels(reviews)
    original = weak_supervision._replace_labels

    def fail_after_writing(session, **kwargs):  # type: ignore[no-untyped-def]
        original(session, **kwargs)  # old labels deleted, new ones inserted ...
        raise RuntimeError("disk full")  # ... and then the transaction fails

    monkeypatch.setattr(weak_supervision, "_replace_labels", fail_after_writing)
    with pytest.raises(RuntimeError, match="disk full"):
        run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment,
                             model="refinery")
    assert weak_labels(reviews) == before
    with session_scope(reviews.engine) as session:
        assert session.execute(select(func.count()).select_from(WeakSupervisionRun)).scalar_one() == 1
    monkeypatch.setattr(weak_supervision, "_replace_labels", original)
    second = run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment,
                                  model="refinery")
    after = weak_labels(reviews)
    assert len(after) == second.n_labels == 5 and {v[2] for v in after.values()} == {second.id}
    with session_scope(reviews.engine) as session:
        runs = weak_supervision.list_runs(session, project_id=reviews.project_id, task_id=reviews.sentiment)
        assert [r.id for r in runs] == [second.id, first.id]  # history kept; only the latest keeps labels


def test_without_enabled_votes_nothing_runs(reviews: Reviews) -> None:
    with pytest.raises(ValidationError, match="no enabled heuristic with results"):
        run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment)
    store_votes(reviews)
    with pytest.raises(ValidationError, match="Unknown label model"):
        run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment, model="snorkel")
    with pytest.raises(ValidationError, match="invalid option"):
        run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment,
                             model="majority", params={"bogus": 1})


def test_multilabel_tasks_get_every_assigned_label(reviews: Reviews) -> None:
    with session_scope(reviews.engine) as session:
        project = get_project(session, "movies")
        topics = create_task(session, project=project, name="topics", kind="multilabel", labels=["plot", "food"]).id
    store_votes(reviews, topics, {"story": {"1": "plot", "3": "plot", "5": "plot"}, "menu": {"5": "food"}})
    run = run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=topics or 0, model="majority")
    assigned = [(key, name) for key, name, _ in weak_label_rows(reviews, topics or 0)]
    assert assigned == [("1", "plot"), ("3", "plot"), ("5", "food"), ("5", "plot")]
    assert (run.n_labeled, run.n_labels) == (3, 4)


def test_default_model_on_a_multilabel_task_assigns_every_voted_label(reviews: Reviews) -> None:
    with session_scope(reviews.engine) as session:
        project = get_project(session, "movies")
        topics = create_task(session, project=project, name="topics", kind="multilabel",
                             labels=["plot", "food", "fun"]).id or 0
    # one heuristic gives several labels at once (a labeling function returning a list)
    store_votes(reviews, topics, {
        "themes": {"1": ["plot"], "4": ["fun"], "5": ["food", "fun"]},
        "story": {"1": "plot", "2": "plot", "3": "plot"},
        "menu": {"5": ["food"]},
    })
    run = run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=topics)
    assert run.model == weak_supervision.DEFAULT_MODEL
    assigned = weak_label_rows(reviews, topics)
    assert [(k, name) for k, name, _ in assigned] == [
        ("1", "plot"), ("2", "plot"), ("3", "plot"), ("4", "fun"), ("5", "food"), ("5", "fun"),
    ]  # record 6 has no vote and gets nothing
    assert all(0.5 < conf <= 1.0 for _, _, conf in assigned)
    assert (run.n_labeled, run.n_labels) == (5, 6)
