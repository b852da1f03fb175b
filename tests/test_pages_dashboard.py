"""The Dashboard page, driven through ``streamlit.testing`` against the hand-made fixture."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from core.filters import AttributeFilter, AttributeOp, Filter
from core.slices import save_filter_slice
from core.store import get_engine, session_scope
from tests.conftest import REPO
from tests.fixtures_browse import BrowseFixture, build_browse_fixture

APP = str(REPO / "app.py")


@pytest.fixture()
def fx(loupe_home: Path) -> tuple[Engine, BrowseFixture]:
    engine = get_engine()
    fixture = build_browse_fixture(engine)
    with session_scope(engine) as session:
        save_filter_slice(session, project_id=fixture.project_id, name="ads",
                          flt=Filter((AttributeFilter("channel", AttributeOp.EQUALS, ("ads",)),)))
    return engine, fixture


def dashboard() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/dashboard.py").run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_dashboard_shows_the_tasks_numbers_and_follows_the_slice(fx: tuple[Engine, BrowseFixture]) -> None:
    at = dashboard()
    assert at.selectbox(key="dashboard.task").value == "spam"
    shown = metrics(at)
    assert (shown["Records"], shown["Labeled manually"], shown["Valid manual label"],
            shown["Weakly supervised"]) == ("6", "4", "3", "5")
    assert len(at.get("plotly_chart")) == 4  # distribution, confidence, confusion, annotators
    pairs = at.dataframe[0].value
    assert list(pairs["n"]) == [3]
    at.selectbox(key="dashboard.slice").set_value("ads").run()
    assert not at.exception
    shown = metrics(at)
    assert (shown["Records"], shown["Weakly supervised"]) == ("3", "3")


def test_label_errors_explain_missing_embeddings_and_extraction_is_per_token(fx: tuple[Engine, BrowseFixture]) -> None:
    at = dashboard()
    next(b for b in at.button if b.label == "Find likely label errors").click().run()
    assert not at.exception
    assert any("loupe embed" in e.value for e in at.error)
    at.selectbox(key="dashboard.task").set_value("ner").run()
    assert not at.exception
    assert any("per token" in c.value for c in at.caption)
    assert any("ner is a task of kind extraction" in c.value for c in at.caption)
