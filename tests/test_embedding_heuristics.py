"""The active learner and zero-shot as heuristics: stored votes, honest statistics, retraining, the CLI."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.active_learning import run_active_learner
from core.cli import main
from core.embedding_heuristics import add_active_learner, add_zero_shot, learner_of, retrain
from core.embeddings import embed_attribute
from core.errors import ConflictError, ValidationError
from core.heuristics import add_labeling_functions, get_heuristic, update_heuristic
from core.stats_service import heuristic_statistics
from core.store import session_scope
from core.store.heuristics import Heuristic
from core.store.models import Label, LabelAssociation, Record, SourceType
from core.store.tasks import get_task
from core.weak_supervision import run_weak_supervision
from tests.fixtures_embeddings import PROJECT, embedding_model_fixture, make_project  # noqa: F401

ROWS: list[dict[str, Any]] = [
    *({"text": t, "__topic": "sports"} for t in (
        "The striker scored twice in the cup final.", "The goalkeeper saved a penalty.",
        "The tennis champion won in straight sets.", "The marathon runner broke the world record.")),
    *({"text": t, "__topic": "cooking"} for t in (
        "Whisk the eggs and fold in the flour.", "Bake the bread for forty minutes.",
        "Simmer the tomato sauce with garlic.", "Chop the onions and fry them in butter.")),
    # Record 9 is mislabeled on purpose: a model that saw its own label would repeat it.
    {"text": "Roast the chicken with lemon and rosemary.", "__topic": "sports"},
    {"text": "The cyclist won the mountain stage of the race.", "__topic": None},
    {"text": "Knead the dough and let it rise overnight.", "__topic": None},
]


@pytest.fixture()
def topics(engine: Engine, embedding_model: Any) -> tuple[int, int]:
    """:data:`ROWS` embedded; returns (project id, task id of ``topic``)."""
    project_id = make_project(engine, rows=ROWS)
    embed_attribute(engine, project=PROJECT, attribute="text", index=False)
    with session_scope(engine) as session:
        return project_id, get_task(session, project_id, "topic").id or 0


def _votes(engine: Engine, name: str) -> dict[int, tuple[str, float]]:
    with session_scope(engine) as session:
        stmt = (select(LabelAssociation.record_id, Label.name, LabelAssociation.confidence)
                .join(Label, Label.id == LabelAssociation.label_id)
                .join(Heuristic, Heuristic.id == LabelAssociation.heuristic_id)
                .where(Heuristic.name == name, LabelAssociation.source_type == SourceType.HEURISTIC.value))
        return {int(r): (str(n), float(c)) for r, n, c in session.execute(stmt).all()}


def test_active_learner_votes_are_out_of_fold_so_statistics_are_honest(
    engine: Engine, topics: tuple[int, int]
) -> None:
    project_id, task_id = topics
    with session_scope(engine) as session:
        run = add_active_learner(session, project_id=project_id, task_id=task_id, min_confidence=0.0)
        reference = run_active_learner(session, project_id=project_id, task="topic", min_confidence=0.0)
        stats = heuristic_statistics(session, project_id=project_id, task_id=task_id)
        h = get_heuristic(session, project_id=project_id, task_id=task_id, name="active_learner")
        assert learner_of(h) == "active_learner" and h.enabled and h.kind == "external"
        assert h.settings["training_size"] == 9 and h.settings["cv_accuracy"] == pytest.approx(run.cv_accuracy)
    assert (run.created, run.votes, run.records, run.training_size, run.cv_folds) == (True, 11, 11, 9, 4)
    assert "trained on 9 manually labeled record(s), cross-validated accuracy" in run.summary()

    votes = _votes(engine, "active_learner")
    # The mislabeled record gets the label of a model that never saw it, not its own (wrong) manual label.
    assert votes[9][0] == "cooking"
    assert votes[10][0] == "sports" and votes[11][0] == "cooking"
    assert all(0.0 <= conf <= 1.0 for _, conf in votes.values())
    # The statistics page counts the stored votes against the manual labels: the learner's own
    # out-of-fold figures, record 9 a false positive of "cooking".
    refinery = stats.refinery[stats.refinery["heuristic"] == "active_learner"].set_index("label")
    expected = reference.stats.set_index("label")
    for label in ("sports", "cooking"):
        assert refinery.loc[label, "true_positives"] == expected.loc[label, "true_positives"]
        assert refinery.loc[label, "false_positives"] == expected.loc[label, "false_positives"]
    assert refinery.loc["cooking", "false_positives"] >= 1
    assert int(refinery["true_positives"].sum()) == round(run.cv_accuracy * 9)


def test_retraining_follows_new_labels_and_keeps_the_enabled_flag(engine: Engine, topics: tuple[int, int]) -> None:
    project_id, task_id = topics
    with session_scope(engine) as session:
        first = add_active_learner(session, project_id=project_id, task_id=task_id)
        update_heuristic(session, heuristic_id=first.heuristic_id, enabled=False)
        record = session.execute(select(Record).where(Record.key == "10")).scalar_one()
        label = session.execute(select(Label).where(Label.task_id == task_id, Label.name == "sports")).scalar_one()
        session.add(LabelAssociation(project_id=project_id, record_id=record.id or 0, task_id=task_id,
                                     label_id=label.id or 0, source_type=SourceType.MANUAL.value))
    with session_scope(engine) as session:
        again = retrain(session, heuristic_id=first.heuristic_id, min_confidence=0.0)
        h = session.get(Heuristic, first.heuristic_id)
        assert h is not None and not h.enabled and h.settings["min_confidence"] == 0.0
    assert (again.created, again.heuristic_id, again.training_size) == (False, first.heuristic_id, 10)
    assert again.votes == 11 and len(_votes(engine, "active_learner")) == 11
    assert again.summary().startswith("Retrained active learner 'active_learner'")


def test_a_learner_that_cannot_train_keeps_its_previous_votes(engine: Engine, topics: tuple[int, int]) -> None:
    project_id, task_id = topics
    with session_scope(engine) as session:
        add_active_learner(session, project_id=project_id, task_id=task_id, min_confidence=0.0)
    before = _votes(engine, "active_learner")
    with session_scope(engine) as session:
        session.execute(LabelAssociation.__table__.delete().where(  # type: ignore[attr-defined]
            LabelAssociation.source_type == SourceType.MANUAL.value, LabelAssociation.record_id > 2))
    with pytest.raises(ValidationError, match="at least two different labels"), session_scope(engine) as session:
        h = get_heuristic(session, project_id=project_id, task_id=task_id, name="active_learner")
        retrain(session, heuristic_id=h.id or 0)
    assert _votes(engine, "active_learner") == before


def test_zero_shot_heuristic_keeps_its_descriptions_and_joins_weak_supervision(
    engine: Engine, topics: tuple[int, int]
) -> None:
    project_id, task_id = topics
    descriptions = {"sports": "games, players, races and scores", "cooking": "recipes, food and kitchens"}
    with session_scope(engine) as session:
        run = add_zero_shot(session, project_id=project_id, task_id=task_id, descriptions=descriptions)
        h = get_heuristic(session, project_id=project_id, task_id=task_id, name="zero_shot")
        assert learner_of(h) == "zero_shot" and h.settings["descriptions"] == descriptions
        again = retrain(session, heuristic_id=h.id or 0)
    assert run.created and not again.created and again.votes == run.votes > 0
    assert run.training_size == 9 and run.cv_accuracy is not None
    votes = _votes(engine, "zero_shot")
    assert votes[10][0] == "sports" and votes[11][0] == "cooking"
    ws = run_weak_supervision(engine, project_id=project_id, task_id=task_id)
    assert ws.heuristics == ["zero_shot"] and ws.n_labeled == len(votes)


def test_a_name_taken_by_another_heuristic_is_refused(engine: Engine, topics: tuple[int, int]) -> None:
    project_id, task_id = topics
    with session_scope(engine) as session:
        add_labeling_functions(session, project_id=project_id, task_id=task_id,
                               source="def zero_shot(record):\n    return None\n")
        with pytest.raises(ConflictError, match="labeling function heuristic named 'zero_shot'"):
            add_zero_shot(session, project_id=project_id, task_id=task_id)
        add_active_learner(session, project_id=project_id, task_id=task_id, name="learner")
        with pytest.raises(ConflictError, match="active learner heuristic named 'learner'"):
            add_zero_shot(session, project_id=project_id, task_id=task_id, name="learner")
        with pytest.raises(ValidationError, match="between 0 and 1"):
            add_active_learner(session, project_id=project_id, task_id=task_id, min_confidence=1.5)


def test_cli_adds_and_retrains_learners(
    engine: Engine, topics: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    base = ("--project", PROJECT, "--task", "topic")
    code, out, _ = run("heuristics", "add-active-learner", *base, "--min-confidence", "0.6")
    assert code == 0 and out.startswith("Added active learner 'active_learner' on text · all-MiniLM-L6-v2")
    code, out, _ = run("heuristics", "add-zero-shot", *base, "--describe", "sports=games and players", "--disabled")
    assert code == 0 and "Added zero-shot 'zero_shot'" in out
    code, out, _ = run("heuristics", "retrain", *base, "--name", "active_learner")
    assert code == 0 and out.startswith("Retrained active learner") and "≥ 0.6" in out
    code, out, _ = run("heuristics", "list", *base)
    assert "[on ] active_learner  (external" in out and "[off] zero_shot" in out
    code, _, err = run("heuristics", "add-zero-shot", *base, "--describe", "no equals sign")
    assert code == 1 and "--describe takes LABEL=TEXT" in err
    code, _, err = run("heuristics", "add-zero-shot", *base, "--describe", "eggs=breakfast")
    assert code == 1 and "unknown label(s) 'eggs'" in err
    with pytest.raises(SystemExit):
        run("heuristics", "add-active-learner", *base, "--min-confidence", "2")
