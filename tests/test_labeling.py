"""Manual labeling: writes, spans, suggestions, queues, valid manual labels, the CLI, concurrent writers."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.cli import main
from core.errors import ConflictError, NotFoundError, ValidationError
from core.label_queue import QueueOrder, QueueSource, accept_suggestion, build_queue, list_slices, suggestions
from core.labeling import (
    add_span,
    answer_parts,
    clear_answer,
    get_or_create_annotator,
    label,
    remove_span,
    set_label,
    set_labels,
    toggle_label,
)
from core.review import set_gold
from core.store import make_engine, session_scope
from core.store.models import Label, LabelAssociation, Project, SourceType
from core.store.slices import save_slice
from core.valid_labels import resolve_answers, valid_manual_labels
from tests.fixtures_labeling import LabelingProject, labeling_project_db_fixture, labeling_project_fixture  # noqa: F401
from tests.fixtures_pg import db_engine, db_url, pg_cluster, pg_url  # noqa: F401


def _annotator(engine: Engine, name: str) -> int:
    with session_scope(engine) as s:
        return get_or_create_annotator(s, name).id or 0


def _manual_rows(engine: Engine, task_id: int, record_id: int) -> list[tuple[str, str | None, int | None, int | None]]:
    from core.store.models import Annotator

    with session_scope(engine) as s:
        stmt = (
            select(Label.name, Annotator.name, LabelAssociation.token_start, LabelAssociation.token_end)
            .join(Label, Label.id == LabelAssociation.label_id)
            .join(Annotator, Annotator.id == LabelAssociation.annotator_id)
            .where(LabelAssociation.task_id == task_id, LabelAssociation.record_id == record_id,
                   LabelAssociation.source_type == "MANUAL")
            .order_by(Annotator.name, LabelAssociation.token_start, Label.name)
        )
        return [tuple(r) for r in s.execute(stmt).all()]  # type: ignore[misc]


def test_single_label_task_keeps_one_label_per_annotator(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, bob = _annotator(p.engine, "alice"), _annotator(p.engine, "bob")
    rec = p.record_ids[0]
    with session_scope(p.engine) as s:
        set_label(s, task_id=p.sentiment, record_id=rec, annotator_id=alice, label="positive", seconds_spent=3.5)
        set_label(s, task_id=p.sentiment, record_id=rec, annotator_id=alice, label="negative", seconds_spent=1.0)
        set_label(s, task_id=p.sentiment, record_id=rec, annotator_id=bob, label="neutral")
    assert _manual_rows(p.engine, p.sentiment, rec) == [("negative", "alice", None, None),
                                                        ("neutral", "bob", None, None)]
    with session_scope(p.engine) as s:
        seconds = s.execute(select(LabelAssociation.seconds_spent).where(
            LabelAssociation.annotator_id == alice, LabelAssociation.task_id == p.sentiment)).scalar_one()
        revision = s.get(Project, p.project_id).revision  # type: ignore[union-attr]
    assert seconds == 1.0
    assert revision >= 3  # every write bumps the revision the pages cache on


def test_same_label_again_is_a_no_op(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice = _annotator(p.engine, "alice")
    with session_scope(p.engine) as s:
        first = set_label(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice, label="positive")
        again = set_label(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice, label="positive")
    assert first.changed and not again.changed


def test_unknown_label_and_wrong_kind_are_refused(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice = _annotator(p.engine, "alice")
    with session_scope(p.engine) as s, pytest.raises(NotFoundError, match="Labels: 'positive', 'negative'"):
        set_label(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice, label="great")
    with session_scope(p.engine) as s, pytest.raises(ValidationError, match="multilabel task"):
        set_label(s, task_id=p.topics, record_id=p.record_ids[0], annotator_id=alice, label="price")
    with session_scope(p.engine) as s, pytest.raises(ValidationError, match="one label per record"):
        set_labels(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice,
                   labels=["positive", "negative"])


def test_multilabel_toggles(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice = _annotator(p.engine, "alice")
    rec = p.record_ids[1]
    with session_scope(p.engine) as s:
        toggle_label(s, task_id=p.topics, record_id=rec, annotator_id=alice, label="price")
        toggle_label(s, task_id=p.topics, record_id=rec, annotator_id=alice, label="service")
        result = toggle_label(s, task_id=p.topics, record_id=rec, annotator_id=alice, label="price")
    assert result.labels == ("service",)
    assert [r[0] for r in _manual_rows(p.engine, p.topics, rec)] == ["service"]


def test_spans_merge_refuse_overlap_and_remove(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice = _annotator(p.engine, "alice")
    rec = p.record_ids[4]  # "Bob works for Google in Paris"
    ids = {"task_id": p.entities, "record_id": rec, "annotator_id": alice}
    with session_scope(p.engine) as s:
        add_span(s, **ids, label="PER", token_start=0, token_end=1)
        add_span(s, **ids, label="ORG", token_start=3, token_end=4)
        add_span(s, **ids, label="LOC", token_start=5, token_end=6)
    with session_scope(p.engine) as s, pytest.raises(ConflictError, match="overlaps the 'ORG' span on token 3"):
        add_span(s, **ids, label="LOC", token_start=3, token_end=5)
    with session_scope(p.engine) as s:
        # The same label over adjacent-overlapping tokens merges into one span.
        add_span(s, **ids, label="LOC", token_start=4, token_end=6)
        remove_span(s, **ids, label="PER", token_start=0, token_end=1)
    assert _manual_rows(p.engine, p.entities, rec) == [("ORG", "alice", 3, 4), ("LOC", "alice", 4, 6)]
    with session_scope(p.engine) as s:
        chars = s.execute(select(LabelAssociation.char_start, LabelAssociation.char_end).where(
            LabelAssociation.task_id == p.entities, LabelAssociation.token_start == 3)).one()
    assert "Bob works for Google in Paris"[chars[0]:chars[1]] == "Google"
    with session_scope(p.engine) as s, pytest.raises(ValidationError, match="token count"):
        add_span(s, **ids, label="PER", token_start=5, token_end=9)


def _lookup_terms(engine: Engine, project_id: int) -> dict[str, list[str]]:
    from core.lookup import lookup_terms_for_code

    with session_scope(engine) as s:
        return lookup_terms_for_code(s, project_id=project_id)


def test_manual_spans_feed_the_lookup_list_named_after_the_label(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, bob = _annotator(p.engine, "alice"), _annotator(p.engine, "bob")
    rec = p.record_ids[4]  # "Bob works for Google in Paris"
    with session_scope(p.engine) as s:
        add_span(s, task_id=p.entities, record_id=rec, annotator_id=alice, label="ORG", token_start=3, token_end=4)
        # The same span again, by the same annotator (no change) and by another one: still one term.
        add_span(s, task_id=p.entities, record_id=rec, annotator_id=alice, label="ORG", token_start=3, token_end=4)
        add_span(s, task_id=p.entities, record_id=rec, annotator_id=bob, label="ORG", token_start=3, token_end=4)
    assert _lookup_terms(p.engine, p.project_id) == {"ORG": ["Google"]}
    # A refused span writes nothing, its term included: the list is fed in the label's transaction.
    with session_scope(p.engine) as s, pytest.raises(ConflictError):
        add_span(s, task_id=p.entities, record_id=rec, annotator_id=alice, label="LOC", token_start=3, token_end=6)
    assert _lookup_terms(p.engine, p.project_id) == {"ORG": ["Google"]}
    # The one-call API and accepting a suggested span store manual spans too.
    label(p.engine, project="reviews", task="entities", record="5", labels=["LOC"], annotator="carol", span=(5, 6))
    _machine_label(p.engine, p, task_id=p.entities, record_id=p.record_ids[0], label_name="ORG",
                   source=SourceType.WEAK_SUPERVISION, confidence=0.9, span=(3, 4))
    with session_scope(p.engine) as s:
        accept_suggestion(s, task_id=p.entities, record_id=p.record_ids[0], annotator_id=bob)
    assert _lookup_terms(p.engine, p.project_id) == {"LOC": ["Paris"], "ORG": ["Apple", "Google"]}


def test_clearing_the_last_label_makes_the_record_unlabeled_again(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice = _annotator(p.engine, "alice")
    with session_scope(p.engine) as s:
        set_label(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice, label="positive")
        result = clear_answer(s, task_id=p.sentiment, record_id=p.record_ids[0], annotator_id=alice)
    assert result.status.value == "unlabeled"
    assert _manual_rows(p.engine, p.sentiment, p.record_ids[0]) == []


def _machine_label(engine: Engine, p: LabelingProject, *, task_id: int, record_id: int, label_name: str,
                   source: SourceType, confidence: float, name: str | None = None,
                   span: tuple[int, int] | None = None) -> None:
    with session_scope(engine) as s:
        label_id = s.execute(select(Label.id).where(Label.task_id == task_id, Label.name == label_name)).scalar_one()
        s.add(LabelAssociation(project_id=p.project_id, record_id=record_id, task_id=task_id, label_id=label_id,
                               source_type=source.value, source_name=name, confidence=confidence,
                               token_start=span[0] if span else None, token_end=span[1] if span else None))


def test_suggestions_and_accepting_them(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice = _annotator(p.engine, "alice")
    rec = p.record_ids[0]
    _machine_label(p.engine, p, task_id=p.sentiment, record_id=rec, label_name="positive",
                   source=SourceType.HEURISTIC, confidence=1.0, name="lf_love")
    _machine_label(p.engine, p, task_id=p.sentiment, record_id=rec, label_name="negative",
                   source=SourceType.WEAK_SUPERVISION, confidence=0.62)
    with session_scope(p.engine) as s:
        items = suggestions(s, task_id=p.sentiment, record_id=rec)
        result = accept_suggestion(s, task_id=p.sentiment, record_id=rec, annotator_id=alice, seconds_spent=0.4)
    assert [(i.source, i.name, i.label, i.confidence) for i in items] == [
        ("WEAK_SUPERVISION", "weak supervision", "negative", 0.62), ("HEURISTIC", "lf_love", "positive", 1.0)]
    assert result.labels == ("negative",)  # weak supervision wins over a single heuristic
    with session_scope(p.engine) as s, pytest.raises(NotFoundError, match="nothing to accept"):
        accept_suggestion(s, task_id=p.sentiment, record_id=p.record_ids[1], annotator_id=alice)


def test_accepting_extraction_suggestion_drops_overlapping_lighter_span(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice = _annotator(p.engine, "alice")
    rec = p.record_ids[4]
    for label_name, span, conf in [("ORG", (3, 4), 0.9), ("LOC", (3, 6), 0.5), ("LOC", (5, 6), 0.8)]:
        _machine_label(p.engine, p, task_id=p.entities, record_id=rec, label_name=label_name,
                       source=SourceType.WEAK_SUPERVISION, confidence=conf, span=span)
    with session_scope(p.engine) as s:
        accept_suggestion(s, task_id=p.entities, record_id=rec, annotator_id=alice)
    assert _manual_rows(p.engine, p.entities, rec) == [("ORG", "alice", 3, 4), ("LOC", "alice", 5, 6)]


def test_queues_sources_and_orders(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, bob = _annotator(p.engine, "alice"), _annotator(p.engine, "bob")
    ids = p.record_ids
    with session_scope(p.engine) as s:
        set_label(s, task_id=p.sentiment, record_id=ids[1], annotator_id=alice, label="negative")
        set_label(s, task_id=p.sentiment, record_id=ids[2], annotator_id=bob, label="neutral")
    for rid, conf in [(ids[0], 0.95), (ids[3], 0.55), (ids[4], 0.7)]:
        _machine_label(p.engine, p, task_id=p.sentiment, record_id=rid, label_name="positive",
                       source=SourceType.WEAK_SUPERVISION, confidence=conf)
    with session_scope(p.engine) as s:
        assert build_queue(s, task_id=p.sentiment, annotator_id=alice) == [ids[0], ids[2], ids[3], ids[4], ids[5]]
        assert build_queue(s, task_id=p.sentiment, annotator_id=None) == [ids[0], ids[3], ids[4], ids[5]]
        # All unlabeled: records nobody labeled by hand, whoever asks.
        for who in (alice, bob, None):
            assert build_queue(s, task_id=p.sentiment, annotator_id=who, source=QueueSource.UNLABELED_ALL) == [
                ids[0], ids[3], ids[4], ids[5]]
        shuffled = build_queue(s, task_id=p.sentiment, annotator_id=alice, order=QueueOrder.RANDOM, seed=7)
        assert shuffled == build_queue(s, task_id=p.sentiment, annotator_id=alice, order="random", seed=7)
        assert sorted(shuffled) == [ids[0], ids[2], ids[3], ids[4], ids[5]]
        least = build_queue(s, task_id=p.sentiment, annotator_id=alice, order=QueueOrder.LEAST_CONFIDENT)
        # No weak-supervision label counts as confidence 0: most uncertain first.
        assert least == [ids[2], ids[5], ids[3], ids[4], ids[0]]
        uncertain = build_queue(s, task_id=p.sentiment, annotator_id=alice, source=QueueSource.UNCERTAIN,
                                max_confidence=0.8, order=QueueOrder.LEAST_CONFIDENT)
        assert uncertain == [ids[2], ids[5], ids[3], ids[4]]
        with pytest.raises(ValidationError, match="needs a slice"):
            build_queue(s, task_id=p.sentiment, annotator_id=alice, source=QueueSource.SLICE)
        outliers = save_slice(s, project_id=p.project_id, name="odd ones", kind="outlier",
                              record_ids=[ids[5], ids[1], ids[0]], scores=[0.9, 0.8, 0.1])
        assert list_slices(s, project_id=p.project_id) == [(outliers.id, "odd ones")]
        # The slice's own order (most unusual first); alice labeled ids[1] already.
        assert build_queue(s, task_id=p.sentiment, annotator_id=alice, source="slice",
                           slice_id=outliers.id) == [ids[5], ids[0]]
        assert build_queue(s, task_id=p.sentiment, annotator_id=alice, source="slice", slice_id=outliers.id,
                           only_unlabeled=False) == [ids[5], ids[1], ids[0]]


# --- valid manual label (REFERENCE.md) ---------------------------------------------------------------------------


def test_resolve_answers_rules() -> None:
    assert resolve_answers({}, None) is None
    assert resolve_answers({"alice": "spam"}, None) == "spam"  # the only annotator
    assert resolve_answers({"alice": "spam"}, "ham") == "spam"  # one annotator: their label, gold or not
    assert resolve_answers({"alice": "spam", "bob": "ham"}, "ham") == "ham"  # several: the gold label
    assert resolve_answers({"alice": "spam", "bob": "spam"}, None) == "spam"  # no gold: all agree
    assert resolve_answers({"alice": "spam", "bob": "ham"}, None) is None  # no gold, disagreement: none


def test_valid_manual_labels_from_the_store(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, bob = _annotator(p.engine, "alice"), _annotator(p.engine, "bob")
    r = p.record_ids
    with session_scope(p.engine) as s:
        set_label(s, task_id=p.sentiment, record_id=r[0], annotator_id=alice, label="positive")  # only one
        for who in (alice, bob):  # agree
            set_label(s, task_id=p.sentiment, record_id=r[1], annotator_id=who, label="negative")
        set_label(s, task_id=p.sentiment, record_id=r[2], annotator_id=alice, label="positive")  # disagree
        set_label(s, task_id=p.sentiment, record_id=r[2], annotator_id=bob, label="neutral")
        set_label(s, task_id=p.sentiment, record_id=r[3], annotator_id=alice, label="positive")  # disagree + gold
        set_label(s, task_id=p.sentiment, record_id=r[3], annotator_id=bob, label="negative")
        set_gold(s, task_id=p.sentiment, record_id=r[3], annotator_id=bob)
        for who, labels in ((alice, ["price", "service"]), (bob, ["service", "price"])):
            set_labels(s, task_id=p.topics, record_id=r[0], annotator_id=who, labels=labels)
        set_labels(s, task_id=p.topics, record_id=r[1], annotator_id=alice, labels=["price"])
        set_labels(s, task_id=p.topics, record_id=r[1], annotator_id=bob, labels=["price", "quality"])
        for who in (alice, bob):
            add_span(s, task_id=p.entities, record_id=r[4], annotator_id=who, label="ORG", token_start=3,
                     token_end=4)
        add_span(s, task_id=p.entities, record_id=r[4], annotator_id=bob, label="LOC", token_start=5, token_end=6)
        sentiment = valid_manual_labels(s, task_id=p.sentiment)
        topics = valid_manual_labels(s, task_id=p.topics)
        entities = valid_manual_labels(s, task_id=p.entities)
    assert sentiment == {r[0]: "positive", r[1]: "negative", r[3]: "negative"}
    assert topics == {r[0]: frozenset({"price", "service"})}  # sets compared as wholes
    assert entities == {}  # alice's spans and bob's differ


def test_gold_star_follows_the_annotator_when_they_relabel(labeling_project: LabelingProject) -> None:
    p = labeling_project
    alice, bob = _annotator(p.engine, "alice"), _annotator(p.engine, "bob")
    rec = p.record_ids[0]
    with session_scope(p.engine) as s:
        set_labels(s, task_id=p.topics, record_id=rec, annotator_id=alice, labels=["price"])
        set_labels(s, task_id=p.topics, record_id=rec, annotator_id=bob, labels=["quality"])
        set_gold(s, task_id=p.topics, record_id=rec, annotator_id=alice)
        toggle_label(s, task_id=p.topics, record_id=rec, annotator_id=alice, label="service")
        assert valid_manual_labels(s, task_id=p.topics) == {rec: frozenset({"price", "service"})}


# --- the one-call API and the CLI ----------------------------------------------------------------------------------


def test_label_by_names_and_cli(labeling_project: LabelingProject, capsys: pytest.CaptureFixture[str]) -> None:
    p = labeling_project
    result = label(p.engine, project="reviews", task="sentiment", record="3", labels=["neutral"], annotator="carol")
    assert result.labels == ("neutral",)
    assert main(["label", "--project", "reviews", "--task", "sentiment", "--record", "3", "--label", "positive",
                 "--annotator", "dave"]) == 0
    assert "Labeled record '3'" in capsys.readouterr().out
    assert main(["label", "--project", "reviews", "--task", "topics", "--record", "1", "--label", "price",
                 "--label", "quality", "--annotator", "dave"]) == 0
    assert main(["label", "--project", "reviews", "--task", "entities", "--record", "5", "--label", "ORG",
                 "--span", "3:4", "--annotator", "dave"]) == 0
    capsys.readouterr()
    assert main(["label", "--project", "reviews", "--task", "sentiment", "--record", "99", "--label", "positive",
                 "--annotator", "dave"]) == 1
    assert "error: No record with id '99'" in capsys.readouterr().err
    assert main(["label", "--project", "reviews", "--task", "entities", "--record", "5", "--label", "ORG",
                 "--annotator", "dave"]) == 1
    assert "--span START:END" in capsys.readouterr().err
    assert _manual_rows(p.engine, p.sentiment, p.record_ids[2]) == [("neutral", "carol", None, None),
                                                                    ("positive", "dave", None, None)]
    assert [r[0] for r in _manual_rows(p.engine, p.topics, p.record_ids[0])] == ["price", "quality"]
    assert _manual_rows(p.engine, p.entities, p.record_ids[4]) == [("ORG", "dave", 3, 4)]


def test_cli_uses_loupe_annotator_by_default(labeling_project: LabelingProject, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOUPE_ANNOTATOR", "erin")
    assert main(["label", "--project", "reviews", "--task", "sentiment", "--record", "2", "--label", "negative"]) == 0
    assert _manual_rows(labeling_project.engine, labeling_project.sentiment, labeling_project.record_ids[1]) == [
        ("negative", "erin", None, None)]
    assert main(["agreement", "--project", "reviews", "--task", "sentiment", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(out) == {"pairs": [], "krippendorff_alpha": None}


# --- concurrency ----------------------------------------------------------------------------------------------------


def _fresh_engine(engine: Engine) -> Engine:
    # make_engine caches per URL; a second, independent engine (own pool) stands for a second app process.
    return make_engine.__wrapped__(engine.url.render_as_string(hide_password=False))  # type: ignore[attr-defined]


def _hammer(engines: list[Engine], jobs: list[tuple[str, list[str]]], p: LabelingProject, rec_key: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def work(engine: Engine, annotator: str, labels: list[str]) -> None:
        try:
            barrier.wait()
            for name in labels:
                label(engine, project="reviews", task="sentiment", record=rec_key, labels=[name], annotator=annotator)
        except BaseException as e:  # collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(engines[i % len(engines)], who, labels))
               for i, (who, labels) in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_two_annotators_writing_the_same_record_at_once_both_keep_their_labels(
    labeling_project_db: LabelingProject,
) -> None:
    p = labeling_project_db
    engines = [p.engine, _fresh_engine(p.engine)]
    _hammer(engines, [("alice", ["positive", "negative"] * 10), ("bob", ["neutral", "positive"] * 10)], p, "4")
    assert _manual_rows(p.engine, p.sentiment, p.record_ids[3]) == [("negative", "alice", None, None),
                                                                    ("positive", "bob", None, None)]


def test_one_annotator_in_two_tabs_still_has_one_label(labeling_project_db: LabelingProject) -> None:
    p = labeling_project_db
    engines = [p.engine, _fresh_engine(p.engine)]
    _hammer(engines, [("alice", ["positive", "negative"] * 10), ("alice", ["neutral", "positive"] * 10)], p, "4")
    with session_scope(p.engine) as s:
        count = s.execute(select(func.count()).select_from(LabelAssociation).where(
            LabelAssociation.task_id == p.sentiment, LabelAssociation.record_id == p.record_ids[3])).scalar_one()
        alice = get_or_create_annotator(s, "alice").id or 0
        parts = answer_parts(s, task_id=p.sentiment, record_id=p.record_ids[3], annotator_id=alice)
    assert count == 1
    assert len(parts) == 1
