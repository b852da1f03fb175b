"""The Data page as a data browser, and the Dashboard's layouts, on the hand-made six-record fixture.

See tests/fixtures_browse.py for the records, labels and comments the counts below come from.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from core.slices import slice_record_ids, slices_frame
from core.store import get_engine, session_scope
from core.store.comments import list_comments
from core.store.models import LabelAssociation, SourceType
from core.store.projects import bump_revision
from tests.conftest import REPO
from tests.fixtures_browse import BrowseFixture, build_browse_fixture

APP = str(REPO / "app.py")


@pytest.fixture()
def fx(loupe_home: Path) -> tuple[Engine, BrowseFixture]:
    engine = get_engine()
    return engine, build_browse_fixture(engine)


def start(page: str = "pages/data.py") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def count_line(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**") and " record" in m.value)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def chips(at: AppTest) -> list[str]:
    """The active conditions' chips, as the user reads them (Markdown escapes removed)."""
    return [b.label.replace("\\", "") for b in at.button
            if b.key and b.key.startswith("data.chip.") and b.key != "data.chip.clear"]


def add_channel_condition(at: AppTest, *values: str) -> None:
    at.segmented_control(key="data.add.kind").set_value("Attribute").run()
    at.selectbox(key="data.add.attribute").set_value("channel").run()
    at.selectbox(key="data.add.op.CATEGORY").set_value("equals")
    at.multiselect(key="data.add.values.t.channel").set_value(list(values))
    at.button(key="data.add.submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def test_conditions_combine_with_and_and_chips_remove_them(fx: tuple[Engine, BrowseFixture]) -> None:
    at = start()
    assert count_line(at) == "**6 records** · showing 1–6 · page 1 of 1"
    at.selectbox(key="data.add.attribute").set_value("channel").run()
    # The category's values are offered, most frequent first; several values are alternatives (OR).
    assert at.multiselect(key="data.add.values.t.channel").options == ["Ads", "Personal", "Work", "ads"]
    add_channel_condition(at, "Work", "Personal")
    assert count_line(at).startswith("**2 records** match the filter")
    assert chips(at) == ["channel equals 'Work' or 'Personal'"]

    at.segmented_control(key="data.add.kind").set_value("Has comment").run()
    at.button(key="data.add.submit").click().run()
    assert count_line(at).startswith("**2 records**")  # r3 and r5 both have comments
    at.segmented_control(key="data.add.kind").set_value("Manual label").run()
    at.selectbox(key="data.add.match").set_value("has no label")
    at.button(key="data.add.submit").click().run()
    assert count_line(at).startswith("**1 record** matches")  # r5
    assert chips(at)[-1] == "manual label (spam): has none"

    at.button(key="data.chip.0").click().run()  # drop the channel condition: unlabeled with a comment, r5 still
    assert count_line(at).startswith("**1 record**")
    assert len(chips(at)) == 2
    at.button(key="data.chip.clear").click().run()
    assert count_line(at).startswith("**6 records** ·")


def test_a_bad_condition_is_explained_and_not_added(fx: tuple[Engine, BrowseFixture]) -> None:
    at = start()
    at.segmented_control(key="data.add.kind").set_value("Manual label").run()
    at.button(key="data.add.submit").click().run()  # "is one of" without any label
    assert any("Choose at least one label" in e.value for e in at.error)
    assert not chips(at)


def test_presets_set_the_filter_and_the_order(fx: tuple[Engine, BrowseFixture]) -> None:
    at = start()
    button(at, "Heuristics disagree").click().run()
    assert count_line(at).startswith("**1 record**")  # r2: h1 says spam, h2 ham
    button(at, "Weak supervision below 0.6 confidence").click().run()
    assert count_line(at).startswith("**2 records**")  # r2 (0.55), r5 (0.4)
    assert at.selectbox(key="data.sort").value == "confidence · spam"
    assert chips(at) == ["confidence (spam) in [0, 0.6]"]
    button(at, "Unlabeled, in random order").click().run()
    assert at.selectbox(key="data.sort").value == "(random, seeded)"
    assert at.number_input(key="data.seed").value == 0
    assert count_line(at).startswith("**2 records**")  # r5, r6


def test_save_use_rename_delete_a_slice_and_open_it_on_the_dashboard(fx: tuple[Engine, BrowseFixture]) -> None:
    engine, fixture = fx
    at = start()
    add_channel_condition(at, "ads")  # case-insensitive: r1, r2, r4
    at.text_input(key="data.slice.name").input("ads")
    at.radio(key="data.slice.kind").set_value("static")
    at.button(key="FormSubmitter:data.slice.save-Save slice").click().run()
    assert any("Saved the static slice “ads” (3 records now)" in s.value for s in at.success)
    with session_scope(engine) as session:
        assert fixture.keys(slice_record_ids(session, project_id=fixture.project_id, name="ads")) == {"r1", "r2", "r4"}
    table = at.dataframe[0].value  # the list of slices, the only table of the page
    assert list(table[["name", "kind", "records"]].itertuples(index=False, name=None)) == [("ads", "static", 3)]

    at.button(key="data.chip.clear").click().run()
    at.button(key="data.slice.use").click().run()
    assert chips(at) == ["in slice 'ads'"]
    assert count_line(at).startswith("**3 records**")

    at.text_input(key="data.slice.new_name").input("ad channel")
    at.button(key="data.slice.rename").click().run()
    assert chips(at) == ["in slice 'ad channel'"]  # the filter follows the renamed slice
    assert count_line(at).startswith("**3 records**")

    at.button(key="data.slice.dashboard").click().run()
    assert not at.exception
    assert at.title[0].value == "Dashboard"
    assert at.selectbox(key="dashboard.slice").value == "ad channel"
    assert {m.label: m.value for m in at.metric}["Records"] == "3"

    at.switch_page("pages/data.py").run()
    at.button(key="data.slice.delete").click().run()
    with session_scope(engine) as session:
        assert slices_frame(session, project_id=fixture.project_id).empty
    assert not chips(at)


def open_bulk(at: AppTest) -> AppTest:
    at.button(key="data.bulk.button").click().run()
    assert at.radio(key="data.bulk.action")
    return at


def test_bulk_label_confirms_the_count_and_refuses_when_it_changed(fx: tuple[Engine, BrowseFixture]) -> None:
    engine, fixture = fx
    at = start()
    at.segmented_control(key="data.add.kind").set_value("Manual label").run()
    at.selectbox(key="data.add.match").set_value("has no label")
    at.button(key="data.add.submit").click().run()
    assert count_line(at).startswith("**2 records**")  # r5, r6
    open_bulk(at)
    assert at.button(key="data.bulk.button").label == "Bulk action on 2 records…"
    at.text_input(key="data.bulk.annotator").input("carol")
    at.selectbox(key="data.bulk.label.spam").set_value("ham").run()
    assert at.button(key="data.bulk.run").disabled  # not confirmed yet
    assert at.button(key="data.bulk.run").label == "Label 2 records “ham”"
    # A teammate labels r6 meanwhile: the filter now matches one record, not the two confirmed.
    with session_scope(engine) as session:
        session.add(LabelAssociation(project_id=fixture.project_id, record_id=fixture.ids["r6"],
                                     task_id=fixture.tasks["spam"], label_id=fixture.labels[("spam", "spam")],
                                     source_type=SourceType.MANUAL.value, annotator_id=fixture.annotators["bob"]))
        bump_revision(session, fixture.project_id)  # as every write does
    at.checkbox(key="data.bulk.sure").check().run()
    assert any("now matches 1 records, not 2" in w.value for w in at.warning)
    at.button(key="data.bulk.run").click().run()
    assert any("not the 2 you confirmed" in e.value for e in at.error)

    at = start()  # a fresh look: one unlabeled record left
    at.segmented_control(key="data.add.kind").set_value("Manual label").run()
    at.selectbox(key="data.add.match").set_value("has no label")
    at.button(key="data.add.submit").click().run()
    open_bulk(at)
    at.text_input(key="data.bulk.annotator").input("carol")
    at.selectbox(key="data.bulk.label.spam").set_value("ham")
    at.checkbox(key="data.bulk.sure").check().run()
    at.button(key="data.bulk.run").click().run()
    assert not at.exception
    assert any("1 of 1 record(s) changed" in s.value for s in at.success)
    assert count_line(at).startswith("**0 records**")
    assert all(r.key != "data.bulk.action" for r in at.radio)  # the dialog closed


def test_comments_are_listed_added_and_deleted(fx: tuple[Engine, BrowseFixture]) -> None:
    engine, fixture = fx
    at = start()
    at.selectbox(key="data.comments.record").set_value(fixture.ids["r3"]).run()
    assert any("label unclear" in m.value for m in at.markdown)
    at.text_area(key="data.comments.text").input("duplicate of r1")
    at.button(key="FormSubmitter:data.comments.form-Add comment").click().run()
    assert not at.exception
    with session_scope(engine) as session:
        assert list(list_comments(session, record_id=fixture.ids["r3"])["text"]) == ["label unclear",
                                                                                     "duplicate of r1"]
    assert at.selectbox(key="data.comments.record").value == fixture.ids["r3"]
    delete = [b for b in at.button if b.key and b.key.startswith("data.comments.delete.")]
    delete[0].click().run()
    with session_scope(engine) as session:
        assert list(list_comments(session, record_id=fixture.ids["r3"])["text"]) == ["duplicate of r1"]


# Dashboard ----------------------------------------------------------------------------------------------------------


def test_every_dashboard_section_says_how_to_read_it_and_present_shows_one_per_screen(
    fx: tuple[Engine, BrowseFixture],
) -> None:
    at = start("pages/dashboard.py")
    titles = [h.value for h in at.subheader]
    assert titles == ["Progress", "Label distribution", "Weak-supervision confidence",
                      "Manual labels vs weak supervision", "Progress by annotator", "Annotator agreement",
                      "Heuristics", "Likely label errors"]
    captions = [c.value for c in at.caption][1:]  # after the project caption: one sentence per section
    assert len(captions) == len(titles) and all(len(c.split()) > 8 for c in captions)

    at.toggle(key="dashboard.present").set_value(True).run()
    assert [h.value for h in at.subheader] == ["Progress"]
    assert any("1 / 8" in m.value for m in at.markdown)
    at.button(key="dashboard.next").click().run()
    at.button(key="dashboard.next").click().run()
    assert [h.value for h in at.subheader] == ["Weak-supervision confidence"]
    assert len(at.get("plotly_chart")) == 1
    assert any("stSidebar" in h.proto.body for h in at.get("html"))  # the present style hides the sidebar


def test_a_likely_label_error_opens_in_labeling_with_one_click(
    fx: tuple[Engine, BrowseFixture], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ui import browser_cached

    _, fixture = fx
    errors = pd.DataFrame({"record_id": [fixture.ids["r1"]], "id": ["r1"], "label": ["spam"], "suggested": ["ham"],
                           "score": [0.1], "self_confidence": [0.1], "suggested_confidence": [0.9]})
    monkeypatch.setattr(browser_cached, "label_errors", lambda *args: errors)
    at = start("pages/dashboard.py")
    button(at, "Find likely label errors").click().run()
    table = next(d for d in at.dataframe if d.key and d.key.startswith("dashboard.errors_table"))
    assert list(table.value.columns[:3]) == ["id", "label", "suggested"]
    at.session_state[table.key] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception
    assert at.title[0].value == "Labeling"
    # The hand-over key (ui.resources.OPEN_RECORD_KEY): the labeling page shows r1, and may remove the key then.
    assert at.session_state.get("labeling.open_record", "r1") == "r1"
