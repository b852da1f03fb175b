"""Browser pages: columns per task, orders, paging and counts on the hand-made fixture."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from core.browse import browse_page, column_name, count_filtered, ordered_ids
from core.errors import ValidationError
from core.filters import (
    AttributeFilter,
    AttributeOp,
    ConfidenceFilter,
    Filter,
    LabelMatch,
    ManualLabelFilter,
    Sort,
    SortBy,
)
from core.store import session_scope
from core.store.browse_indexes import ensure_attribute_indexes, has_attribute_index
from core.store.tasks import list_attributes
from tests.fixtures_browse import BrowseFixture, build_browse_fixture
from tests.fixtures_pg import db_engine, db_url, pg_cluster, pg_url  # noqa: F401


@pytest.fixture()
def fx(engine: Engine) -> BrowseFixture:
    return build_browse_fixture(engine)


def keys_in_order(engine: Engine, fx: BrowseFixture, **kw: object) -> list[str]:
    with session_scope(engine) as session:
        ids = ordered_ids(session, project_id=fx.project_id, **kw)  # type: ignore[arg-type]
    by_id = {v: k for k, v in fx.ids.items()}
    return [by_id[i] for i in ids]


def test_page_has_attributes_and_task_columns(engine: Engine, fx: BrowseFixture) -> None:
    with session_scope(engine) as session:
        page = browse_page(session, project_id=fx.project_id, limit=10)
    frame = page.frame
    assert page.total == 6
    assert list(frame["key"]) == ["r1", "r2", "r3", "r4", "r5", "r6"]
    assert page.record_ids == [fx.ids[k] for k in frame["key"]]
    row = frame.set_index("key")
    assert row.loc["r4", "channel"] == "Ads"
    assert row.loc["r4", column_name("spam", "manual")] == "ham"  # gold wins
    assert pd.isna(row.loc["r3", column_name("spam", "manual")])  # annotators disagree
    assert row.loc["r3", column_name("spam", "annotators")] == "alice: spam; bob: ham"
    assert row.loc["r2", column_name("spam", "weak supervision")] == "spam"
    assert row.loc["r2", column_name("spam", "confidence")] == pytest.approx(0.55)
    assert row.loc["r2", column_name("spam", "heuristics")] == "h1: spam, h2: ham"
    assert row.loc["r5", column_name("spam", "status")] == "unlabeled"
    assert row.loc["r1", column_name("spam", "status")] == "labeled"
    assert row.loc["r5", column_name("ner", "manual")] == "PER: Bob"
    assert row.loc["r2", column_name("ner", "weak supervision")] == "ORG: Alice"
    assert row.loc["r5", "comments"] == 2
    assert row.loc["r1", "comments"] == 0


def test_paging_and_filtered_total(engine: Engine, fx: BrowseFixture) -> None:
    flt = Filter((ManualLabelFilter("spam", match=LabelMatch.HAS_ANY),))
    with session_scope(engine) as session:
        first = browse_page(session, project_id=fx.project_id, flt=flt, limit=3, tasks=["spam"])
        second = browse_page(session, project_id=fx.project_id, flt=flt, offset=3, limit=3, tasks=["spam"])
        assert count_filtered(session, project_id=fx.project_id, flt=flt) == 4
    assert list(first.frame["key"]) == ["r1", "r2", "r3"]
    assert list(second.frame["key"]) == ["r4"]
    assert first.total == second.total == 4
    assert not any(c.startswith("ner:") for c in first.frame.columns)


def test_sort_by_confidence_puts_unsupervised_last(engine: Engine, fx: BrowseFixture) -> None:
    up = Sort(SortBy.CONFIDENCE, task="spam")
    down = Sort(SortBy.CONFIDENCE, task="spam", descending=True)
    assert keys_in_order(engine, fx, sort=up) == ["r5", "r2", "r3", "r1", "r4", "r6"]
    assert keys_in_order(engine, fx, sort=down) == ["r4", "r1", "r3", "r2", "r5", "r6"]
    # Pages that straddle the end of the weakly supervised records.
    assert keys_in_order(engine, fx, sort=up, offset=4, limit=2) == ["r4", "r6"]
    assert keys_in_order(engine, fx, sort=up, offset=5, limit=2) == ["r6"]
    assert keys_in_order(engine, fx, sort=up, offset=6, limit=2) == []
    flt = Filter((ConfidenceFilter("spam", maximum=0.8, negate=True),))
    assert keys_in_order(engine, fx, flt=flt, sort=up) == ["r1", "r4", "r6"]
    # Extraction: the weakest span orders.
    assert keys_in_order(engine, fx, sort=Sort(SortBy.CONFIDENCE, task="ner")) == ["r2", "r5", "r1", "r3", "r4", "r6"]


def test_sort_by_attribute_with_and_without_index(engine: Engine, fx: BrowseFixture) -> None:
    by_length = Sort(SortBy.ATTRIBUTE, attribute="length", descending=True)
    expected = ["r3", "r5", "r1", "r4", "r2", "r6"]
    assert keys_in_order(engine, fx, sort=by_length) == expected
    by_score = Sort(SortBy.ATTRIBUTE, attribute="score")
    assert keys_in_order(engine, fx, sort=by_score) == ["r6", "r1", "r2", "r3", "r5", "r4"]  # missing last
    with session_scope(engine) as session:
        attributes = list_attributes(session, fx.project_id)
    assert set(ensure_attribute_indexes(engine, attributes)) == {"channel", "length", "score", "flag"}
    assert has_attribute_index(engine, "length") and not has_attribute_index(engine, "text")
    assert ensure_attribute_indexes(engine, attributes) == []
    assert keys_in_order(engine, fx, sort=by_length) == expected
    flt = Filter((AttributeFilter("channel", AttributeOp.EQUALS, ("ads",)),))
    assert keys_in_order(engine, fx, flt=flt, sort=by_length) == ["r1", "r4", "r2"]


def test_random_order_is_seeded(engine: Engine, fx: BrowseFixture) -> None:
    a = keys_in_order(engine, fx, sort=Sort(SortBy.RANDOM, seed=1))
    assert a == keys_in_order(engine, fx, sort=Sort(SortBy.RANDOM, seed=1))
    assert sorted(a) == ["r1", "r2", "r3", "r4", "r5", "r6"]
    orders = {tuple(keys_in_order(engine, fx, sort=Sort(SortBy.RANDOM, seed=s))) for s in range(6)}
    assert len(orders) > 1


def test_orders_agree_on_postgres(db_engine: Engine) -> None:  # noqa: F811
    fx = build_browse_fixture(db_engine)
    assert keys_in_order(db_engine, fx, sort=Sort(SortBy.CONFIDENCE, task="spam")) == ["r5", "r2", "r3", "r1", "r4",
                                                                                         "r6"]
    with session_scope(db_engine) as session:
        ensure_attribute_indexes(db_engine, list_attributes(session, fx.project_id))
    assert keys_in_order(db_engine, fx, sort=Sort(SortBy.ATTRIBUTE, attribute="score")) == ["r6", "r1", "r2", "r3",
                                                                                            "r5", "r4"]
    assert keys_in_order(db_engine, fx, sort=Sort(SortBy.ATTRIBUTE, attribute="channel")) == ["r1", "r4", "r5", "r3",
                                                                                              "r2", "r6"]
    seeded = keys_in_order(db_engine, fx, sort=Sort(SortBy.RANDOM, seed=3))
    assert sorted(seeded) == ["r1", "r2", "r3", "r4", "r5", "r6"]


def test_bad_pages_and_sorts_are_refused(engine: Engine, fx: BrowseFixture) -> None:
    with session_scope(engine) as session:
        with pytest.raises(ValidationError, match="between 1 and 1000"):
            browse_page(session, project_id=fx.project_id, limit=0)
        with pytest.raises(ValidationError, match="cannot be negative"):
            ordered_ids(session, project_id=fx.project_id, offset=-1)
        with pytest.raises(ValidationError, match=r"Cannot sort by 'nope'.*Attributes: text"):
            ordered_ids(session, project_id=fx.project_id, sort=Sort(SortBy.ATTRIBUTE, attribute="nope"))
        with pytest.raises(ValidationError, match="needs a task"):
            ordered_ids(session, project_id=fx.project_id, sort=Sort(SortBy.CONFIDENCE))


def test_filter_choices_name_what_a_filter_can_use(engine: Engine, fx: BrowseFixture) -> None:
    from core.browse import distinct_values, filter_choices
    from core.slices import save_filter_slice

    with session_scope(engine) as session:
        save_filter_slice(session, project_id=fx.project_id, name="ads", flt=Filter(), kind="static")
        choices = filter_choices(session, project_id=fx.project_id)
        assert choices.attributes == {"text": "TEXT", "channel": "CATEGORY", "length": "INTEGER", "score": "FLOAT",
                                      "flag": "BOOLEAN"}
        spam = choices.task("spam")
        assert spam is not None and (spam.kind, spam.labels) == ("classification", ("spam", "ham"))
        assert [t.name for t in choices.tasks] == ["spam", "ner"]
        assert choices.annotators == ("alice", "bob")
        assert choices.slices == (("ads", "static"),)
        # Most frequent first, then by value; a record without the attribute adds nothing.
        assert distinct_values(session, project_id=fx.project_id, attribute="channel") == ["Ads", "Personal", "Work",
                                                                                          "ads"]
        assert distinct_values(session, project_id=fx.project_id, attribute="channel", limit=1) == ["Ads"]
        with pytest.raises(ValidationError, match="No attribute 'nope'"):
            distinct_values(session, project_id=fx.project_id, attribute="nope")
