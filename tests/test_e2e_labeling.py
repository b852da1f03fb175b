"""Label by keyboard in headless Chromium: five records with hotkeys and arrows, one span, then a review."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.store import make_engine
from tests.e2e_helpers import (
    LoupeServer,
    go_to,
    open_app,
    requires_chromium,
    screenshot,
    start_server,
    stop_server,
    wait_idle,
)
from tests.fixtures_labeling import make_labeling_project

pytestmark = [pytest.mark.browser, requires_chromium]


@pytest.fixture()
def labeling_server(tmp_path: Path) -> Iterator[LoupeServer]:
    """A server on a LOUPE_HOME holding the tiny labeling project (six reviews, three tasks)."""
    home = tmp_path / "home"
    home.mkdir()
    engine = make_engine(f"sqlite:///{home / 'loupe.db'}")
    make_labeling_project(engine)
    engine.dispose()
    server = start_server(home)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture()
def tab(request: pytest.FixtureRequest) -> Any:
    """The helpers' ``page`` fixture (a fresh Chromium tab), under a name that does not shadow the import."""
    return request.getfixturevalue("page")


def _rows(server: LoupeServer, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(server.home / "loupe.db") as db:
        return db.execute(sql).fetchall()


def _manual(server: LoupeServer, task: str) -> list[tuple[Any, ...]]:
    return _rows(server, f"""
        SELECT r.key, l.name, a.name, la.token_start, la.token_end, la.seconds_spent
        FROM labelassociation la JOIN record r ON r.id = la.record_id JOIN label l ON l.id = la.label_id
        JOIN labelingtask t ON t.id = la.task_id JOIN annotator a ON a.id = la.annotator_id
        WHERE t.name = '{task}' AND la.source_type = 'MANUAL' ORDER BY r.running_id""")


def _press(tab: Any, key: str, *, then: str) -> None:
    """Press a key with no field focused, then wait for the text the rerun brings (a person reads first)."""
    tab.keyboard.press(key)
    tab.get_by_text(then, exact=False).first.wait_for()
    wait_idle(tab)


def test_label_five_records_by_keyboard_and_mark_a_span(tab: Any, labeling_server: LoupeServer,
                                                       artifacts: Path) -> None:
    open_app(tab, labeling_server)
    go_to(tab, "Labeling")
    tab.get_by_text("Enter your name").wait_for()
    name = tab.get_by_test_id("stTextInputField").and_(tab.get_by_label("Your name"))
    name.fill("alice")
    name.press("Enter")
    tab.get_by_text("Record 1 of 6 in this queue").wait_for()
    wait_idle(tab)
    tab.evaluate("document.activeElement.blur()")  # shortcuts never fire while a text field has focus
    assert tab.get_by_test_id("stHtml").first.get_by_text("Great phone from Apple").is_visible()

    _press(tab, "1", then="Record 2 of 6")  # record 1 positive; auto next
    _press(tab, "2", then="Record 3 of 6")  # record 2 negative
    _press(tab, "ArrowDown", then="not a real review")  # skip record 3: it goes to the end of the queue
    record = tab.get_by_test_id("stHtml").first
    assert "<script>alert('x')</script>" in record.inner_text()  # markup in the data shows as text
    assert record.locator("script").count() == 0
    _press(tab, "3", then="Record 4 of 6")  # record 4 neutral
    _press(tab, "ArrowLeft", then="Record 3 of 6")  # back to record 4 ...
    _press(tab, "1", then="Record 4 of 6")  # ... and change its label to positive
    _press(tab, "ArrowRight", then="Record 5 of 6")  # leave record 5 unlabeled
    _press(tab, "2", then="Alice said the battery")  # record 6 negative; the skipped record 3 comes back
    screenshot(tab, artifacts, "labeling-1-keyboard")
    _press(tab, "3", then="Nothing left in this queue")  # record 3 neutral
    _press(tab, "ArrowLeft", then="Alice said the battery")
    assert tab.get_by_role("button", name="neutral").first.is_visible()

    sentiment = _manual(labeling_server, "sentiment")
    assert [(key, label, who) for key, label, who, *_ in sentiment] == [
        ("1", "positive", "alice"), ("2", "negative", "alice"), ("3", "neutral", "alice"),
        ("4", "positive", "alice"), ("6", "negative", "alice")]
    assert all(seconds is not None and seconds >= 0 for *_, seconds in sentiment)

    # A span: put the keyboard on the extraction task, pick the token "Apple", press ORG's key.
    tab.get_by_test_id("stSelectbox").filter(has_text="Keyboard and queue on task").locator("input").click()
    tab.get_by_role("option", name="entities").click()
    tab.get_by_text("Tokens of text").wait_for()
    wait_idle(tab)
    tab.get_by_test_id("stButtonGroup").get_by_role("button", name="Apple", exact=True).click()
    wait_idle(tab)
    tab.evaluate("document.activeElement.blur()")
    _press(tab, "2", then="ORG · token 3")
    mark = tab.get_by_test_id("stHtml").first.locator("mark")
    assert mark.count() == 1 and mark.inner_text().startswith("Apple")
    screenshot(tab, artifacts, "labeling-2-span")
    assert [row[:5] for row in _manual(labeling_server, "entities")] == [("1", "ORG", "alice", 3, 4)]


def test_review_by_keyboard(tab: Any, labeling_server: LoupeServer, artifacts: Path) -> None:
    from core.labeling import label

    engine = make_engine(f"sqlite:///{labeling_server.home / 'loupe.db'}")
    for key, name in (("1", "positive"), ("2", "negative")):
        label(engine, project="reviews", task="sentiment", record=key, labels=[name], annotator="alice")
    open_app(tab, labeling_server)
    go_to(tab, "Review")
    name = tab.get_by_test_id("stTextInputField").and_(tab.get_by_label("Your name"))
    name.fill("rita")
    name.press("Enter")
    tab.get_by_text("Answer 1 of 2").wait_for()
    wait_idle(tab)
    tab.evaluate("document.activeElement.blur()")
    screenshot(tab, artifacts, "review-1-stream")
    _press(tab, "a", then="Answer 2 of 2")
    _press(tab, "x", then="Nothing left to review")
    screenshot(tab, artifacts, "review-2-done")
    decisions = _rows(labeling_server, "SELECT decision, seconds_to_review FROM labelreview ORDER BY id")
    assert [d for d, _ in decisions] == ["accepted", "rejected"]
    statuses = sorted(s for (s,) in _rows(labeling_server, "SELECT status FROM recordstatus"))
    assert statuses == ["done", "rework"]
