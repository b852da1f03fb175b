"""Heuristics from the store's side: add from a file, run in the sandbox, votes stored, failures reported,
statistics from the store on a tiny project with numbers computed by hand, extraction end to end."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core.cli import main
from core.errors import ConflictError, ValidationError
from core.heuristics import (
    add_from_file,
    add_labeling_functions,
    add_lookup_heuristic,
    delete_heuristic,
    get_heuristic,
    list_heuristics,
    preview_code,
    run_heuristics,
    split_functions,
    store_external_votes,
    update_heuristic,
)
from core.lookup import add_terms, create_list
from core.stats_service import heuristic_statistics
from core.store import session_scope
from core.store.models import Label, LabelAssociation, Record, SourceType
from core.weak_supervision import run_weak_supervision
from tests.conftest import DATA
from tests.fixtures_heuristics import KEYWORDS, Reviews, reviews_fixture  # noqa: F401


def votes(engine, task_id: int) -> dict[str, dict[str, object]]:
    """Heuristic name → record key → label (classification) or sorted [(label, start, end, text)]."""
    stmt = (
        select(LabelAssociation.source_name, Record.key, Label.name, LabelAssociation.token_start,
               LabelAssociation.token_end, LabelAssociation.char_start, LabelAssociation.char_end, Record.data,
               LabelAssociation.heuristic_id, LabelAssociation.source_id)
        .join(Record, Record.id == LabelAssociation.record_id)
        .join(Label, Label.id == LabelAssociation.label_id)
        .where(LabelAssociation.task_id == task_id, LabelAssociation.source_type == SourceType.HEURISTIC.value)
    )
    out: dict[str, dict[str, object]] = {}
    with session_scope(engine) as session:
        for name, key, label, ts, te, cs, ce, data, hid, sid in session.execute(stmt).all():
            assert hid == sid  # source_id and the foreign key name the same heuristic
            if ts is None:
                out.setdefault(name, {})[key] = label
            else:
                spans = out.setdefault(name, {}).setdefault(key, [])
                spans.append((label, ts, te, data["text"][cs:ce]))  # type: ignore[union-attr]
    return out


def add_keywords(reviews: Reviews, source: str = KEYWORDS) -> list[int]:
    with session_scope(reviews.engine) as session:
        added = add_labeling_functions(session, project_id=reviews.project_id, task_id=reviews.sentiment,
                                       source=source)
        return [h.id or 0 for h in added]


def test_add_from_file_makes_one_self_contained_heuristic_per_public_function(reviews: Reviews) -> None:
    with session_scope(reviews.engine) as session:
        added = add_from_file(session, project_id=reviews.project_id, task_id=reviews.sentiment,
                              path=DATA / "lf_keywords.py")
        codes = {h.name: h.code for h in added}
    assert list(codes) == ["positive_words", "negative_regex"]
    positive = codes["positive_words"]
    assert "import re" in positive and "POSITIVE = " in positive and "def _words" in positive
    assert "def negative_regex" not in positive  # the other heuristic is not part of this one
    assert "def positive_words" not in codes["negative_regex"]
    with session_scope(reviews.engine) as session, pytest.raises(ConflictError, match="positive_words"):
        add_from_file(session, project_id=reviews.project_id, task_id=reviews.sentiment,
                      path=DATA / "lf_keywords.py")


def test_split_keeps_public_functions_that_another_one_calls() -> None:
    parts = split_functions("def base(record):\n    return 'a'\n\n\ndef twice(record):\n    return base(record)\n")
    assert "def base" in parts["twice"]
    assert "def twice" not in parts["base"]


def test_run_stores_votes_and_reports_a_failing_heuristic(reviews: Reviews) -> None:
    add_keywords(reviews, KEYWORDS + '''

def boom(record):
    return "positive" if 1 / ("nothing" not in record["text"]) else None


def typo(record):
    return "postive" if "good" in record["text"] else None
''')
    seen: list[tuple[int, int]] = []
    runs = run_heuristics(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment,
                          progress=lambda d, t: seen.append((d, t)))
    outcomes = {o.name: o for o in runs}
    assert seen[-1] == (30, 30)  # 6 records × 5 heuristics
    assert outcomes["boom"].state == "failed"
    assert "ZeroDivisionError" in (outcomes["boom"].error or "") and "record '6'" in (outcomes["boom"].error or "")
    assert outcomes["boom"].failed_record == "6"
    assert outcomes["typo"].invalid_labels == ("postive",) and outcomes["typo"].hits == 0
    stored = votes(reviews.engine, reviews.sentiment)
    assert stored == {
        "good": {"1": "positive", "3": "positive", "5": "positive"},
        "bad": {"2": "negative", "3": "negative"},
        "fun": {"4": "positive", "5": "positive"},
    }
    with session_scope(reviews.engine) as session:
        boom = get_heuristic(session, project_id=reviews.project_id, task_id=reviews.sentiment, name="boom")
        typo = get_heuristic(session, project_id=reviews.project_id, task_id=reviews.sentiment, name="typo")
        assert (boom.last_run_state, boom.last_run_failed_record, boom.last_run_hits) == ("failed", "6", 0)
        assert typo.last_run_state == "finished" and typo.last_run_invalid_labels == ["postive"]
        good = get_heuristic(session, project_id=reviews.project_id, task_id=reviews.sentiment, name="good")
        assert good.description == "Says good."  # the docstring
        assert (good.last_run_version, good.last_run_hits) == (1, 3) and good.last_run_duration_s is not None


def test_rerun_replaces_votes_and_edits_bump_the_version(reviews: Reviews) -> None:
    ids = add_keywords(reviews)
    run_heuristics(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment, heuristic_ids=ids[:1])
    with session_scope(reviews.engine) as session:
        h = update_heuristic(session, heuristic_id=ids[0],
                             code='def good(record):\n    return "positive" if "movie" in record["text"] else None\n')
        assert h.version == 2
    run_heuristics(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment, heuristic_ids=ids[:1])
    assert votes(reviews.engine, reviews.sentiment) == {"good": {"1": "positive", "2": "positive"}}
    with session_scope(reviews.engine) as session:
        with pytest.raises(ValidationError, match="rename it in the code"):
            two = "def a(record):\n    pass\n\ndef b(record):\n    pass\n"
            update_heuristic(session, heuristic_id=ids[0], code=two)
        delete_heuristic(session, heuristic_id=ids[0])
    assert votes(reviews.engine, reviews.sentiment) == {}


def test_preview_runs_unsaved_code_on_one_record(reviews: Reviews) -> None:
    results = preview_code(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment,
                           code=KEYWORDS, record_key="3")
    assert [(r.name, r.state, r.output) for r in results] == [
        ("good", "finished", "positive"), ("bad", "finished", "negative"), ("fun", "finished", None)
    ]
    with session_scope(reviews.engine) as session:
        assert list_heuristics(session, project_id=reviews.project_id) == []  # nothing saved


def test_statistics_from_the_store_match_hand_counts(reviews: Reviews) -> None:
    add_keywords(reviews)
    run_heuristics(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment)
    with session_scope(reviews.engine) as session:
        stats = heuristic_statistics(session, project_id=reviews.project_id, task_id=reviews.sentiment)
    assert (stats.n_records, stats.n_manual, stats.heuristics) == (6, 4, ["good", "bad", "fun"])
    refinery = {(r["heuristic"], r["label"]): r for r in stats.as_dict()["refinery"]}
    assert set(refinery) == {("good", "positive"), ("bad", "negative"), ("fun", "positive")}
    good, bad, fun = refinery["good", "positive"], refinery["bad", "negative"], refinery["fun", "positive"]
    # good: records 1, 3, 5; fun also says positive on 5; bad disagrees on 3; manual: 1, 5 positive, 3 negative
    assert (good["coverage"], good["overlaps"], good["conflicts"]) == (3, 1, 1)
    assert (good["true_positives"], good["false_positives"]) == (2, 1)
    assert good["est_precision"] == pytest.approx(2 / 3)
    assert (bad["coverage"], bad["overlaps"], bad["conflicts"], bad["true_positives"], bad["false_positives"]) == (
        2, 0, 1, 2, 0)
    assert (fun["coverage"], fun["overlaps"], fun["conflicts"], fun["true_positives"], fun["false_positives"]) == (
        2, 1, 0, 1, 0)  # record 4 has no manual label: neither TP nor FP
    summary = stats.summary
    assert summary.loc["good", "coverage"] == pytest.approx(3 / 6)
    assert summary.loc["good", "overlaps"] == pytest.approx(2 / 6)  # records 3 and 5
    assert summary.loc["good", "conflicts"] == pytest.approx(1 / 6)
    assert (summary.loc["good", "correct"], summary.loc["good", "incorrect"]) == (2, 1)
    assert summary.loc["fun", "conflicts"] == 0
    assert stats.overlaps.loc["good"].tolist() == [3, 1, 1]
    assert stats.conflicts.loc["good"].tolist() == [0, 1, 0]
    assert stats.conflicts.loc["bad", "fun"] == 0


def test_stats_and_weak_supervision_from_the_cli(reviews: Reviews, capsys: pytest.CaptureFixture[str],
                                                 tmp_path) -> None:
    source = tmp_path / "lf.py"
    source.write_text(KEYWORDS)
    assert main(["heuristics", "add", "--project", "movies", "--task", "sentiment", "--file", str(source)]) == 0
    assert main(["heuristics", "run", "--project", "movies", "--task", "sentiment"]) == 0
    assert main(["ws", "run", "--project", "movies", "--task", "sentiment", "--model", "majority", "--json"]) == 0
    assert main(["stats", "--project", "movies", "--task", "sentiment", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    ws, stats = json.loads(out[-2]), json.loads(out[-1])
    assert (ws["model"], ws["labeled"], ws["records"]) == ("majority", 4, 6)  # record 3 is a tie, 6 has no vote
    assert stats["overlaps"]["good"] == {"good": 3, "bad": 1, "fun": 1}
    assert main(["heuristics", "disable", "--project", "movies", "--task", "sentiment", "--name", "bad"]) == 0
    assert main(["heuristics", "list", "--project", "movies", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}
    assert (listed["bad"]["enabled"], listed["good"]["enabled"], listed["good"]["hits"]) == (False, True, 3)


def test_external_votes_become_a_heuristic(reviews: Reviews) -> None:
    first, second = reviews.record_ids[:2]
    with session_scope(reviews.engine) as session:
        h = store_external_votes(session, project_id=reviews.project_id, task_id=reviews.sentiment,
                                 name="active_learner", votes={first: "positive", second: None},
                                 confidences={first: 0.9})
        assert (h.kind, h.last_run_hits) == ("external", 1)
        confidence = session.execute(
            select(LabelAssociation.confidence).where(LabelAssociation.heuristic_id == h.id)
        ).scalar_one()
    assert confidence == 0.9
    assert votes(reviews.engine, reviews.sentiment) == {"active_learner": {"1": "positive"}}


def test_extraction_end_to_end(reviews: Reviews) -> None:
    code = '''
FOODS = {"pizza", "pasta"}

def food_words(record):
    for i, token in enumerate(record["__tokens__"]):
        if token in FOODS:
            yield "FOOD", i, i + 1
'''
    with session_scope(reviews.engine) as session:
        add_labeling_functions(session, project_id=reviews.project_id, task_id=reviews.food, source=code)
        foods = create_list(session, project_id=reviews.project_id, name="dishes")
        add_terms(session, lookup_list=foods, values=["Pizza", "good fun"])
        add_lookup_heuristic(session, project_id=reviews.project_id, task_id=reviews.food, lookup_list="dishes",
                             label="FOOD")
    outcomes = run_heuristics(reviews.engine, project_id=reviews.project_id, task_id=reviews.food)
    assert [o.state for o in outcomes] == ["finished", "finished"]
    assert votes(reviews.engine, reviews.food) == {
        "food_words": {"5": [("FOOD", 3, 4, "pizza")]},
        "dishes_lookup": {"5": [("FOOD", 0, 2, "good fun"), ("FOOD", 3, 4, "pizza")]},
    }
    run = run_weak_supervision(reviews.engine, project_id=reviews.project_id, task_id=reviews.food,
                               model="majority")
    assert (run.n_labeled, run.n_labels) == (1, 2)
    with session_scope(reviews.engine) as session:
        spans = session.execute(
            select(LabelAssociation.token_start, LabelAssociation.token_end, LabelAssociation.char_start,
                   LabelAssociation.char_end, LabelAssociation.confidence, LabelAssociation.source_id)
            .where(LabelAssociation.task_id == reviews.food,
                   LabelAssociation.source_type == SourceType.WEAK_SUPERVISION.value)
            .order_by(LabelAssociation.token_start)
        ).all()
        stats = heuristic_statistics(session, project_id=reviews.project_id, task_id=reviews.food)
    assert [(s[0], s[1], s[2], s[3], s[5]) for s in spans] == [(0, 2, 0, 8, run.id), (3, 4, 14, 19, run.id)]
    assert spans[1][4] == 1.0  # both heuristics put "pizza" in a FOOD span
    rows = {r["heuristic"]: r for r in stats.as_dict()["refinery"]}
    assert (rows["dishes_lookup"]["coverage"], rows["dishes_lookup"]["hits"], rows["dishes_lookup"]["overlaps"]) == (
        1, 2, 1)
    assert stats.unit == "tokens" and stats.overlaps.loc["food_words", "dishes_lookup"] == 1


def test_run_sends_all_labeling_functions_in_one_sandbox_batch(reviews: Reviews, monkeypatch) -> None:
    import core.sandbox

    add_keywords(reviews)
    with session_scope(reviews.engine) as session:  # stored code that no longer parses fails on its own
        broken = add_labeling_functions(session, project_id=reviews.project_id, task_id=reviews.sentiment,
                                        source="def broken(record):\n    return None\n")[0]
        broken.code = "def broken(record):\n    return (\n"
    calls: list[list[str]] = []
    real = core.sandbox.run_programs

    def spy(programs, **options):
        calls.append([p.name for p in programs])
        return real(programs, **options)

    monkeypatch.setattr(core.sandbox, "run_programs", spy)
    outcomes = run_heuristics(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment)
    assert calls == [["good", "bad", "fun"]]  # the records are sent once, not once per heuristic
    assert [o.name for o in outcomes] == ["good", "bad", "fun", "broken"]
    assert outcomes[3].state == "failed" and "syntax error" in (outcomes[3].error or "")
    assert votes(reviews.engine, reviews.sentiment)["bad"] == {"2": "negative", "3": "negative"}


def test_multilabel_labeling_functions_store_every_label_and_polarity_lists_them_all(reviews: Reviews) -> None:
    from core.store.projects import get_project
    from core.store.tasks import create_task

    with session_scope(reviews.engine) as session:
        project = get_project(session, "movies")
        topics = create_task(session, project=project, name="topics", kind="multilabel",
                             labels=["plot", "food", "fun"]).id or 0
        add_labeling_functions(session, project_id=reviews.project_id, task_id=topics, source='''
def themes(record):
    text = record["text"]
    found = [name for name, word in (("plot", "movie"), ("food", "pizza"), ("fun", "fun")) if word in text]
    return found + ["gossip"] if "tonight" in text else found or None
''')
    outcome = run_heuristics(reviews.engine, project_id=reviews.project_id, task_id=topics)[0]
    assert outcome.state == "finished" and outcome.invalid_labels == ("gossip",)
    stored = sorted(
        (key, label) for key, label, _ in _multilabel_votes(reviews.engine, topics)
    )
    assert stored == [("1", "plot"), ("2", "plot"), ("4", "fun"), ("5", "food"), ("5", "fun")]
    with session_scope(reviews.engine) as session:
        stats = heuristic_statistics(session, project_id=reviews.project_id, task_id=topics)
    assert stats.summary.loc["themes", "polarity"] == ["plot", "food", "fun"]  # in the task's label order


def _multilabel_votes(engine, task_id: int) -> list[tuple[str, str, str]]:
    stmt = (
        select(Record.key, Label.name, LabelAssociation.source_name)
        .join(Record, Record.id == LabelAssociation.record_id)
        .join(Label, Label.id == LabelAssociation.label_id)
        .where(LabelAssociation.task_id == task_id, LabelAssociation.source_type == SourceType.HEURISTIC.value)
    )
    with session_scope(engine) as session:
        return [tuple(row) for row in session.execute(stmt).all()]


def test_multilabel_polarity_lists_labels_a_heuristic_only_gave_together_with_another(reviews: Reviews) -> None:
    from core.store.projects import get_project
    from core.store.tasks import create_task

    with session_scope(reviews.engine) as session:
        project = get_project(session, "movies")
        topics = create_task(session, project=project, name="topics", kind="multilabel",
                             labels=["plot", "food", "fun"]).id or 0
        store_external_votes(session, project_id=reviews.project_id, task_id=topics, name="both",
                             votes={reviews.record_ids[4]: ["food", "fun"]})
        stats = heuristic_statistics(session, project_id=reviews.project_id, task_id=topics)
    assert stats.summary.loc["both", "polarity"] == ["food", "fun"]
