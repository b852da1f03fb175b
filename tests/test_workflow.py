"""Workflow status, its history, the verify stream, review decisions and gold."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.errors import ConflictError, NotFoundError, ValidationError
from core.label_queue import build_queue
from core.labeling import get_or_create_annotator, set_label, set_labels
from core.review import (
    answers_of_record,
    mark_gold_fraction,
    reset_gold,
    review_answer,
    review_queue,
    reviews_frame,
    set_gold,
    start_review,
)
from core.store import session_scope
from core.store.models import LabelAssociation
from core.store.projects import delete_project
from core.store.workflow import (
    TRANSITIONS,
    LabelReview,
    Status,
    get_status,
    set_status,
    status_counts,
    status_history,
)
from core.valid_labels import valid_manual_labels
from tests.fixtures_labeling import LabelingProject, labeling_project_db_fixture, labeling_project_fixture  # noqa: F401
from tests.fixtures_pg import db_engine, db_url, pg_cluster, pg_url  # noqa: F401


def _ids(engine: Engine, *names: str) -> list[int]:
    with session_scope(engine) as s:
        return [get_or_create_annotator(s, n).id or 0 for n in names]


def test_transition_table_covers_every_status() -> None:
    assert set(TRANSITIONS) == set(Status)
    assert TRANSITIONS[Status.UNLABELED] == {Status.LABELED}
    assert Status.DONE not in TRANSITIONS[Status.REWORK]  # a rejected record is labeled again before it is done


def test_label_review_accept_makes_the_record_done_with_history(labeling_project_db: LabelingProject) -> None:
    p = labeling_project_db
    alice, rita = _ids(p.engine, "alice", "rita")
    rec = p.record_ids[0]
    with session_scope(p.engine) as s:
        assert get_status(s, record_id=rec, task_id=p.sentiment) is Status.UNLABELED
        set_label(s, task_id=p.sentiment, record_id=rec, annotator_id=alice, label="positive")
        assert start_review(s, task_id=p.sentiment, record_id=rec, reviewer_id=rita) is Status.IN_REVIEW
        after = review_answer(s, task_id=p.sentiment, record_id=rec, annotator_id=alice, reviewer_id=rita,
                              decision="accepted", seconds_to_review=2.5)
        history = status_history(s, record_id=rec, task_id=p.sentiment)
        review = s.execute(select(LabelReview)).scalars().one()
    assert after is Status.DONE
    assert list(zip(history["from"], history["to"], history["by"], strict=True)) == [
        ("unlabeled", "labeled", "alice"), ("labeled", "in_review", "rita"), ("in_review", "done", "rita")]
    assert history["at"].notna().all()
    assert (review.decision, review.reviewer_id, review.labels, review.seconds_to_review) == (
        "accepted", rita, ["positive"], 2.5)


def test_saving_the_same_label_again_keeps_a_reviewed_answer_reviewed(labeling_project_db: LabelingProject) -> None:
    from core.labeling import label

    p = labeling_project_db
    ann, rita = _ids(p.engine, "ann", "rita")
    rec = p.record_ids[0]
    label(p.engine, project="reviews", task="sentiment", record="1", labels=["positive"], annotator="ann")
    with session_scope(p.engine) as s:
        assert review_queue(s, task_id=p.sentiment) == [(rec, ann)]
        review_answer(s, task_id=p.sentiment, record_id=rec, annotator_id=ann, reviewer_id=rita, decision="accepted")
        assert review_queue(s, task_id=p.sentiment) == []

    again = label(p.engine, project="reviews", task="sentiment", record="1", labels=["positive"], annotator="ann")

    assert (again.changed, again.status) == (False, Status.DONE)
    with session_scope(p.engine) as s:
        assert review_queue(s, task_id=p.sentiment) == []
        assert get_status(s, record_id=rec, task_id=p.sentiment) is Status.DONE
    # A real change does go back to review.
    label(p.engine, project="reviews", task="sentiment", record="1", labels=["negative"], annotator="ann")
    with session_scope(p.engine) as s:
        assert review_queue(s, task_id=p.sentiment) == [(rec, ann)]
        assert get_status(s, record_id=rec, task_id=p.sentiment) is Status.LABELED


def test_reject_sends_the_record_back_to_the_queue(labeling_project_db: LabelingProject) -> None:
    p = labeling_project_db
    alice, rita = _ids(p.engine, "alice", "rita")
    rec = p.record_ids[2]
    with session_scope(p.engine) as s:
        set_label(s, task_id=p.sentiment, record_id=rec, annotator_id=alice, label="positive")
        assert rec not in build_queue(s, task_id=p.sentiment, annotator_id=alice)
        after = review_answer(s, task_id=p.sentiment, record_id=rec, annotator_id=alice, reviewer_id=rita,
                              decision="rejected", comment="it is neutral")
        assert after is Status.REWORK
        assert rec in build_queue(s, task_id=p.sentiment, annotator_id=alice)
        assert answers_of_record(s, task_id=p.sentiment, record_id=rec) == []
        frame = reviews_frame(s, task_id=p.sentiment)
        assert frame[["record", "annotator", "reviewer", "decision"]].values.tolist() == [
            ["3", "alice", "rita", "rejected"]]
        assert frame["labels"].tolist() == [["positive"]]  # the review keeps what it rejected
        set_label(s, task_id=p.sentiment, record_id=rec, annotator_id=alice, label="neutral")
        assert get_status(s, record_id=rec, task_id=p.sentiment) is Status.LABELED
        assert review_queue(s, task_id=p.sentiment) == [(rec, alice)]  # the new answer waits for review


def test_done_needs_every_answer_accepted(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, bob, rita = _ids(p.engine, "alice", "bob", "rita")
    rec = p.record_ids[1]
    with session_scope(p.engine) as s:
        for who in (alice, bob):
            set_label(s, task_id=p.sentiment, record_id=rec, annotator_id=who, label="negative")
        first = review_answer(s, task_id=p.sentiment, record_id=rec, annotator_id=alice, reviewer_id=rita,
                              decision="accepted")
        second = review_answer(s, task_id=p.sentiment, record_id=rec, annotator_id=bob, reviewer_id=rita,
                               decision="accepted")
        # Relabeling a done record sends it back for review.
        set_label(s, task_id=p.sentiment, record_id=rec, annotator_id=bob, label="neutral")
        third = get_status(s, record_id=rec, task_id=p.sentiment)
    assert (first, second, third) == (Status.IN_REVIEW, Status.DONE, Status.LABELED)


def test_invalid_moves_are_refused(labeling_project: LabelingProject) -> None:
    p = labeling_project
    with session_scope(p.engine) as s, pytest.raises(ConflictError, match="from 'unlabeled' to 'done'"):
        set_status(s, project_id=p.project_id, record_id=p.record_ids[0], task_id=p.sentiment, to="done")
    with session_scope(p.engine) as s, pytest.raises(ValueError):
        set_status(s, project_id=p.project_id, record_id=p.record_ids[0], task_id=p.sentiment, to="finished")


def test_status_counts_include_imported_labels_without_status_rows(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, rita = _ids(p.engine, "alice", "rita")
    with session_scope(p.engine) as s:
        # An imported label: no status row, so the record counts as labeled.
        s.add(LabelAssociation(project_id=p.project_id, record_id=p.record_ids[5], task_id=p.sentiment,
                               label_id=1, source_type="MANUAL", annotator_id=alice))
        set_label(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice, label="positive")
        review_answer(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice, reviewer_id=rita,
                      decision="accepted")
        counts = status_counts(s, project_id=p.project_id, task_id=p.sentiment)
    assert counts == {"unlabeled": 4, "labeled": 1, "in_review": 0, "done": 1, "rework": 0}


def test_review_queue_is_random_filtered_and_skips_reviewed_answers(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, bob, rita = _ids(p.engine, "alice", "bob", "rita")
    r = p.record_ids
    with session_scope(p.engine) as s:
        for i, rid in enumerate(r):
            set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=alice,
                      label=["positive", "negative"][i % 2])
        set_label(s, task_id=p.sentiment, record_id=r[0], annotator_id=bob, label="neutral")
        set_label(s, task_id=p.sentiment, record_id=r[1], annotator_id=rita, label="neutral")
        everything = review_queue(s, task_id=p.sentiment, seed=1)
        assert sorted(everything) == sorted([(rid, alice) for rid in r] + [(r[0], bob), (r[1], rita)])
        assert everything == review_queue(s, task_id=p.sentiment, seed=1)
        assert everything != sorted(everything)  # seeded shuffle, not creation order
        assert review_queue(s, task_id=p.sentiment, annotator_ids=[bob]) == [(r[0], bob)]
        assert sorted(review_queue(s, task_id=p.sentiment, label_names=["negative"])) == [
            (r[1], alice), (r[3], alice), (r[5], alice)]
        # A reviewer does not review their own answers.
        assert (r[1], rita) not in review_queue(s, task_id=p.sentiment, reviewer_id=rita)
        review_answer(s, task_id=p.sentiment, record_id=r[0], annotator_id=bob, reviewer_id=rita, decision="accepted")
        assert (r[0], bob) not in review_queue(s, task_id=p.sentiment)
        assert (r[0], bob) in review_queue(s, task_id=p.sentiment, include_reviewed=True)
        with pytest.raises(NotFoundError, match="nothing to review"):
            review_answer(s, task_id=p.sentiment, record_id=r[2], annotator_id=bob, reviewer_id=rita,
                          decision="accepted")


def test_gold_star_and_ground_truth_manager(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, bob = _ids(p.engine, "alice", "bob")
    r = p.record_ids
    with session_scope(p.engine) as s:
        for rid in r:
            set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=alice, label="positive")
            set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=bob, label="negative")
        assert valid_manual_labels(s, task_id=p.sentiment) == {}  # everyone disagrees, no gold
        set_gold(s, task_id=p.sentiment, record_id=r[0], annotator_id=alice)
        assert valid_manual_labels(s, task_id=p.sentiment) == {r[0]: "positive"}
        set_gold(s, task_id=p.sentiment, record_id=r[0], annotator_id=bob)  # moving the star
        assert valid_manual_labels(s, task_id=p.sentiment) == {r[0]: "negative"}
        assert reset_gold(s, task_id=p.sentiment) == 1
        marked = mark_gold_fraction(s, task_id=p.sentiment, fraction=0.5, seed=3, annotator_ids=[bob])
        valid = valid_manual_labels(s, task_id=p.sentiment)
        assert marked == 3 and len(valid) == 3 and set(valid.values()) == {"negative"}
        assert mark_gold_fraction(s, task_id=p.sentiment, fraction=0.5, seed=3, annotator_ids=[bob]) == 3
        assert valid_manual_labels(s, task_id=p.sentiment) == valid  # same seed, same records
        assert reset_gold(s, task_id=p.sentiment, record_ids=list(valid)[:1]) == 1
        assert len(valid_manual_labels(s, task_id=p.sentiment)) == 2
        with pytest.raises(ValidationError, match="between 0 and 1"):
            mark_gold_fraction(s, task_id=p.sentiment, fraction=1.5)
        with pytest.raises(NotFoundError, match="nothing to star"):
            set_labels(s, task_id=p.topics, record_id=r[0], annotator_id=alice, labels=["price"])
            set_gold(s, task_id=p.topics, record_id=r[0], annotator_id=bob)


def test_gold_fraction_picks_the_majority_answer(labeling_project: LabelingProject) -> None:
    p = labeling_project
    a, b, c = _ids(p.engine, "a", "b", "c")
    rec = p.record_ids[0]
    with session_scope(p.engine) as s:
        for who, name in ((a, "positive"), (b, "negative"), (c, "negative")):
            set_label(s, task_id=p.sentiment, record_id=rec, annotator_id=who, label=name)
        assert mark_gold_fraction(s, task_id=p.sentiment, fraction=1.0) == 1
        assert valid_manual_labels(s, task_id=p.sentiment) == {rec: "negative"}


def _gold_by(engine: Engine, task_id: int) -> dict[int, str]:
    from core.store.models import Annotator

    with session_scope(engine) as s:
        rows = s.execute(
            select(LabelAssociation.record_id, Annotator.name)
            .join(Annotator, Annotator.id == LabelAssociation.annotator_id)
            .where(LabelAssociation.task_id == task_id, LabelAssociation.is_gold.is_(True))
        ).all()
    return dict(rows)  # type: ignore[arg-type]


def test_gold_fraction_keeps_a_filter_of_several_annotators(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, bob, carol, dave = _ids(p.engine, "alice", "bob", "carol", "dave")
    r = p.record_ids
    with session_scope(p.engine) as s:
        for i, rid in enumerate(r):
            set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=alice, label="positive")
            set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=bob if i < 3 else carol, label="negative")
        # On the first record most annotators say "positive"; the filter still picks bob's answer.
        set_label(s, task_id=p.sentiment, record_id=r[0], annotator_id=dave, label="positive")
        assert mark_gold_fraction(s, task_id=p.sentiment, fraction=1.0, annotator_ids=[bob, carol]) == 6
    assert _gold_by(p.engine, p.sentiment) == {rid: "bob" if i < 3 else "carol" for i, rid in enumerate(r)}
    with session_scope(p.engine) as s:
        reset_gold(s, task_id=p.sentiment)
        # Only records the filtered annotators labeled are candidates.
        assert mark_gold_fraction(s, task_id=p.sentiment, fraction=1.0, annotator_ids=[dave, carol]) == 4
    assert _gold_by(p.engine, p.sentiment) == {r[0]: "dave", r[3]: "carol", r[4]: "carol", r[5]: "carol"}


def test_deleting_a_project_removes_workflow_rows(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, rita = _ids(p.engine, "alice", "rita")
    with session_scope(p.engine) as s:
        set_label(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice, label="positive")
        review_answer(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice, reviewer_id=rita,
                      decision="rejected")
    with session_scope(p.engine) as s:
        delete_project(s, name="reviews")
    with session_scope(p.engine) as s:
        assert s.execute(select(LabelReview)).first() is None
