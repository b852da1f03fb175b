"""Stores made before an index was declared get it when opened; indexes a wider one replaced are dropped."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from core.store import make_engine
from core.store.browse_indexes import RETIRED_INDEXES, ensure_browse_indexes, index_names
from tests.fixtures_pg import db_engine, db_url, pg_cluster, pg_url  # noqa: F401


def test_an_older_store_gets_the_covering_label_index_and_loses_its_prefix(db_engine: Engine) -> None:  # noqa: F811
    names = index_names(db_engine)
    assert "ix_assoc_task_source_record_label" in names
    assert not names & set(RETIRED_INDEXES)
    # As a store written before the covering index: the narrower one, not the covering one.
    with db_engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_assoc_task_source_record_label"))
        conn.execute(text("CREATE INDEX ix_assoc_task_source_record ON labelassociation "
                          "(task_id, source_type, record_id)"))
    assert ensure_browse_indexes(db_engine) == ["ix_assoc_task_source_record_label"]
    names = index_names(db_engine)
    assert "ix_assoc_task_source_record_label" in names and "ix_assoc_task_source_record" not in names
    assert ensure_browse_indexes(db_engine) == []  # nothing left to do
    make_engine.cache_clear()  # opening the store again changes nothing
    reopened = make_engine(db_engine.url.render_as_string(hide_password=False))
    try:
        assert index_names(reopened) == names
    finally:
        reopened.dispose()
