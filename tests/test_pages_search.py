"""The Search page through ``streamlit.testing``: embed in the background, search by meaning, find similar
records, save outliers, draw the map; the "find similar" panel other pages embed."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

import core.index as index_module
from core.index import drop_index
from core.store import session_scope
from core.store.embeddings import resolve_space
from core.store.slices import SliceKind, get_slice
from tests.conftest import REPO
from tests.fixtures_embeddings import (  # noqa: F401
    PROJECT,
    EmbeddedProject,
    embedded_project_fixture,
    embedding_model_fixture,
    make_project,
)

APP = str(REPO / "app.py")
TABS = ["Search by meaning", "Find similar", "Outliers", "Map"]


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/search.py").run()
    assert not at.exception, at.exception
    return at


def plain(elements: Any) -> list[str]:
    return [str(e.value).replace("\\", "") for e in elements]


def button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def tab(at: AppTest, label: str) -> AppTest:
    at.session_state["search.view"] = label
    at.run()
    assert not at.exception, at.exception
    return at


def ids(at: AppTest) -> list[str]:
    return [str(v) for v in at.dataframe[0].value["id"]]


def test_without_text_the_page_says_why(engine: Engine) -> None:
    make_project(engine, rows=[{"n": 1}, {"n": 2}])
    at = start()
    assert any("no text attribute" in t for t in plain(at.info))


def test_embedding_runs_in_the_background_and_enables_search(engine: Engine, embedding_model: Any) -> None:
    make_project(engine)
    at = start()
    assert any("has no embeddings with this model yet" in t for t in plain(at.info))
    assert not at.tabs  # nothing to search yet
    button(at, "Embed").click().run()
    wait_for_jobs(at)
    assert any(t.startswith("Embedded 'text' of 'news' with all-MiniLM-L6-v2: 15 records (15 encoded")
               for t in plain(at.success)), plain(at.success)
    assert "**15** records embedded" in [m.value for m in at.markdown]
    assert any("search index fresh" in str(m.value) for m in at.markdown)
    assert [t.label for t in at.tabs] == TABS
    assert button(at, "Update").disabled is False


def test_search_by_meaning_and_find_similar(embedded_project: EmbeddedProject) -> None:
    at = start()
    next(t for t in at.text_input if t.key == "search.semantic.text").set_value("a football match")
    button(at, "Search").click().run()
    assert not at.exception, at.exception
    grid = at.dataframe[0].value
    assert list(grid.columns[:3]) == ["id", "score", "text"] and len(grid) == 10
    assert set(ids(at)[:2]) <= {"1", "2", "6"}
    assert list(grid["score"]) == sorted(grid["score"], reverse=True)

    tab(at, "Find similar")
    next(t for t in at.text_input if t.key == "search.similar.text").set_value("1")
    next(n for n in at.number_input if n.key == "search.similar.k").set_value(3)
    button(at, "Find similar").click().run()
    assert ids(at) == ["2", "6", ids(at)[2]] and "1" not in ids(at)
    assert any("records similar to 1, best first" in c for c in plain(at.caption))
    # The question is kept: back from another tab (or page), the same results show.
    tab(at, "Search by meaning")
    assert set(ids(at)[:2]) <= {"1", "2", "6"}
    tab(at, "Find similar")
    assert ids(at)[:2] == ["2", "6"]

    next(t for t in at.text_input if t.key == "search.similar.text").set_value("16")
    button(at, "Find similar").click().run()
    assert any("Record '16' has no embedding" in t for t in plain(at.error))


def wait_for_jobs(at: AppTest) -> AppTest:
    """Rerun until no background job shows progress any more (it reruns the page with its report then)."""
    deadline = time.monotonic() + 120
    while at.get("progress"):
        assert time.monotonic() < deadline, "the background job did not end"
        time.sleep(0.3)
        at.run()
    assert not at.exception, at.exception
    return at


def test_a_missing_index_is_rebuilt_in_the_background_while_the_page_stays_usable(
    embedded_project: EmbeddedProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(embedded_project.engine) as session:
        drop_index(resolve_space(session, project_id=embedded_project.project_id))
    # The rebuild holds on until the test has seen the page while it runs.
    gate = threading.Event()
    real = index_module.rebuild_index

    def gated_rebuild(session: Any, **kwargs: Any) -> int:
        gate.wait(timeout=60)
        return real(session, **kwargs)

    monkeypatch.setattr(index_module, "rebuild_index", gated_rebuild)
    try:
        at = start()
        # The page started the rebuild on its own and shows it; the tabs are there meanwhile.
        assert any("rebuilding the search index" in str(m.value) for m in at.markdown)
        assert at.get("progress") and [t.label for t in at.tabs] == TABS
        next(t for t in at.text_input if t.key == "search.semantic.text").set_value("a football match")
        button(at, "Search").click().run()
        assert not at.exception, at.exception
        assert any("your search runs as soon as it is done" in t for t in plain(at.info))  # no waiting page
        assert not at.dataframe
    finally:
        gate.set()
    wait_for_jobs(at)
    assert "Rebuilt the search index of text · all-MiniLM-L6-v2: 15 records." in plain(at.success)
    assert any("search index fresh" in str(m.value) for m in at.markdown)
    assert set(ids(at)[:2]) <= {"1", "2", "6"}  # the search ran once the index was back


def test_records_added_since_the_last_run_are_counted_and_updated(embedded_project: EmbeddedProject) -> None:
    make_project(embedded_project.engine, rows=[{"text": "The cyclist won the mountain stage."},
                                                {"text": "Knead the dough and let it rise."}, {"text": ""}])
    at = start()
    assert any("2 records new or changed" in t and "(2 new)" in t for t in plain(at.warning)), plain(at.warning)
    update = button(at, "Update")
    assert update.proto.type == "primary"
    update.click().run()
    wait_for_jobs(at)
    assert any("17 records (2 encoded, 0 from cache, 15 unchanged" in t and t.endswith("Search index updated.")
               for t in plain(at.success)), plain(at.success)
    assert not any("new or changed" in t for t in plain(at.warning))
    assert "**17** records embedded" in [m.value for m in at.markdown]


def test_outliers_are_saved_as_a_slice_and_listed_with_scores(embedded_project: EmbeddedProject) -> None:
    at = tab(start(), "Outliers")
    assert not at.dataframe
    next(n for n in at.number_input if n.key == "search.outliers.limit").set_value(2)
    button(at, "Find outliers").click().run()
    assert "Saved 1 outlier(s) as the data slice “outliers”." in plain(at.success)  # 5% of 7 unlabeled, at least 1
    assert ids(at) == ["14"] and at.dataframe[0].value["score"][0] > 0
    with session_scope(embedded_project.engine) as session:
        saved = get_slice(session, project_id=embedded_project.project_id, name="outliers")
        assert saved.kind == SliceKind.OUTLIER and len(saved.record_ids) == 1


def test_the_map_is_coloured_by_manual_label(embedded_project: EmbeddedProject) -> None:
    at = tab(start(), "Map")
    chart = at.get("plotly_chart")[0]
    assert '"x"' in chart.proto.spec
    next(s for s in at.selectbox if s.key == "search.map.color").set_value("manual").run()
    assert not at.exception, at.exception
    spec = at.get("plotly_chart")[0].proto.spec
    for name in ("sports", "cooking", "politics", "(no label)"):
        assert f'"name":"{name}"' in spec
    assert "The striker scored twice" in spec  # the hover text


def _panel() -> None:
    from ui.similar import render_find_similar

    render_find_similar("news", "1", k=3)


def test_the_find_similar_panel_other_pages_embed(embedded_project: EmbeddedProject) -> None:
    at = AppTest.from_function(_panel, default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.expander[0].label == "Find similar records" and not at.dataframe  # nothing searched yet
    button(at, "Find similar").click().run()
    assert ids(at) == ["2", "6", ids(at)[2]]
    assert list(at.dataframe[0].value.columns[:3]) == ["id", "score", "text"]



def test_a_background_job_reports_its_indexing_step_under_its_own_name() -> None:
    from ui.background import Job, Reporter

    job = Job(label="Embedding text with all-MiniLM-L6-v2…", unit="new or changed texts encoded")
    progress = Reporter(job)
    progress(3, 3)
    indexing = progress.step("Updating the search index…", unit="records written")
    assert (job.label, job.done) == ("Embedding text with all-MiniLM-L6-v2…", 3)  # until the step reports
    indexing(1, 4)
    assert (job.label, job.unit, job.done, job.total) == ("Updating the search index…", "records written", 1, 4)
