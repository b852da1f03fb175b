"""The data browser's main flow in headless Chromium: filter the demo, save a slice, see it on the Dashboard."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

# The server and browser fixtures (browser, page, demo_server) are plugged in by conftest.
from tests.e2e_helpers import LoupeServer, go_to, grid, open_app, requires_chromium, screenshot, wait_idle

pytestmark = [pytest.mark.browser, requires_chromium]

PSY = 350  # comments under the Psy video in the demo (data/youtube/Youtube01-Psy.csv)


def pick(page, widget: str, label: str, option: str) -> None:
    """Open the selectbox or multiselect labelled ``label`` and choose ``option``."""
    page.get_by_test_id(widget).filter(has_text=label).get_by_role("combobox").click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def test_filter_save_a_slice_and_open_the_dashboard_on_it(page, demo_server: LoupeServer, artifacts: Path) -> None:
    open_app(page, demo_server)
    go_to(page, "Data")
    page.get_by_text("1956 records", exact=True).wait_for()
    wait_idle(page)  # an options list opened while the page still runs closes when it finishes

    page.get_by_text("Add a filter condition").click()
    wait_idle(page)
    pick(page, "stSelectbox", "Attribute", "VIDEO")
    pick(page, "stMultiSelect", "Values (any of them: OR)", "Psy")
    page.keyboard.press("Escape")  # close the options list
    page.get_by_role("button", name="Add condition").click()
    page.get_by_text(f"{PSY} records", exact=True).wait_for()
    wait_idle(page)
    expect(page.get_by_role("button", name="VIDEO equals 'Psy'")).to_be_visible()
    grid(page).locator(".ag-row").first.wait_for()
    grid(page).get_by_text("spam").first.wait_for()  # the task's column group
    page.wait_for_timeout(500)  # rows settle to their wrapped heights
    screenshot(page, artifacts, "browser-1-data-filtered")

    page.get_by_label("Slice name").fill("Psy comments")
    page.get_by_role("button", name="Save slice").click()
    page.get_by_text(f"Saved the dynamic slice “Psy comments” ({PSY} records now).").wait_for()
    wait_idle(page)
    page.get_by_test_id("stDataFrame").wait_for()
    screenshot(page, artifacts, "browser-2-slice-saved")

    page.get_by_role("button", name="Open in Dashboard").click()
    page.get_by_role("heading", name="Dashboard", exact=True).wait_for()
    wait_idle(page)
    expect(page.get_by_role("combobox", name="Records")).to_have_value("Psy comments")
    expect(page.get_by_test_id("stMetricValue").first).to_have_text(f"{PSY:,}")
    page.locator(".js-plotly-plot").first.wait_for()
    page.wait_for_timeout(500)
    screenshot(page, artifacts, "browser-3-dashboard-slice")

    page.get_by_text("Present", exact=True).click()
    wait_idle(page)
    expect(page.get_by_text("1 / 8")).to_be_visible()
    screenshot(page, artifacts, "browser-4-dashboard-present")
