"""The Heuristics page through ``streamlit.testing``: write, try, save and run labeling functions, see a
failure reported, enable and disable, run weak supervision, read the statistics, build a lookup list."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core.store import session_scope
from core.store.heuristics import Heuristic
from tests.conftest import REPO
from tests.fixtures_heuristics import KEYWORDS, Reviews, reviews_fixture  # noqa: F401

APP = str(REPO / "app.py")


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/heuristics.py").run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def plain(elements) -> list[str]:
    """Element texts without Markdown escapes."""
    return [str(e.value).replace("\\", "") for e in elements]


def finish_run(at: AppTest, timeout: float = 90.0) -> AppTest:
    """Heuristics run in a background thread: rerun until its progress bar is gone (the report is then shown)."""
    deadline = time.monotonic() + timeout
    while at.get("progress"):
        assert time.monotonic() < deadline, "the heuristics run did not end"
        time.sleep(0.2)
        at.run()
    assert not at.exception, at.exception
    return at


def code_area(at: AppTest):
    return next(t for t in at.text_area if t.key and t.key.startswith("heuristics-code-"))


def test_without_a_project_the_page_points_to_projects(loupe_home: Path) -> None:
    at = start()
    assert any("no project yet" in t for t in plain(at.info))


def test_write_try_save_run_and_weakly_supervise(reviews: Reviews) -> None:
    at = start()
    assert any("No heuristic yet" in t for t in plain(at.info))
    assert "def my_heuristic(record)" in code_area(at).value  # a working template on the text attribute

    code_area(at).set_value(KEYWORDS)
    next(t for t in at.text_input if t.key == "heuristics.preview.record").set_value("3")
    button(at, "Run on this record").click().run()
    assert not at.exception
    assert "**good** → positive" in plain(at.success) and "**bad** → negative" in plain(at.success)
    assert any("**fun** abstains on record 3" in t for t in plain(at.info))

    button(at, "Save and run on all").click().run()
    finish_run(at)
    assert any(t.startswith("Ran good: 3 vote(s)") for t in plain(at.success)), plain(at.success)
    grid = at.dataframe[0].value
    assert list(grid["name"]) == ["good", "bad", "fun"]
    assert list(grid["state"]) == ["finished"] * 3 and list(grid["hits"]) == [3, 2, 2]

    button(at, "Run weak supervision").click().run()
    assert any("5 of 6 records labeled from 3 heuristic(s)" in t for t in plain(at.success)), plain(at.success)

    refinery = next(d.value for d in at.dataframe if "est_precision" in d.value.columns)
    good = refinery[refinery["heuristic"] == "good"].iloc[0]
    assert (good["coverage"], good["true_positives"], good["false_positives"]) == (3, 2, 1)
    assert [m.value for m in at.metric][-3:] == ["6", "4", "3"]  # records, with manual labels, heuristics


def test_a_failing_heuristic_is_reported_and_can_be_disabled(reviews: Reviews) -> None:
    at = start()
    code_area(at).set_value('def boom(record):\n    return "positive" if 1 / ("nothing" not in record["text"]) '
                            'else None\n')
    button(at, "Save and run on all").click().run()
    finish_run(at)
    assert any("ZeroDivisionError" in t and "record '6'" in t for t in plain(at.warning)), plain(at.warning)
    assert any("boom" in t and "ZeroDivisionError" in t for t in plain(at.error))  # shown on the heuristic

    toggle = next(t for t in at.toggle if t.label.startswith("Enabled"))
    assert toggle.value is True
    toggle.set_value(False).run()
    assert any("no longer takes part" in t for t in plain(at.success))
    with session_scope(reviews.engine) as session:
        assert session.execute(select(Heuristic.enabled).where(Heuristic.name == "boom")).scalar_one() is False
    assert button(at, "Run weak supervision").disabled  # nothing enabled has votes


def test_a_lookup_list_becomes_a_heuristic(reviews: Reviews) -> None:
    at = start()
    next(t for t in at.text_input if t.label == "New list name").set_value("cues")
    button(at, "Create list").click().run()
    assert "Created lookup list cues." in plain(at.success)
    next(t for t in at.text_area if t.label == "Paste many (one per line)").set_value("fun\nwhole family\n")
    button(at, "Add all").click().run()
    assert "Added 2 term(s) to cues." in plain(at.success)
    terms = next(d.value for d in at.dataframe if "blacklisted" in d.value.columns)
    assert sorted(terms["value"]) == ["fun", "whole family"]

    button(at, "Add heuristic").click().run()
    assert any("Added heuristic cues_lookup" in t for t in plain(at.success))
    button(at, "Run all heuristics (1)").click().run()
    finish_run(at)
    grid = at.dataframe[0].value
    assert (grid["name"].tolist(), grid["hits"].tolist()) == (["cues_lookup"], [2])


def test_the_editor_offers_a_token_template_for_extraction(reviews: Reviews) -> None:
    at = start()
    at.selectbox(key="heuristics.task").set_value(reviews.food).run()
    assert '__tokens__' in code_area(at).value
    button(at, "Run on this record").click().run()  # record 1 has no capitalized word
    assert any("abstains" in t for t in plain(at.info))


def test_a_py_file_uploaded_on_the_page_adds_one_heuristic_per_public_function(reviews: Reviews) -> None:
    from core.heuristics import split_functions
    from tests.conftest import DATA

    source = (DATA / "lf_keywords.py").read_bytes()
    at = start()
    uploader = at.file_uploader(key=f"heuristics.file.{reviews.sentiment}")
    uploader.set_value(("lf_keywords.py", source, "text/x-python")).run()
    button(at, "Add heuristics from file").click().run()
    assert not at.exception, at.exception
    assert any("Added 2 heuristic(s) from lf_keywords.py: positive_words, negative_regex" in t
               for t in plain(at.success)), plain(at.success)
    assert at.dataframe[0].value["name"].tolist() == ["positive_words", "negative_regex"]
    with session_scope(reviews.engine) as session:  # the same heuristics as `loupe heuristics add --file`
        stored = dict(session.execute(select(Heuristic.name, Heuristic.code)).all())
    assert stored == split_functions(source.decode())

    button(at, "Add heuristics from file").click().run()  # again: the names are taken
    assert any("positive_words" in t and "already" in t for t in plain(at.error)), plain(at.error)
    at.checkbox(key=f"heuristics.file.replace.{reviews.sentiment}").check().run()
    button(at, "Add heuristics from file").click().run()
    assert any("Added 2 heuristic(s)" in t for t in plain(at.success))

    at.file_uploader(key=f"heuristics.file.{reviews.sentiment}").set_value(
        ("broken.py", b"def lf(record):\n    return (\n", "text/x-python")).run()
    button(at, "Add heuristics from file").click().run()
    assert any(t.startswith("broken.py: syntax error") for t in plain(at.error)), plain(at.error)
