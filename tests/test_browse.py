"""Browser pages: columns per task, orders, paging and counts on the hand-made fixture."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import event
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
from core.store.browse_indexes import ensure_attribute_indexes, ensure_sort_index, has_attribute_index
from core.store.models import Attribute, Project, Record
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
    assert not has_attribute_index(engine, "length")
    assert keys_in_order(engine, fx, sort=by_length) == expected
    # The first sort by an attribute made its index; others are made when they are sorted on.
    assert has_attribute_index(engine, "length") and not has_attribute_index(engine, "score")
    by_score = Sort(SortBy.ATTRIBUTE, attribute="score")
    assert keys_in_order(engine, fx, sort=by_score) == ["r6", "r1", "r2", "r3", "r5", "r4"]  # missing last
    with session_scope(engine) as session:
        attributes = list_attributes(session, fx.project_id)
    assert set(ensure_attribute_indexes(engine, attributes)) == {"channel", "flag"}
    assert has_attribute_index(engine, "score") and not has_attribute_index(engine, "text")
    assert ensure_attribute_indexes(engine, attributes) == []
    assert keys_in_order(engine, fx, sort=by_length) == expected
    flt = Filter((AttributeFilter("channel", AttributeOp.EQUALS, ("ads",)),))
    assert keys_in_order(engine, fx, flt=flt, sort=by_length) == ["r1", "r4", "r2"]
    # Long free text gets no index: it sorts the filtered set instead.
    assert keys_in_order(engine, fx, sort=Sort(SortBy.ATTRIBUTE, attribute="text")) == ["r6", "r4", "r1", "r2",
                                                                                         "r5", "r3"]
    assert not has_attribute_index(engine, "text")


def test_first_attribute_sort_creates_its_index_once(db_engine: Engine) -> None:  # noqa: F811
    fx = build_browse_fixture(db_engine)
    assert not has_attribute_index(db_engine, "channel")
    with session_scope(db_engine) as session:
        page = browse_page(session, project_id=fx.project_id, sort=Sort(SortBy.ATTRIBUTE, attribute="channel"))
    assert has_attribute_index(db_engine, "channel")
    assert list(page.frame["key"]) == ["r1", "r4", "r5", "r3", "r2", "r6"]
    with session_scope(db_engine) as session:
        attribute = next(a for a in list_attributes(session, fx.project_id) if a.name == "channel")
    # Idempotent and cheap once it exists: no DDL runs.
    statements: list[str] = []

    def record(conn: object, cursor: object, sql: str, *args: object) -> None:
        statements.append(sql)

    event.listen(db_engine, "before_cursor_execute", record)
    try:
        assert ensure_sort_index(db_engine, attribute)
        assert statements and len(statements) <= 1
        assert keys_in_order(db_engine, fx, sort=Sort(SortBy.ATTRIBUTE, attribute="channel", descending=True)) == [
            "r2", "r3", "r5", "r4", "r1", "r6"]
    finally:
        event.remove(db_engine, "before_cursor_execute", record)
    assert not [s for s in statements if "CREATE INDEX" in s.upper()]


def is_rotation(a: list[str], b: list[str]) -> bool:
    return len(a) == len(b) and any(a[k:] + a[:k] == b for k in range(len(a)))


def test_random_order_is_seeded(engine: Engine, fx: BrowseFixture) -> None:
    a = keys_in_order(engine, fx, sort=Sort(SortBy.RANDOM, seed=1))
    assert a == keys_in_order(engine, fx, sort=Sort(SortBy.RANDOM, seed=1))
    assert sorted(a) == ["r1", "r2", "r3", "r4", "r5", "r6"]
    orders = [keys_in_order(engine, fx, sort=Sort(SortBy.RANDOM, seed=s)) for s in range(10)]
    # Not one shuffle read from different starting points: most seeds' orders are no rotation of seed 0's.
    assert sum(not is_rotation(orders[0], o) for o in orders[1:]) >= 5


def build_records(engine: Engine, n: int) -> tuple[int, dict[int, int]]:
    """A project of ``n`` records with an integer attribute ``i`` (0..n-1); returns its id and id -> i."""
    with session_scope(engine) as session:
        project = Project(name="many")
        session.add(project)
        session.flush()
        pid = project.id or 0
        session.add(Attribute(project_id=pid, name="i", data_type="INTEGER", position=0))
        records = [Record(project_id=pid, running_id=i + 1, key=str(i), data={"i": i}) for i in range(n)]
        session.add_all(records)
        session.flush()
        return pid, {r.id or 0: i for i, r in enumerate(records)}


def test_seeds_give_different_permutations_not_rotations(engine: Engine) -> None:
    pid, _ = build_records(engine, 300)
    orders = {}
    with session_scope(engine) as session:
        for seed in (1, 2, 3, 1234):
            orders[seed] = ordered_ids(session, project_id=pid, sort=Sort(SortBy.RANDOM, seed=seed), limit=None)
            page = ordered_ids(session, project_id=pid, sort=Sort(SortBy.RANDOM, seed=seed), limit=100)
            assert page == orders[seed][:100]
    for x, y in [(1, 2), (1, 3), (2, 3), (1, 1234)]:
        assert sorted(orders[x]) == sorted(orders[y])
        assert not is_rotation(orders[x], orders[y])
        # Relative order of pairs: about half agree between two seeds, as between two shuffles.
        rank = {rid: i for i, rid in enumerate(orders[y])}
        a = orders[x]
        pairs = [(a[i], a[j]) for i in range(0, len(a), 3) for j in range(i + 1, len(a), 3)]
        same = sum(rank[p] < rank[q] for p, q in pairs)
        assert 0.4 < same / len(pairs) < 0.6


@pytest.mark.parametrize("python_sort", [0, 10**9])
def test_random_pages_follow_the_full_order(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                            python_sort: int) -> None:
    """Every path of a random page (bucket walk, then a Python or SQL sort of the rest) gives one order."""
    import core.browse
    import core.store.browse_indexes

    pid, value = build_records(engine, 120)
    # Eight wide buckets (about 15 records each), a walk of three buckets at most, then the rest at once.
    monkeypatch.setattr(core.store.browse_indexes, "RANDOM_BUCKET_BITS", 28)
    monkeypatch.setattr(core.browse, "_RANDOM_WALK_BUCKETS", 3)
    monkeypatch.setattr(core.browse, "_RANDOM_PYTHON_SORT", python_sort)
    for flt in (Filter(), Filter((AttributeFilter("i", AttributeOp.LESS, (40,)),))):
        with session_scope(engine) as session:
            full = ordered_ids(session, project_id=pid, flt=flt, sort=Sort(SortBy.RANDOM, seed=5), limit=None)
            paged: list[int] = []
            for offset in range(0, len(full) + 7, 7):
                paged += ordered_ids(session, project_id=pid, flt=flt, sort=Sort(SortBy.RANDOM, seed=5),
                                     offset=offset, limit=7)
        assert paged == full
        assert len(full) == (40 if flt else 120) and all(value[r] < 40 for r in full) == bool(flt)
        assert full != sorted(full)


SEED_3_ORDER = ["r3", "r4", "r2", "r5", "r6", "r1"]  # record ids 1..6 in a fresh database


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
    # The seeded order is integer arithmetic that both databases compute alike.
    seeded = keys_in_order(db_engine, fx, sort=Sort(SortBy.RANDOM, seed=3))
    assert seeded == SEED_3_ORDER
    assert keys_in_order(db_engine, fx, sort=Sort(SortBy.RANDOM, seed=3), limit=None) == SEED_3_ORDER


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
