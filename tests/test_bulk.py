"""Bulk actions: what they write, that each is one transaction, and that they refuse stale confirmations."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from core import bulk
from core.bulk import accept_weak_supervision, add_to_slice, assign_label, mark_gold
from core.errors import ConflictError, ValidationError
from core.filters import AttributeFilter, AttributeOp, Filter, LabelMatch, ManualLabelFilter
from core.slices import save_filter_slice, slice_record_ids
from core.store import session_scope
from core.store.models import Annotator, LabelAssociation, Project, Record, SourceType
from core.store.projects import get_project_by_id
from core.store.workflow import ManualAnswer, RecordStatus, StatusChange
from core.valid_labels import valid_manual_labels
from tests.fixtures_browse import BrowseFixture, build_browse_fixture
from tests.fixtures_pg import db_engine, db_url, dump, pg_cluster, pg_url  # noqa: F401

UNLABELED = Filter((ManualLabelFilter("spam", match=LabelMatch.HAS_NONE),))
ADS = Filter((AttributeFilter("channel", AttributeOp.EQUALS, ("ads",)),))


def valid(engine: Engine, fx: BrowseFixture, task: str = "spam") -> dict[str, object]:
    with session_scope(engine) as session:
        labels = valid_manual_labels(session, task_id=fx.tasks[task])
    by_id = {v: k for k, v in fx.ids.items()}
    return {by_id[r]: v for r, v in labels.items()}


def answers(engine: Engine, fx: BrowseFixture, who: str, task: str = "spam") -> dict[str, list[tuple]]:
    with session_scope(engine) as session:
        aid = session.execute(select(Annotator.id).where(Annotator.name == who)).scalar_one()
        rows = session.execute(
            select(LabelAssociation.record_id, LabelAssociation.label_id, LabelAssociation.token_start,
                   LabelAssociation.token_end, LabelAssociation.is_gold)
            .where(LabelAssociation.annotator_id == aid, LabelAssociation.task_id == fx.tasks[task],
                   LabelAssociation.source_type == SourceType.MANUAL.value)
        ).all()
    names = {v: k[1] for k, v in fx.labels.items()}
    by_id = {v: k for k, v in fx.ids.items()}
    out: dict[str, list[tuple]] = {}
    for rid, lid, ts, te, gold in rows:
        out.setdefault(by_id[rid], []).append((names[lid], ts, te, bool(gold)))
    return {k: sorted(v) for k, v in out.items()}


def test_assign_label_to_unlabeled_records(db_engine: Engine) -> None:  # noqa: F811
    fx = build_browse_fixture(db_engine)
    with session_scope(db_engine) as session:
        result = assign_label(session, project_id=fx.project_id, task="spam", label="spam", annotator="carol",
                              flt=UNLABELED, expected_count=2)
    assert (result.matched, result.changed) == (2, 2)
    assert answers(db_engine, fx, "carol") == {"r5": [("spam", None, None, False)], "r6": [("spam", None, None, False)]}
    assert valid(db_engine, fx) == {"r1": "spam", "r2": "ham", "r4": "ham", "r5": "spam", "r6": "spam"}
    with session_scope(db_engine) as session:
        versions = session.execute(select(ManualAnswer.version)).scalars().all()
        assert sorted(versions) == [1, 1]
        again = assign_label(session, project_id=fx.project_id, task="spam", label="spam", annotator="carol",
                             flt=UNLABELED)
        assert (again.matched, again.changed) == (0, 0)
        assert get_project_by_id(session, fx.project_id).revision >= 2


def test_assign_label_replaces_only_the_annotators_own_label_and_keeps_gold(db_engine: Engine) -> None:  # noqa: F811
    fx = build_browse_fixture(db_engine)
    with session_scope(db_engine) as session:
        result = assign_label(session, project_id=fx.project_id, task="spam", label="spam", annotator="alice",
                              flt=ADS)
    # r1 and r4 already said spam: only r2 changes, from ham to spam; bob's labels stay.
    assert (result.matched, result.changed) == (3, 1)
    assert answers(db_engine, fx, "alice")["r2"] == [("spam", None, None, False)]
    assert answers(db_engine, fx, "bob")["r2"] == [("ham", None, None, False)]
    with session_scope(db_engine) as session:
        assign_label(session, project_id=fx.project_id, task="spam", label="spam", annotator="bob", flt=ADS)
    assert answers(db_engine, fx, "bob")["r4"] == [("spam", None, None, True)]  # the star moved with the answer
    assert valid(db_engine, fx)["r4"] == "spam"


def test_assign_label_moves_stored_status_to_labeled_with_history(engine: Engine) -> None:
    fx = build_browse_fixture(engine)
    with session_scope(engine) as session:
        session.add(RecordStatus(project_id=fx.project_id, record_id=fx.ids["r6"], task_id=fx.tasks["spam"],
                                 status="rework"))
    with session_scope(engine) as session:
        assign_label(session, project_id=fx.project_id, task="spam", label="ham", annotator="carol", flt=UNLABELED)
        status = session.execute(select(RecordStatus.status).where(RecordStatus.record_id == fx.ids["r6"])).scalar()
        moves = session.execute(select(StatusChange.record_id, StatusChange.from_status, StatusChange.to_status)).all()
    assert status == "labeled"
    assert moves == [(fx.ids["r6"], "rework", "labeled")]


def test_bulk_label_is_one_transaction(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    fx = build_browse_fixture(engine)
    before = dump(engine)

    def fail(*_args: object, **_kw: object) -> None:
        raise RuntimeError("disk full")

    # Fail after the labels were inserted and the old ones deleted: nothing of it may remain.
    monkeypatch.setattr(bulk, "_move_to_labeled", fail)
    with pytest.raises(RuntimeError, match="disk full"), session_scope(engine) as session:
        assign_label(session, project_id=fx.project_id, task="spam", label="spam", annotator="alice", flt=None)
    after = dump(engine)
    after.pop("annotator")  # the annotator row of a new name is the only thing that may differ
    before.pop("annotator")
    assert after == before


def test_bulk_label_runs_the_same_statements_for_any_number_of_records(engine: Engine) -> None:
    fx = build_browse_fixture(engine)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements.append(sql)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with session_scope(engine) as session:
            assign_label(session, project_id=fx.project_id, task="spam", label="ham", annotator="dora", flt=None)
        few = len(statements)
        with session_scope(engine) as session:
            session.add_all(Record(project_id=fx.project_id, running_id=100 + i, key=f"x{i}", data={"text": "t"})
                            for i in range(50))
        statements.clear()
        with session_scope(engine) as session:
            result = assign_label(session, project_id=fx.project_id, task="spam", label="spam", annotator="dora",
                                  flt=None)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert result.changed == 56
    assert len(statements) == few


def test_stale_confirmation_is_refused(engine: Engine) -> None:
    fx = build_browse_fixture(engine)
    before = valid(engine, fx)
    with pytest.raises(ConflictError, match=r"now matches 2 record.*not the 3 you confirmed"), \
            session_scope(engine) as session:
        assign_label(session, project_id=fx.project_id, task="spam", label="spam", annotator="alice",
                     flt=UNLABELED, expected_count=3)
    assert valid(engine, fx) == before


def test_extraction_cannot_take_one_label_in_bulk(engine: Engine) -> None:
    fx = build_browse_fixture(engine)
    with pytest.raises(ValidationError, match=r"labels spans.*Accept the weak-supervision spans"), \
            session_scope(engine) as session:
        assign_label(session, project_id=fx.project_id, task="ner", label="PER", annotator="alice", flt=None)


def test_accept_weak_supervision(db_engine: Engine) -> None:  # noqa: F811
    fx = build_browse_fixture(db_engine)
    with session_scope(db_engine) as session:
        result = accept_weak_supervision(session, project_id=fx.project_id, task="spam", annotator="carol", flt=None)
        assert (result.matched, result.changed, result.skipped) == (6, 5, 1)
        again = accept_weak_supervision(session, project_id=fx.project_id, task="spam", annotator="carol", flt=None)
        assert again.changed == 0
    assert answers(db_engine, fx, "carol") == {
        "r1": [("spam", None, None, False)], "r2": [("spam", None, None, False)], "r3": [("ham", None, None, False)],
        "r4": [("spam", None, None, False)], "r5": [("ham", None, None, False)],
    }
    # Extraction: alice's r5 span equals weak supervision's; her r2 span is replaced by weak supervision's.
    with session_scope(db_engine) as session:
        spans = accept_weak_supervision(session, project_id=fx.project_id, task="ner", annotator="alice", flt=None)
        assert spans.changed == 1
        chars = session.execute(select(LabelAssociation.char_start, LabelAssociation.char_end).where(
            LabelAssociation.record_id == fx.ids["r2"], LabelAssociation.task_id == fx.tasks["ner"],
            LabelAssociation.source_type == "MANUAL")).all()
    assert answers(db_engine, fx, "alice", "ner") == {"r2": [("ORG", 1, 2, False)], "r5": [("PER", 2, 3, False)]}
    assert chars == [(6, 11)]


def test_mark_gold(db_engine: Engine) -> None:  # noqa: F811
    fx = build_browse_fixture(db_engine)
    with session_scope(db_engine) as session:
        agreed = mark_gold(session, project_id=fx.project_id, task="spam", flt=None)
    # r1 (one annotator) and r2 (both said ham) are starred; r3 and r4 disagree.
    assert (agreed.changed, agreed.skipped) == (2, 2)
    assert "annotators disagree" in agreed.summary()
    assert answers(db_engine, fx, "alice")["r1"] == [("spam", None, None, True)]
    assert answers(db_engine, fx, "bob")["r4"] == [("ham", None, None, True)]  # untouched
    with session_scope(db_engine) as session:
        chosen = mark_gold(session, project_id=fx.project_id, task="spam", flt=ADS, annotator="alice")
    assert chosen.changed == 3  # r1, r2, r4 of the Ads channel
    assert answers(db_engine, fx, "bob")["r4"] == [("ham", None, None, False)]
    assert answers(db_engine, fx, "alice")["r4"] == [("spam", None, None, True)]
    assert valid(db_engine, fx)["r4"] == "spam"


def test_add_to_slice(engine: Engine) -> None:
    fx = build_browse_fixture(engine)
    with session_scope(engine) as session:
        first = add_to_slice(session, project_id=fx.project_id, flt=UNLABELED, slice_name="review")
        second = add_to_slice(session, project_id=fx.project_id, flt=ADS, slice_name="review")
        ids = slice_record_ids(session, project_id=fx.project_id, name="review")
        save_filter_slice(session, project_id=fx.project_id, name="live", flt=ADS, kind="dynamic")
        with pytest.raises(ValidationError, match=r"'live' is dynamic.*static slice"):
            add_to_slice(session, project_id=fx.project_id, flt=ADS, slice_name="live")
        assert session.get(Project, fx.project_id) is not None
    assert (first.changed, second.changed) == (2, 3)
    assert fx.keys(ids) == {"r5", "r6", "r1", "r2", "r4"}
    assert ids == [fx.ids[k] for k in ("r5", "r6", "r1", "r2", "r4")]
