"""The heuristics flow in headless Chromium on the demo project: write a labeling function in the
editor, try it on one record, save and run it on all records, run weak supervision, read the statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# The server and browser fixtures (browser, page, demo_server) are plugged in by conftest.
from tests.e2e_helpers import LoupeServer, go_to, open_app, requires_chromium, screenshot, wait_idle

pytestmark = [pytest.mark.browser, requires_chromium]

LABELING_FUNCTIONS = '''import re

_LINK = re.compile(r"https?://|www\\.|\\.com")


def check_out(record):
    """Spam invites people to check out a channel."""
    return "spam" if "check out" in record["CONTENT"].lower() else None


def has_link(record):
    return "spam" if _LINK.search(record["CONTENT"]) else None


def short_praise(record):
    words = record["CONTENT"].lower().split()
    return "ham" if len(words) <= 6 and "love" in words else None
'''


def _fill_code(page: Any, code: str) -> None:
    area = page.locator('[class*="st-key-heuristics-code"] textarea')
    area.fill(code)
    area.press("Control+Enter")  # commits the text area without waiting for a blur
    wait_idle(page)


def test_write_run_and_weakly_supervise(page: Any, demo_server: LoupeServer, artifacts: Path) -> None:
    open_app(page, demo_server)
    go_to(page, "Heuristics")
    page.get_by_text("No heuristic yet").wait_for()

    _fill_code(page, LABELING_FUNCTIONS)
    page.get_by_role("button", name="Run on this record").click()
    wait_idle(page)
    # Record 1 of the demo: "Huh, anyway check out this you[tube] channel: kobyoshi02"
    page.get_by_text("check_out → spam").wait_for()
    page.get_by_text("short_praise abstains").wait_for()
    page.set_viewport_size({"width": 1440, "height": 2000})  # the editor and its preview in one picture
    wait_idle(page)
    screenshot(page, artifacts, "heuristics-0-editor-preview")
    page.set_viewport_size({"width": 1440, "height": 1000})

    page.get_by_role("button", name="Save and run on all").click()
    page.get_by_text("Ran check_out:").wait_for(timeout=120_000)
    wait_idle(page)
    screenshot(page, artifacts, "heuristics-1-after-run")

    page.get_by_role("tab", name="Weak supervision").click()
    page.get_by_role("button", name="Run weak supervision").click()
    page.get_by_text("records labeled from 3 heuristic(s)").wait_for(timeout=60_000)
    wait_idle(page)
    page.get_by_role("tab", name="Weak supervision").click()
    page.get_by_text("Latest result:").wait_for()
    screenshot(page, artifacts, "heuristics-2-weak-supervision")

    page.get_by_role("tab", name="Statistics").click()
    page.get_by_text("Per heuristic and label").wait_for()
    page.get_by_text("Estimated precision").first.wait_for()
    page.get_by_text("Conflicts:").first.wait_for()
    wait_idle(page)
    # Streamlit scrolls inside its own container: a tall window shows the charts and matrices in one picture.
    page.set_viewport_size({"width": 1440, "height": 3000})
    page.get_by_text("Overlaps:").first.wait_for()
    wait_idle(page)
    screenshot(page, artifacts, "heuristics-3-statistics")
