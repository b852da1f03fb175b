"""The export dialog and the Settings page, driven through ``streamlit.testing`` against a temp store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from core.demo import DEMO_PROJECT, load_demo
from core.snapshot import snapshot_bytes
from core.store import get_engine
from core.store.engine import session_scope
from core.store.projects import find_project
from tests.conftest import REPO

APP = str(REPO / "app.py")


@pytest.fixture()
def store(loupe_home: Path) -> Engine:
    """The engine the pages use: the one configured by the test's LOUPE_HOME."""
    engine = get_engine()
    load_demo(engine)
    return engine


def buttons_script() -> None:
    import streamlit as st

    from ui.export_dialog import render_export_buttons

    render_export_buttons(st.session_state.get("test.project", "YouTube spam (demo)"), filter_keys=["1", "2"])


def downloads(at: AppTest) -> list[str]:
    return [d.proto.label for d in at.get("download_button")]


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def open_dialog(at: AppTest) -> AppTest:
    at.session_state["export.dialog_open"] = True  # the flag the "Export…" button sets
    return at.run()


def test_header_has_the_one_click_download_and_opens_the_dialog(store: Engine) -> None:
    at = AppTest.from_function(buttons_script, default_timeout=60).run()
    assert not at.exception
    assert downloads(at) == ["Download records"]
    assert not at.radio  # dialog closed
    next(b for b in at.button if b.label == "Export…").click().run()
    assert at.session_state["export.dialog_open"] is True
    assert [r.label for r in at.radio] == ["Preset"]
    assert "Download" in downloads(at)
    assert "File: `YouTube_spam_demo_refinery_all.json`" in captions(at)


def test_custom_columns_rows_and_password_change_the_file(store: Engine) -> None:
    at = open_dialog(AppTest.from_function(buttons_script, default_timeout=60))
    at.radio(key="export.preset").set_value("custom").run()
    assert at.multiselect(key="export.attributes").value == ["CONTENT", "AUTHOR", "DATE", "VIDEO", "COMMENT_ID"]
    assert at.multiselect(key="export.sources").value == ["MANUAL", "WEAK_SUPERVISION"]
    at.multiselect(key="export.attributes").set_value(["CONTENT"])
    at.selectbox(key="export.format").set_value("csv")
    at.selectbox(key="export.rows").set_value("min-confidence").run()
    at.slider(key="export.threshold").set_value(0.9)
    at.text_input(key="export.password").input("secret").run()
    assert not at.exception and not at.error
    assert "File: `YouTube_spam_demo_refinery_min-confidence-0.9.csv.zip`" in captions(at)
    # "the current filter" is offered because the page passed one.
    assert "The current filter" in at.selectbox(key="export.rows").options


def test_options_that_do_not_fit_show_the_error(store: Engine) -> None:
    at = open_dialog(AppTest.from_function(buttons_script, default_timeout=60))
    at.selectbox(key="export.format").set_value("conll").run()
    assert any("no extraction task" in e.value for e in at.error)
    assert "Download" not in downloads(at)


def test_labelstudio_offers_the_labeling_config(store: Engine) -> None:
    at = open_dialog(AppTest.from_function(buttons_script, default_timeout=60))
    at.selectbox(key="export.format").set_value("labelstudio").run()
    assert downloads(at)[-2:] == ["Download", "Labeling config (XML)"]


def test_labelbox_params_and_filters(store: Engine) -> None:
    at = open_dialog(AppTest.from_function(buttons_script, default_timeout=60))
    at.radio(key="export.preset").set_value("custom").run()
    at.selectbox(key="export.format").set_value("labelbox").run()
    at.checkbox(key="export.lb.attachments").uncheck()
    at.selectbox(key="export.lb.status").set_value("DONE").run()
    assert not at.exception and not at.error
    assert "File: `YouTube_spam_demo_labelbox_all.ndjson`" in captions(at)


def test_settings_page_restores_a_snapshot(store: Engine) -> None:
    data = snapshot_bytes(store, project=DEMO_PROJECT, password="pw")
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/settings.py").run()
    assert not at.exception
    assert [s.value for s in at.subheader] == ["Download records", "Project snapshot", "Restore a snapshot"]
    assert "Create snapshot" in downloads(at)
    # AppTest cannot upload files: call what the Restore button calls, with the page's inputs.
    from core.snapshot import restore_snapshot

    result = restore_snapshot(store, data, name="From settings", password="pw")
    with session_scope(store) as session:
        assert find_project(session, result.project) is not None
