"""The Projects, Overview and Data pages, driven through ``streamlit.testing`` against a temp store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from core.demo import DEMO_PROJECT, load_demo
from core.store import get_engine, session_scope
from core.store.projects import create_project, get_project, list_projects
from core.store.tasks import get_task, list_labels
from tests.conftest import DATA, REPO

APP = str(REPO / "app.py")
REVIEWS = DATA / "reviews.csv"


@pytest.fixture()
def store(loupe_home: Path) -> Engine:
    """The engine the pages use: the one configured by the test's LOUPE_HOME."""
    return get_engine()


@pytest.fixture()
def demo(store: Engine) -> Engine:
    load_demo(store)
    return store


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def count_line(at: AppTest) -> str:
    """The Data page's "**N records** · showing … · page i of n" line."""
    return next(m.value for m in at.markdown if m.value.startswith("**") and " record" in m.value)


def projects(engine: Engine) -> dict[str, dict[str, object]]:
    with session_scope(engine) as session:
        return {p.name: p.as_dict() for p in list_projects(session)}


# Projects -----------------------------------------------------------------------------------------


def test_projects_page_starts_empty_and_loads_the_demo(store: Engine) -> None:
    at = start()
    assert any("No projects yet" in t for t in texts(at.info))

    button(at, "Load demo project").click().run()

    assert not at.exception
    assert any("1956 new record(s)" in t for t in texts(at.success))
    table = at.dataframe[0].value
    row = table[table["Project"] == DEMO_PROJECT].iloc[0]
    assert (row["Records"], row["Tasks"], row["Manual labels"]) == (1956, 1, 196)
    assert texts(at.metric) == ["1,956", "1", "196"]
    assert at.selectbox(key="projects.picker").value == DEMO_PROJECT
    # The project's header offers the one-click export of the default preset.
    assert [d.label for d in at.get("download_button")] == ["Download records"]
    # Loading again keeps the one project and says so.
    button(at, "Load demo project").click().run()
    assert any("there already" in t for t in texts(at.info))
    assert list(projects(store)) == [DEMO_PROJECT]


def test_picking_a_project_makes_it_current_on_every_page(demo: Engine) -> None:
    with session_scope(demo) as session:
        create_project(session, name="Another")
    at = start()
    assert at.selectbox(key="projects.picker").value == "Another"  # the first by name
    assert texts(at.metric) == ["0", "0", "0"]

    at.selectbox(key="projects.picker").set_value(DEMO_PROJECT).run()
    assert texts(at.metric) == ["1,956", "1", "196"]
    at.switch_page("pages/data.py").run()
    assert texts(at.caption)[0] == "Project: **YouTube spam (demo)**"
    assert count_line(at).startswith("**1956 records**")


def test_create_an_empty_project_and_refuse_a_taken_name(store: Engine) -> None:
    at = start()
    name = next(t for t in at.text_input if t.label == "Project name")
    name.input("Reviews")
    button(at, "Create project").click().run()
    assert any("Created the empty project" in t for t in texts(at.success))
    assert projects(store)["Reviews"]["records"] == 0
    assert at.selectbox(key="projects.picker").value == "Reviews"

    next(t for t in at.text_input if t.label == "Project name").input("Reviews")
    button(at, "Create project").click().run()
    assert any("exists already" in t for t in texts(at.error))
    assert list(projects(store)) == ["Reviews"]


def test_import_a_file_into_a_new_project(store: Engine) -> None:
    at = start()
    at.file_uploader[0].set_value(("reviews.csv", REVIEWS.read_bytes(), "text/csv"))
    at.run()
    assert at.radio[0].value == "A new project"
    assert next(t for t in at.text_input if t.label == "New project name").value == "reviews"

    button(at, "Import").click().run()

    assert not at.exception
    assert not at.error, texts(at.error)
    assert any("imported 10 new record(s)" in t for t in texts(at.success))
    assert projects(store)["reviews"]["records"] == 10
    assert at.selectbox(key="projects.picker").value == "reviews"


def test_a_bad_file_shows_the_error_and_writes_nothing(demo: Engine) -> None:
    at = start()
    at.file_uploader[0].set_value(("broken.csv", b"text,label\nfine,ok\ntoo,many,cells\n", "text/csv"))
    at.run()
    at.radio[0].set_value("A new project").run()
    button(at, "Import").click().run()

    assert any("broken.csv, line 3" in t.replace("\\", "") for t in texts(at.error))
    assert list(projects(demo)) == [DEMO_PROJECT]
    # Into the current project: the demo is unchanged too.
    at.radio[0].set_value("The current project").run()
    button(at, "Import").click().run()
    assert at.error
    assert projects(demo)[DEMO_PROJECT]["records"] == 1956


