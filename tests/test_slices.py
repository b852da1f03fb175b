"""Data slices from the browser: static ids stay, dynamic filters follow new labels."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.browse import count_filtered, ordered_ids
from core.errors import ConflictError, NotFoundError, ValidationError
from core.filters import Filter, LabelMatch, ManualLabelFilter, SliceFilter, Sort, SortBy, WeakLabelFilter
from core.labeling import get_or_create_annotator, set_label
from core.slices import (
    delete_slice,
    rename_slice,
    save_filter_slice,
    save_static_slice,
    slice_filter,
    slice_record_ids,
    slices_frame,
)
from core.store import session_scope
from core.store.slices import DataSlice
from tests.fixtures_browse import BrowseFixture, build_browse_fixture
from tests.fixtures_pg import db_engine, db_url, pg_cluster, pg_url  # noqa: F401

UNLABELED = Filter((ManualLabelFilter("spam", match=LabelMatch.HAS_NONE),))


@pytest.fixture()
def fx(engine: Engine) -> BrowseFixture:
    return build_browse_fixture(engine)


def label(engine: Engine, fx: BrowseFixture, key: str, name: str) -> None:
    with session_scope(engine) as session:
        who = get_or_create_annotator(session, "carol").id or 0
        set_label(session, task_id=fx.tasks["spam"], record_id=fx.ids[key], annotator_id=who, label=name)


def test_static_slice_is_frozen_and_dynamic_follows_new_labels(db_engine: Engine) -> None:  # noqa: F811
    fx = build_browse_fixture(db_engine)
    with session_scope(db_engine) as session:
        save_filter_slice(session, project_id=fx.project_id, name="todo frozen", flt=UNLABELED, kind="static")
        save_filter_slice(session, project_id=fx.project_id, name="todo", flt=UNLABELED, kind="dynamic")
    label(db_engine, fx, "r5", "ham")
    with session_scope(db_engine) as session:
        frozen = slice_record_ids(session, project_id=fx.project_id, name="todo frozen")
        live = slice_record_ids(session, project_id=fx.project_id, name="todo")
        frame = slices_frame(session, project_id=fx.project_id)
        stored = session.execute(select(DataSlice).where(DataSlice.name == "todo")).scalars().one()
        assert stored.filter == UNLABELED.to_dict() and stored.record_ids == []
    assert fx.keys(frozen) == {"r5", "r6"}
    assert fx.keys(live) == {"r6"}
    rows = frame.set_index("name")
    assert rows.loc["todo", "records"] == 1 and rows.loc["todo frozen", "records"] == 2
    assert rows.loc["todo", "filter"] == "manual label (spam): has none"


def test_slice_as_filter_condition_queue_and_by_id(fx: BrowseFixture, engine: Engine) -> None:
    with session_scope(engine) as session:
        saved = save_filter_slice(session, project_id=fx.project_id, name="weak spam",
                                  flt=Filter((WeakLabelFilter("spam", ("spam",)),)))
        picked = save_static_slice(session, project_id=fx.project_id, name="picked",
                                   record_ids=[fx.ids["r4"], fx.ids["r1"]])
        inside = Filter((SliceFilter("weak spam"), ManualLabelFilter("spam", ("ham",))))
        assert fx.keys(ordered_ids(session, project_id=fx.project_id, flt=inside, limit=None)) == {"r2", "r4"}
        outside = Filter((SliceFilter("weak spam", negate=True),))
        assert count_filtered(session, project_id=fx.project_id, flt=outside) == 3
        assert fx.keys(slice_record_ids(session, slice_id=saved.id)) == {"r1", "r2", "r4"}
        # A static slice keeps the order it was saved in; a sort re-orders it.
        assert slice_record_ids(session, slice_id=picked.id) == [fx.ids["r4"], fx.ids["r1"]]
        by_conf = slice_record_ids(session, slice_id=picked.id, sort=Sort(SortBy.CONFIDENCE, task="spam"))
        assert by_conf == [fx.ids["r1"], fx.ids["r4"]]


def test_rename_and_delete(fx: BrowseFixture, engine: Engine) -> None:
    with session_scope(engine) as session:
        save_filter_slice(session, project_id=fx.project_id, name="base", flt=UNLABELED, kind="static")
        save_filter_slice(session, project_id=fx.project_id, name="narrow",
                          flt=Filter((SliceFilter("base"), WeakLabelFilter("spam", ("ham",)))))
        with pytest.raises(ConflictError, match="exists already"):
            rename_slice(session, project_id=fx.project_id, name="base", new_name="narrow")
        rename_slice(session, project_id=fx.project_id, name="base", new_name="start")
        assert slice_filter(session, project_id=fx.project_id, name="narrow").conditions[0] == SliceFilter("start")
        assert fx.keys(slice_record_ids(session, project_id=fx.project_id, name="narrow")) == {"r5"}
        with pytest.raises(ConflictError, match="used by the filter of 'narrow'"):
            delete_slice(session, project_id=fx.project_id, name="start")
        delete_slice(session, project_id=fx.project_id, name="narrow")
        delete_slice(session, project_id=fx.project_id, name="start")
        with pytest.raises(NotFoundError, match=r"No data slice named 'start'.*none yet"):
            slice_record_ids(session, project_id=fx.project_id, name="start")


def test_bad_slices_are_refused(fx: BrowseFixture, engine: Engine) -> None:
    with session_scope(engine) as session:
        with pytest.raises(ConflictError, match="exists already"):
            save_filter_slice(session, project_id=fx.project_id, name="a", flt=UNLABELED)
            save_filter_slice(session, project_id=fx.project_id, name="a", flt=UNLABELED)
        with pytest.raises(ValidationError, match="uses slice 'b' itself"):
            save_filter_slice(session, project_id=fx.project_id, name="b", flt=Filter((SliceFilter("b"),)))
        with pytest.raises(ValidationError, match="'dynamic' or a 'static'"):
            save_filter_slice(session, project_id=fx.project_id, name="c", flt=UNLABELED, kind="outlier")
        with pytest.raises(NotFoundError, match=r"No labeling task named .nope."):
            save_filter_slice(session, project_id=fx.project_id, name="d", flt=Filter((WeakLabelFilter("nope"),)))
        with pytest.raises(ValidationError, match="not in this project"):
            save_static_slice(session, project_id=fx.project_id, name="e", record_ids=[999])
        # A dynamic slice whose filter refers (through another) back to itself.
        save_filter_slice(session, project_id=fx.project_id, name="x", flt=UNLABELED)
        save_filter_slice(session, project_id=fx.project_id, name="y", flt=Filter((SliceFilter("x"),)))
        save_filter_slice(session, project_id=fx.project_id, name="x", flt=Filter((SliceFilter("y"),)), replace=True)
        with pytest.raises(ValidationError, match="refers to itself"):
            slice_record_ids(session, project_id=fx.project_id, name="x")
