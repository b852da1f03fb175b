"""The Search page in headless Chromium: find records similar to one, open a result in Labeling, search by
meaning, and lasso a cluster of the map into a data slice."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from core.embeddings import embed_attribute
from core.store import make_engine, session_scope
from core.store.slices import SliceKind, get_slice

# The browser fixtures (browser, page) are plugged in by conftest.
from tests.e2e_helpers import LoupeServer, go_to, open_app, requires_chromium, screenshot, start_server, stop_server
from tests.fixtures_embeddings import PROJECT, embedding_model_fixture, make_project  # noqa: F401

pytestmark = [pytest.mark.browser, requires_chromium]


@pytest.fixture()
def search_server(tmp_path: Path, embedding_model: Any) -> Iterator[LoupeServer]:
    """A server on a home holding the tiny news project, embedded but not indexed yet."""
    home = tmp_path / "home"
    home.mkdir()
    engine = make_engine(f"sqlite:///{home / 'loupe.db'}")
    make_project(engine)
    embed_attribute(engine, project=PROJECT, attribute="text", index=False)
    engine.dispose()
    server = start_server(home)
    try:
        yield server
    finally:
        stop_server(server)


def wait_idle(page: Any, timeout: float = 60_000) -> None:
    page.wait_for_timeout(300)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=timeout)


def open_tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    wait_idle(page)


def grid_cells(page: Any) -> Any:
    """The cells of the results grid (glide-data-grid keeps an accessible copy of the canvas in the DOM)."""
    return page.get_by_test_id("stDataFrame").first.locator("[role=gridcell]")


def record_title(page: Any) -> str:
    """The title of the record the Labeling page shows: ``Record KEY · running id N``."""
    title = page.get_by_test_id("stHtml").first.get_by_text(re.compile(r"^Record .+ · running id \d+$"))
    title.wait_for()
    return str(title.inner_text())


def sign_in(page: Any, name: str = "alice") -> None:
    """Enter the annotator's name on the Labeling page."""
    field = page.get_by_test_id("stTextInputField").and_(page.get_by_label("Your name"))
    field.fill(name)
    field.press("Enter")
    wait_idle(page)


def click_first_row(page: Any, grid: Any) -> None:
    """One click on the first row of a results grid (below its 35-pixel header)."""
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)


def test_find_similar_then_open_a_result_in_labeling(page: Any, search_server: LoupeServer, artifacts: Path) -> None:
    open_app(page, search_server)
    go_to(page, "Search")
    page.get_by_text("15 records embedded").wait_for()
    # The index was never built: the page builds it in the background, with no search needed.
    page.get_by_text("Rebuilt the search index of text · all-MiniLM-L6-v2: 15 records.").wait_for(timeout=90_000)
    expect(page.get_by_text("search index fresh")).to_be_visible()

    open_tab(page, "Find similar")
    page.get_by_label("Record id").fill("1")
    page.get_by_role("button", name="Find similar").click()
    page.get_by_text("records similar to 1, best first").wait_for()
    wait_idle(page)
    # Record 2 is the near-duplicate of record 1: first, with its score and text.
    cells = grid_cells(page)
    expect(cells.nth(0)).to_have_text("2")
    expect(cells.nth(2)).to_contain_text("The striker scored two goals in the cup final!")
    assert float(cells.nth(1).inner_text()) > 0.8
    screenshot(page, artifacts, "search-1-find-similar")
    page.reload()  # the open tab is in the URL: a refresh (a new session) opens it again
    page.get_by_label("Record id").wait_for()

    open_tab(page, "Search by meaning")
    page.get_by_label("What are you looking for?").fill("a football match")
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_text("records closest to “a football match”").wait_for(timeout=90_000)
    wait_idle(page)
    first = grid_cells(page).nth(0).inner_text()
    assert first in {"1", "2", "6"}
    screenshot(page, artifacts, "search-2-semantic")

    # One click on a result's row opens that very record in Labeling.
    click_first_row(page, page.get_by_test_id("stDataFrame").first)
    page.get_by_role("heading", name="Labeling", exact=True).wait_for()
    page.get_by_text(f"Record {first} opens then.").wait_for()  # once there is an annotator
    sign_in(page)
    assert record_title(page) == f"Record {first} · running id {first}"
    screenshot(page, artifacts, "search-3-opened-in-labeling")