# Overview -----------------------------------------------------------------------------------------


def test_overview_shows_attributes_tasks_and_label_counts(demo: Engine) -> None:
    at = start("pages/overview.py")
    attributes, tasks, counts = (d.value for d in at.dataframe)
    assert list(attributes["attribute"]) == ["CONTENT", "AUTHOR", "DATE", "VIDEO", "COMMENT_ID"]
    assert list(tasks["task"]) == ["spam"]
    manual = counts[counts["source"] == "MANUAL"].set_index("label")["count"]
    assert manual.sum() == 196
    assert "**196** of 1,956 records (10%)" in at.markdown[0].value


def test_overview_form_creates_a_task(demo: Engine) -> None:
    at = start("pages/overview.py")
    next(t for t in at.text_input if t.label == "Task name").input("sentiment")
    at.selectbox(key="overview.target").set_value("CONTENT")
    next(t for t in at.text_input if t.label.startswith("Labels")).input("positive, negative ,, neutral")
    button(at, "Create task").click().run()

    assert not at.exception
    assert any("Created classification task 'sentiment'" in t.replace("\\", "") for t in texts(at.success))
    with session_scope(demo) as session:
        project = get_project(session, DEMO_PROJECT)
        task = get_task(session, project.id or 0, "sentiment")
        assert [(label.name, label.hotkey) for label in list_labels(session, task.id or 0)] == [
            ("positive", "1"), ("negative", "2"), ("neutral", "3"),
        ]  # fmt: skip
    assert "sentiment" in list(at.dataframe[1].value["task"])


@pytest.mark.parametrize(
    ("name", "kind", "labels", "message"),
    [
        ("spam", "classification", "a, b", "has a task named 'spam' already"),
        ("entities", "extraction", "PERSON", "Extraction tasks label spans"),
        ("topic", "classification", " , ", "needs at least one label"),
    ],
)
def test_overview_form_shows_bad_input(demo: Engine, name: str, kind: str, labels: str, message: str) -> None:
    at = start("pages/overview.py")
    next(t for t in at.text_input if t.label == "Task name").input(name)
    at.selectbox(key="overview.kind").set_value(kind)
    next(t for t in at.text_input if t.label.startswith("Labels")).input(labels)
    button(at, "Create task").click().run()
    assert any(message in t.replace("\\", "") for t in texts(at.error)), texts(at.error)
    assert list(at.dataframe[1].value["task"]) == ["spam"]


# Data ---------------------------------------------------------------------------------------------


def test_data_page_pages_searches_and_sorts_in_sql(demo: Engine) -> None:
    at = start("pages/data.py")
    assert count_line(at) == "**1956 records** · showing 1–50 · page 1 of 40"
    assert at.pagination[0].num_pages == 40

    at.pagination[0].select(3).run()
    assert count_line(at) == "**1956 records** · showing 101–150 · page 3 of 40"

    at.selectbox(key="data.page_size").set_value(100).run()
    assert count_line(at) == "**1956 records** · showing 1–100 · page 1 of 20"

    at.text_input(key="data.search").input("CHECK OUT").run()
    narrowed = count_line(at)
    assert narrowed.startswith("**403 records** match the filter") and narrowed.endswith("page 1 of 5")

    at.selectbox(key="data.sort").set_value("AUTHOR").run()
    at.toggle(key="data.descending").set_value(True).run()
    assert not at.exception and not at.error
    assert count_line(at) == narrowed

    at.text_input(key="data.search").input("no comment says this").run()
    assert count_line(at).startswith("**0 records**")
    assert any("No record matches" in t for t in texts(at.info))


def test_data_page_of_an_empty_project_points_to_projects(store: Engine) -> None:
    with session_scope(store) as session:
        create_project(session, name="Empty")
    at = start("pages/data.py")
    assert any("no records yet" in t for t in texts(at.info))
    assert at.page_link[0].label == "Go to Projects"


@pytest.mark.parametrize("page", ["pages/overview.py", "pages/data.py"])
def test_pages_without_any_project_point_to_projects(store: Engine, page: str) -> None:
    at = start(page)
    assert any("no project yet" in t for t in texts(at.info))
    assert at.page_link[0].label == "Go to Projects"
    assert not at.dataframe
