"""The Labeling and Review pages and the agreement section, driven through Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.labeling import get_or_create_annotator, set_label
from core.store import session_scope
from core.store.models import Annotator, Label, LabelAssociation
from core.store.workflow import LabelReview, Status, get_status
from tests.conftest import REPO
from tests.fixtures_embeddings import EmbeddedProject, embedded_project_fixture, embedding_model_fixture  # noqa: F401
from tests.fixtures_labeling import LabelingProject, labeling_project_fixture  # noqa: F401
from ui.resources import OPEN_RECORD_KEY

NAME_INPUT = "labeling.annotator.input"


def _app(page: str, project: str = "reviews") -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.session_state["project"] = project
    at.run()
    at.switch_page(page)
    return at.run()


def _labeling_as(name: str) -> AppTest:
    at = _app("pages/labeling.py")
    at.sidebar.text_input(key=NAME_INPUT).input(name).run()
    assert not at.exception, at.exception
    return at


def _manual(p: LabelingProject, task_id: int) -> list[tuple[str, str, int, int | None, int | None, float | None]]:
    with session_scope(p.engine) as s:
        stmt = (
            select(Annotator.name, Label.name, LabelAssociation.record_id, LabelAssociation.token_start,
                   LabelAssociation.token_end, LabelAssociation.seconds_spent)
            .join(Label, Label.id == LabelAssociation.label_id)
            .join(Annotator, Annotator.id == LabelAssociation.annotator_id)
            .where(LabelAssociation.task_id == task_id, LabelAssociation.source_type == "MANUAL")
            .order_by(LabelAssociation.record_id, LabelAssociation.token_start)
        )
        return [tuple(r) for r in s.execute(stmt).all()]  # type: ignore[misc]


def _record_html(at: AppTest) -> str:
    return at.html[0].value


def test_all_unlabeled_queue_leaves_out_records_anyone_labeled(labeling_project: LabelingProject,
                                                               loupe_home: Path) -> None:
    p = labeling_project
    with session_scope(p.engine) as s:
        bob = get_or_create_annotator(s, "bob").id or 0
        set_label(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=bob, label="positive")
    at = _labeling_as("alice")
    assert "Record 1 of 6 in this queue" in [c.value for c in at.caption]  # unlabeled by alice
    source = at.sidebar.selectbox(key="labeling.source")
    assert "All unlabeled (no manual label by anyone)" in source.options
    source.set_value("unlabeled_all").run()
    assert not at.exception, at.exception
    assert "Record 1 of 5 in this queue" in [c.value for c in at.caption]
    assert "Terrible service at the Berlin store" in _record_html(at)


def test_labeling_needs_a_name_then_shows_the_first_record(labeling_project: LabelingProject, loupe_home: Path) -> None:
    at = _app("pages/labeling.py")
    assert not at.exception
    assert "Enter your name" in at.info[0].value
    at.sidebar.text_input(key=NAME_INPUT).input("alice").run()
    assert "Record 1 of 6 in this queue" in [c.value for c in at.caption]
    assert "Great phone from Apple" in _record_html(at)
    shortcuts = {b.label: b.proto.shortcut for b in at.button}
    # The keyboard is on the first task: its labels carry their hotkeys, other tasks' buttons none.
    assert (shortcuts["positive"], shortcuts["negative"], shortcuts["neutral"]) == ("1", "2", "3")
    assert shortcuts["price"] == "" and shortcuts["PER"] == ""
    assert (shortcuts["Previous"], shortcuts["Next"], shortcuts["Skip"]) == ("left", "right", "down")


def test_a_click_writes_the_label_at_once_and_moves_on(labeling_project: LabelingProject, loupe_home: Path) -> None:
    p = labeling_project
    at = _labeling_as("alice")
    at.button(key=f"labeling.label.{p.sentiment}.1").click().run()  # "positive"
    assert not at.exception
    rows = _manual(p, p.sentiment)
    assert [r[:3] for r in rows] == [("alice", "positive", p.record_ids[0])]
    assert rows[0][5] is not None  # time spent is stored with the label
    assert "Record 2 of 6 in this queue" in [c.value for c in at.caption]
    # A new session (a refresh) finds the label in the database: record 1 left the unlabeled queue.
    again = _labeling_as("alice")
    assert "Record 1 of 5 in this queue" in [c.value for c in again.caption]
    assert "Terrible service" in _record_html(again)


def test_previous_shows_the_chosen_label_and_relabeling_replaces_it(labeling_project: LabelingProject,
                                                                  loupe_home: Path) -> None:
    p = labeling_project
    at = _labeling_as("alice")
    at.button(key=f"labeling.label.{p.sentiment}.1").click().run()
    at.button(key="labeling.prev").click().run()
    assert at.button(key=f"labeling.label.{p.sentiment}.1").proto.type == "primary"
    at.sidebar.toggle(key="labeling.auto_next").set_value(False).run()
    at.button(key=f"labeling.label.{p.sentiment}.2").click().run()
    assert [r[:2] for r in _manual(p, p.sentiment)] == [("alice", "negative")]
    assert at.button(key=f"labeling.label.{p.sentiment}.2").proto.type == "primary"
    at.button(key=f"labeling.clear.{p.sentiment}").click().run()
    assert _manual(p, p.sentiment) == []


def test_skip_and_next_move_through_the_queue(labeling_project: LabelingProject, loupe_home: Path) -> None:
    at = _labeling_as("alice")
    at.button(key="labeling.skip").click().run()
    assert "Terrible service" in _record_html(at)
    assert "Record 1 of 6 in this queue" in [c.value for c in at.caption]
    at.button(key="labeling.next").click().run()
    assert "Alice said" in _record_html(at)
    for _ in range(4):
        at.button(key="labeling.next").click().run()
    assert "Great phone" in _record_html(at)  # the skipped record comes back last
    at.button(key="labeling.next").click().run()
    assert "Nothing left in this queue" in at.success[0].value


def test_multilabel_toggles_and_spans_with_overlap_refused(labeling_project: LabelingProject,
                                                           loupe_home: Path) -> None:
    p = labeling_project
    at = _labeling_as("bob")
    at.button(key=f"labeling.label.{p.topics}.4").click().run()  # price
    at.button(key=f"labeling.label.{p.topics}.6").click().run()  # quality
    at.button(key=f"labeling.label.{p.topics}.4").click().run()  # price off again
    assert [r[:2] for r in _manual(p, p.topics)] == [("bob", "quality")]
    at.sidebar.selectbox(key="labeling.focus").set_value(p.entities).run()
    assert at.button(key=f"labeling.label.{p.entities}.7").proto.shortcut == "1"  # hotkeys count per task
    tokens = at.pills[0]
    assert tokens.options[:4] == ["Great", "phone", "from", "Apple"]
    tokens.set_value([3]).run()
    at.button(key=f"labeling.label.{p.entities}.8").click().run()  # ORG on "Apple"
    assert [r[:5] for r in _manual(p, p.entities)] == [("bob", "ORG", p.record_ids[0], 3, 4)]
    assert "Apple<span" in _record_html(at)  # highlighted in the label's colour
    at.pills[0].set_value([2, 3]).run()
    at.button(key=f"labeling.label.{p.entities}.9").click().run()  # LOC over "from Apple": refused
    assert "overlaps the 'ORG' span on token 3" in at.error[0].value
    at.button(key=f"labeling.label.{p.entities}.7").click().run()  # no tokens selected
    assert not at.exception
    at.button(key=f"labeling.unspan.{p.entities}.8.3.4").click().run()
    assert _manual(p, p.entities) == []


def test_a_record_opened_from_another_page_is_shown_first(labeling_project: LabelingProject,
                                                          loupe_home: Path) -> None:
    p = labeling_project
    with session_scope(p.engine) as s:
        alice = get_or_create_annotator(s, "alice").id or 0
        set_label(s, task_id=p.sentiment, record_id=p.record_ids[4], annotator_id=alice, label="negative")
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60)
    at.session_state["project"] = "reviews"
    at.run()
    at.session_state[OPEN_RECORD_KEY] = "5"  # what ui.similar.open_in_labeling does before switching pages
    at.switch_page("pages/labeling.py").run()
    assert "Record 5 opens then" in at.info[0].value  # kept until someone can label it
    assert OPEN_RECORD_KEY in at.session_state
    at.sidebar.text_input(key=NAME_INPUT).input("alice").run()
    assert not at.exception, at.exception
    # Record 5 is labeled, so not in alice's queue: it is put in front, with her label shown.
    assert "Bob works for Google" in _record_html(at)
    assert "Record 1 of 6 in this queue" in [c.value for c in at.caption]
    assert at.button(key=f"labeling.label.{p.sentiment}.2").proto.type == "primary"
    assert OPEN_RECORD_KEY not in at.session_state
    assert at.expander[0].label == "Find similar records"  # no embeddings here: the panel says so
    at.button(key="labeling.next").click().run()
    assert "Great phone" in _record_html(at)  # the queue goes on where it was
    at.session_state[OPEN_RECORD_KEY] = "3"  # a record of the queue moves in front of the current one
    at.run()
    assert "Alice said" in _record_html(at)
    assert "Record 2 of 6 in this queue" in [c.value for c in at.caption]
    at.button(key="labeling.next").click().run()
    assert "Great phone" in _record_html(at)
    at.session_state[OPEN_RECORD_KEY] = "99"
    at.run()
    assert "No record with id '99'" in at.error[0].value
    assert "Great phone" in _record_html(at)
    at.run()
    assert not at.error  # a bad key is reported once


def test_find_similar_on_the_labeling_page(embedded_project: EmbeddedProject, loupe_home: Path) -> None:
    at = _app("pages/labeling.py", project="news")
    at.sidebar.text_input(key=NAME_INPUT).input("alice").run()
    assert not at.exception, at.exception
    assert "The striker scored twice" in _record_html(at)
    assert at.expander[0].label == "Find similar records" and not at.dataframe
    at.button(key="labeling.similar.run").click().run()
    assert not at.exception, at.exception
    grid = at.dataframe[0]
    assert [str(i) for i in grid.value["id"]][:2] == ["2", "6"] and len(grid.value) == 5
    # Selecting the near-duplicate opens it here (ui.similar.open_in_labeling), in front of the queue.
    at.session_state[grid.key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    assert "The striker scored two goals" in _record_html(at)
    assert "Record 1 of 16 in this queue" in [c.value for c in at.caption]
    at.button(key="labeling.next").click().run()
    assert "The striker scored twice" in _record_html(at)


def test_record_text_is_escaped(labeling_project: LabelingProject, loupe_home: Path) -> None:
    at = _labeling_as("alice")
    for _ in range(3):
        at.button(key="labeling.next").click().run()
    body = _record_html(at)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body
    assert "<script>" not in body


def test_suggestions_are_shown_and_accepted_with_one_key(labeling_project: LabelingProject, loupe_home: Path) -> None:
    p = labeling_project
    with session_scope(p.engine) as s:
        s.add(LabelAssociation(project_id=p.project_id, record_id=p.record_ids[0], task_id=p.sentiment, label_id=3,
                               source_type="WEAK_SUPERVISION", confidence=0.71))
        s.add(LabelAssociation(project_id=p.project_id, record_id=p.record_ids[0], task_id=p.sentiment, label_id=1,
                               source_type="HEURISTIC", source_name="lf_love", confidence=1.0))
    at = _labeling_as("alice")
    shown = " ".join(c.value for c in at.caption)
    assert "weak supervision: **neutral** · 0.71" in shown and "lf\\_love: **positive** · 1.00" in shown
    accept = at.button(key=f"labeling.accept.{p.sentiment}")
    assert accept.proto.shortcut == "enter"
    accept.click().run()
    assert [r[:2] for r in _manual(p, p.sentiment)] == [("alice", "neutral")]


def test_review_accept_and_reject(labeling_project: LabelingProject, loupe_home: Path) -> None:
    p = labeling_project
    with session_scope(p.engine) as s:
        alice = get_or_create_annotator(s, "alice").id or 0
        set_label(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice, label="positive")
        set_label(s, task_id=p.sentiment, record_id=p.record_ids[1], annotator_id=alice, label="negative")
    at = _app("pages/review.py")
    assert "Enter your name" in at.info[0].value
    at.sidebar.text_input(key=NAME_INPUT).input("rita").run()
    assert not at.exception
    assert at.button(key="review.accepted").proto.shortcut == "a"
    first = "Great phone" in _record_html(at)
    at.button(key="review.accepted").click().run()
    at.button(key="review.rejected").click().run()
    assert "Nothing left to review" in at.success[-1].value
    accepted, rejected = (p.record_ids[0], p.record_ids[1]) if first else (p.record_ids[1], p.record_ids[0])
    with session_scope(p.engine) as s:
        assert get_status(s, record_id=accepted, task_id=p.sentiment) is Status.DONE
        assert get_status(s, record_id=rejected, task_id=p.sentiment) is Status.REWORK
        reviews = s.execute(select(LabelReview.decision, LabelReview.seconds_to_review)).all()
    assert sorted(d for d, _ in reviews) == ["accepted", "rejected"]
    assert all(seconds is not None for _, seconds in reviews)
    assert [r[2] for r in _manual(p, p.sentiment)] == [accepted]
    assert [m.value for m in at.metric] == ["4", "0", "0", "1", "1"]


def test_ground_truth_manager(labeling_project: LabelingProject, loupe_home: Path) -> None:
    p = labeling_project
    with session_scope(p.engine) as s:
        alice = get_or_create_annotator(s, "alice").id or 0
        for rid in p.record_ids:
            set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=alice, label="positive")
    at = _app("pages/review.py")
    at.slider(key="review.fraction").set_value(50).run()
    at.button(key="review.mark_gold").click().run()
    assert "Starred 3 record(s) as gold." in at.success[0].value
    at.checkbox(key="review.confirm_reset").check().run()
    at.button(key="review.reset_gold").click().run()
    assert "Removed the gold star from 3 label(s)." in at.info[0].value


def test_ground_truth_manager_keeps_several_picked_annotators(labeling_project: LabelingProject,
                                                              loupe_home: Path) -> None:
    p = labeling_project
    with session_scope(p.engine) as s:
        alice, bob, carol = (get_or_create_annotator(s, n).id or 0 for n in ("alice", "bob", "carol"))
        for i, rid in enumerate(p.record_ids):
            set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=alice, label="positive")
            set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=bob if i % 2 else carol, label="negative")
    at = _app("pages/review.py")
    at.sidebar.multiselect(key="review.annotators").set_value([bob, carol]).run()
    at.slider(key="review.fraction").set_value(100).run()
    at.button(key="review.mark_gold").click().run()
    assert not at.exception, at.exception
    assert "Starred 6 record(s) as gold." in at.success[0].value
    with session_scope(p.engine) as s:
        starred = s.execute(select(LabelAssociation.annotator_id).where(LabelAssociation.is_gold.is_(True))).all()
    # Alice (everyone's earliest annotator) would win the ties without the filter.
    assert sorted(a for (a,) in starred) == sorted([bob, carol] * 3)


@pytest.mark.parametrize("labeled", [False, True])
def test_agreement_section(labeling_project: LabelingProject, loupe_home: Path, labeled: bool) -> None:
    p = labeling_project
    if labeled:
        with session_scope(p.engine) as s:
            ann, bob = (get_or_create_annotator(s, n).id or 0 for n in ("ann", "bob"))
            for rid, x, y in zip(p.record_ids, "ppnnp", "pnnnp", strict=False):
                names = {"p": "positive", "n": "negative"}
                set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=ann, label=names[x])
                set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=bob, label=names[y])

    def section() -> None:
        from ui.agreement import render_agreement

        render_agreement("reviews")

    at = AppTest.from_function(section, default_timeout=60).run()
    assert not at.exception, at.exception
    if not labeled:
        assert "needs two annotators" in at.info[0].value
        return
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Records with 2+ annotators"] == "5"
    assert metrics["Krippendorff's alpha (nominal)"] not in {"", "—"}
    pairs = at.dataframe[0].value
    assert pairs[["a", "b", "n"]].values.tolist() == [["ann", "bob", 5]]
    assert pairs["percent"].iloc[0] == pytest.approx(80.0)
