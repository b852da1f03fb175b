"""The foundation's main flow in headless Chromium: import a file, browse it; tour the demo project."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import DATA

# The server and browser fixtures (browser, page, loupe_server, demo_server) are plugged in by conftest.
from tests.e2e_helpers import LoupeServer, go_to, grid, open_app, requires_chromium, screenshot, wait_idle

pytestmark = [pytest.mark.browser, requires_chromium]

REVIEWS = DATA / "reviews.csv"


def test_import_a_csv_and_browse_it(page, loupe_server: LoupeServer, artifacts: Path) -> None:
    open_app(page, loupe_server)
    page.get_by_text("No projects yet").wait_for()

    page.get_by_test_id("stFileUploader").locator('input[type="file"]').set_input_files(REVIEWS)
    page.get_by_text("reviews.csv").first.wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_test_id("stAlertContentSuccess").get_by_text("imported 10 new record(s)").wait_for()
    wait_idle(page)
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("10")
    screenshot(page, artifacts, "foundation-1-projects-after-import")

    go_to(page, "Data")
    page.get_by_text("10 records", exact=True).wait_for()
    rows = grid(page).locator(".ag-center-cols-container .ag-row")
    rows.first.wait_for()
    expect(rows).to_have_count(10)
    # Markup in the data is shown as text, never interpreted.
    grid(page).get_by_text("<b>Great</b> value for the price", exact=False).wait_for()
    assert grid(page).locator("b").count() == 0
    screenshot(page, artifacts, "foundation-2-data")

    page.get_by_label("Search").fill("CHARGER")
    page.get_by_label("Search").press("Enter")
    page.get_by_text("3 records", exact=True).wait_for()
    wait_idle(page)
    expect(rows).to_have_count(3)
    screenshot(page, artifacts, "foundation-3-data-search")

    go_to(page, "Overview")
    page.get_by_text("No labeling tasks yet").wait_for()
    screenshot(page, artifacts, "foundation-4-overview")


def test_tour_of_the_demo_project(page, demo_server: LoupeServer, artifacts: Path) -> None:
    open_app(page, demo_server)
    expect(page.get_by_test_id("stMetricValue").first).to_have_text("1,956")
    page.get_by_test_id("stDataFrame").wait_for()
    screenshot(page, artifacts, "demo-1-projects")

    go_to(page, "Overview")
    page.get_by_text("carry a manual label").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    screenshot(page, artifacts, "demo-2-overview")

    go_to(page, "Data")
    page.get_by_text("1956 records", exact=True).wait_for()
    grid(page).locator(".ag-row").first.wait_for()
    page.wait_for_timeout(500)  # rows settle to their wrapped heights
    screenshot(page, artifacts, "demo-3-data")


def test_a_bookmarked_page_opens_inside_the_app_shell(page, loupe_server: LoupeServer, artifacts: Path) -> None:
    page.goto(f"{loupe_server.url}/data")
    page.get_by_role("heading", name="Data", exact=True).wait_for()
    wait_idle(page)
    screenshot(page, artifacts, "foundation-5-bookmarked-data")
    navigation = page.get_by_test_id("stSidebarNav")
    expect(navigation.get_by_text("Explore", exact=True)).to_be_visible(timeout=5_000)
