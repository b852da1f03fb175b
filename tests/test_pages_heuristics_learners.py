"""The active learner and zero-shot on the Heuristics page (``streamlit.testing``): add, see the training
size and cross-validated accuracy, retrain on new labels; without embeddings the page points to Search."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from core.embeddings import embed_attribute
from core.store import session_scope
from core.store.models import Label, LabelAssociation, LabelingTask, Record, SourceType
from tests.conftest import REPO
from tests.fixtures_embeddings import PROJECT, embedding_model_fixture, make_project  # noqa: F401
from tests.test_embedding_heuristics import ROWS

APP = str(REPO / "app.py")


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/heuristics.py").run()
    assert not at.exception, at.exception
    return at


def plain(elements: Any) -> list[str]:
    return [str(e.value).replace("\\", "") for e in elements]


def button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def finish(at: AppTest, timeout: float = 90.0) -> AppTest:
    """Training runs in a background thread: rerun until its progress bar is gone (the report is then shown)."""
    deadline = time.monotonic() + timeout
    at.run()
    while at.get("progress"):
        assert time.monotonic() < deadline, "the training did not end"
        time.sleep(0.2)
        at.run()
    assert not at.exception, at.exception
    return at


def learners_grid(at: AppTest) -> Any:
    return next(d.value for d in at.dataframe if "learner" in d.value.columns)


def test_without_embeddings_the_tab_points_to_search(engine: Engine) -> None:
    make_project(engine, rows=ROWS)
    at = start()
    assert any("compute them on the Search page first" in t for t in plain(at.info))


def test_add_an_active_learner_then_retrain_it_on_a_new_label(engine: Engine, embedding_model: Any) -> None:
    project_id = make_project(engine, rows=ROWS)
    embed_attribute(engine, project=PROJECT, attribute="text", index=False)
    at = start()
    next(s for s in at.slider if s.key.startswith("heuristics.learners.active.min")).set_value(0.5)
    button(at, "Add active learner").click()
    finish(at)
    report = next(t for t in plain(at.success) if t.startswith("Added active learner 'active_learner'"))
    assert "trained on 9 manually labeled record(s)" in report and "(4 folds)" in report
    grid = learners_grid(at)
    row = grid.iloc[0]
    assert (row["name"], row["learner"], row["training"], row["min_confidence"]) == (
        "active_learner", "active learner", 9, 0.5)
    assert 0.5 <= row["accuracy"] <= 8 / 9  # cross-validated: the mislabeled record is always wrong
    heuristics = at.dataframe[0].value
    assert heuristics["name"].tolist() == ["active_learner"] and heuristics["state"].tolist() == ["finished"]
    assert heuristics["description"][0].startswith("Active learner on text · all-MiniLM-L6-v2: trained on 9")

    with session_scope(engine) as session:
        task = session.execute(select(LabelingTask).where(LabelingTask.project_id == project_id)).scalar_one()
        record = session.execute(select(Record).where(Record.key == "10")).scalar_one()
        label = session.execute(select(Label).where(Label.task_id == task.id, Label.name == "sports")).scalar_one()
        session.add(LabelAssociation(project_id=project_id, record_id=record.id or 0, task_id=task.id or 0,
                                     label_id=label.id or 0, source_type=SourceType.MANUAL.value))
    at.run()
    button(at, "Retrain").click()
    finish(at)
    assert any(t.startswith("Retrained active learner") and "trained on 10" in t for t in plain(at.success))
    assert learners_grid(at).iloc[0]["training"] == 10


def test_zero_shot_with_label_descriptions(engine: Engine, embedding_model: Any) -> None:
    make_project(engine, rows=ROWS)
    embed_attribute(engine, project=PROJECT, attribute="text", index=False)
    at = start()
    next(t for t in at.text_input if t.label == "sports").set_value("games, players and races")
    button(at, "Add zero-shot").click()
    finish(at)
    assert any(t.startswith("Added zero-shot 'zero_shot'") for t in plain(at.success)), plain(at.success)
    row = learners_grid(at).iloc[0]
    assert (row["learner"], row["training"]) == ("zero-shot", 9) and row["votes"] > 0
    # The form remembers what the stored heuristic was made with.
    assert next(t for t in at.text_input if t.label == "sports").value == "games, players and races"
    assert button(at, "Run zero-shot again")