def test_find_similar_on_the_labeling_page_opens_the_result_clicked(
    page: Any, search_server: LoupeServer, artifacts: Path
) -> None:
    open_app(page, search_server)
    go_to(page, "Labeling")
    sign_in(page)
    # Alice's queue starts with record 1; record 2 is its near-duplicate.
    assert record_title(page) == "Record 1 · running id 1"
    panel = page.get_by_test_id("stExpander").filter(has_text="Find similar records")
    panel.get_by_text("Find similar records").click()
    panel.get_by_role("button", name="Find similar").click()
    panel.get_by_text("similar records, best first").wait_for(timeout=90_000)  # builds the index first
    wait_idle(page)
    grid = panel.get_by_test_id("stDataFrame")
    cells = grid.locator("[role=gridcell]")
    expect(cells.nth(0)).to_have_text("2")
    expect(cells.nth(2)).to_contain_text("The striker scored two goals in the cup final!")
    assert float(cells.nth(1).inner_text()) > 0.8
    screenshot(page, artifacts, "search-7-labeling-find-similar")

    click_first_row(page, grid)
    page.get_by_text("Record 2 · running id 2").wait_for()
    wait_idle(page)
    assert record_title(page) == "Record 2 · running id 2"
    expect(page.get_by_test_id("stHtml").first).to_contain_text("The striker scored two goals in the cup final!")
    screenshot(page, artifacts, "search-8-labeling-opened-similar")


def test_lasso_on_the_map_saves_a_slice(page: Any, search_server: LoupeServer, artifacts: Path) -> None:
    page.set_viewport_size({"width": 1440, "height": 1400})  # the whole map in the screenshots
    open_app(page, search_server)
    go_to(page, "Search")
    open_tab(page, "Map")
    page.get_by_label("Colour by").click()
    page.get_by_role("option", name="Manual label").click()
    wait_idle(page)
    plot = page.locator(".js-plotly-plot .nsewdrag").first
    plot.wait_for()
    point = page.locator(".js-plotly-plot .scatterlayer .point").first.bounding_box()
    page.mouse.move(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
    page.locator(".hoverlayer .hovertext").first.wait_for()
    screenshot(page, artifacts, "search-4-map")
    box = plot.bounding_box()
    left, top, right, bottom = box["x"] + 5, box["y"] + 5, box["x"] + box["width"] - 5, box["y"] + box["height"] - 5
    page.mouse.move(left, top)
    page.mouse.down()
    for x, y in ((right, top), (right, bottom), (left, bottom), (left, top + 10)):
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    page.get_by_text("15 record(s) selected").wait_for()
    page.get_by_label("Slice name").fill("everything on the map")
    page.get_by_role("button", name="Save as static slice").click()
    page.get_by_text("Saved 15 record(s) as the static slice “everything on the map”.").wait_for()
    wait_idle(page)
    expect(page.get_by_text("15 record(s) selected")).to_have_count(0)  # a new, empty selection
    screenshot(page, artifacts, "search-5-map-slice-saved")
    engine = make_engine(f"sqlite:///{search_server.home / 'loupe.db'}")
    with session_scope(engine) as session:
        saved = get_slice(session, project_id=1, name="everything on the map")
        assert saved.kind == SliceKind.STATIC and len(saved.record_ids) == 15
    engine.dispose()


def test_an_active_learner_becomes_a_heuristic(page: Any, search_server: LoupeServer, artifacts: Path) -> None:
    page.set_viewport_size({"width": 1440, "height": 1300})
    open_app(page, search_server)
    go_to(page, "Heuristics")
    open_tab(page, "Active learner & zero-shot")
    page.get_by_role("button", name="Add active learner").click()
    page.get_by_text("Added active learner 'active_learner'").wait_for(timeout=60_000)
    wait_idle(page)
    screenshot(page, artifacts, "search-6-heuristics-active-learner")
    expect(page.get_by_role("button", name="Retrain active learner")).to_be_visible()
