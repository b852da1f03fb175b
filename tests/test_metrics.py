"""Dashboard numbers against hand counts (tests/fixtures_browse.py has the worked fixture)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from core.errors import ValidationError
from core.filters import AttributeFilter, AttributeOp, Filter
from core.metrics import (
    confidence_histogram,
    confusion_matrix,
    label_distribution,
    progress_frame,
    row_rates,
    task_metrics,
    token_confusion,
    token_tags,
)
from core.slices import save_filter_slice
from core.store import session_scope
from tests.fixtures_browse import BrowseFixture, build_browse_fixture
from tests.fixtures_pg import db_engine, db_url, pg_cluster, pg_url  # noqa: F401

# --- pure functions -----------------------------------------------------------------------------------------------


def test_confusion_matrix_counts_pairs_in_label_order() -> None:
    counts = confusion_matrix(["a", "a", "b", "c"], ["a", "b", "b", "a"], labels=["b", "a"])
    assert list(counts.index) == list(counts.columns) == ["b", "a", "c"]  # listed first, then seen
    assert counts.to_numpy().tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 0]]
    assert counts.index.name == "manual" and counts.columns.name == "weak_supervision"
    rates = row_rates(counts)
    assert rates.loc["a"].tolist() == [0.5, 0.5, 0.0]
    assert rates.loc["c", "a"] == 1.0
    empty = row_rates(confusion_matrix([], [], labels=["x"]))
    assert np.isnan(empty.loc["x", "x"])
    with pytest.raises(ValidationError, match="same length, but manual is length 1 and weak is length 0"):
        confusion_matrix(["a"], [])


def test_token_confusion_has_an_outside_class() -> None:
    # "Barack Obama visited Paris": manual PER 0-2, LOC 3-4; weak PER 1-2, ORG 3-4.
    counts = token_confusion([([("PER", 0, 2), ("LOC", 3, 4)], [("PER", 1, 2), ("ORG", 3, 4)], 4)],
                             labels=["PER", "LOC", "ORG"])
    assert list(counts.index) == ["PER", "LOC", "ORG", "O"]
    assert counts.loc["PER"].tolist() == [1, 0, 0, 1]
    assert counts.loc["LOC"].tolist() == [0, 0, 1, 0]
    assert counts.loc["O"].tolist() == [0, 0, 0, 1]
    assert token_tags([("X", 1, 3)], 4) == ["O", "X", "X", "O"]
    with pytest.raises(ValidationError, match=r"covers tokens 2\.\.4, but the text has 4 tokens"):
        token_tags([("X", 2, 5)], 4)


def test_distribution_histogram_and_progress() -> None:
    dist = label_distribution(["a", "b", "a"], ["b", "c"], labels=["a", "b"])
    assert dist.to_dict("index") == {"a": {"manual": 2, "weak_supervision": 0},
                                     "b": {"manual": 1, "weak_supervision": 1},
                                     "c": {"manual": 0, "weak_supervision": 1}}
    hist = confidence_histogram([0.0, 0.1, 0.7, 0.95, 1.0, None, float("nan")], bins=10)
    assert hist["count"].tolist() == [1, 1, 0, 0, 0, 0, 0, 1, 0, 2]
    assert hist["bin_start"].tolist()[7] == 0.7
    assert confidence_histogram([0.5, 0.49], bins=2)["count"].tolist() == [1, 1]
    overall, people = progress_frame(records=10, labeled=4, valid=3, weak=8, by_annotator={"bo": 1, "al": 4})
    assert overall.set_index("measure")["records"].to_dict() == {
        "records": 10, "labeled manually": 4, "valid manual label": 3, "weakly supervised": 8, "unlabeled": 6}
    assert people["annotator"].tolist() == ["al", "bo"] and people["share"].tolist() == [0.4, 0.1]


# --- from the store -----------------------------------------------------------------------------------------------


def test_task_metrics_of_a_classification_task(db_engine: Engine) -> None:  # noqa: F811
    fx = build_browse_fixture(db_engine)
    with session_scope(db_engine) as session:
        m = task_metrics(session, project_id=fx.project_id, task="spam")
    assert m.records == 6
    assert m.progress.set_index("measure")["records"].to_dict() == {
        "records": 6, "labeled manually": 4, "valid manual label": 3, "weakly supervised": 5, "unlabeled": 2}
    assert dict(zip(m.by_annotator["annotator"], m.by_annotator["records"], strict=True)) == {"alice": 4, "bob": 3}
    assert m.distribution.to_dict("index") == {"spam": {"manual": 1, "weak_supervision": 3},
                                               "ham": {"manual": 2, "weak_supervision": 2}}
    # Records with a valid manual label and a weak label: r1 (spam/spam), r2 (ham/spam), r4 (ham/spam).
    assert m.confusion.to_numpy().tolist() == [[1, 0], [2, 0]]
    assert m.confusion_rates.to_numpy().tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert m.confidence["count"].tolist() == [0, 0, 0, 0, 1, 1, 0, 1, 0, 2]  # 0.4 0.55 0.7 0.9 0.95
    stats = m.heuristics.set_index(["heuristic", "label"])
    assert stats.loc[("h1", "spam"), ["coverage", "overlaps", "conflicts", "true_positives",
                                      "false_positives"]].tolist() == [2, 1, 1, 1, 1]
    assert stats.loc[("h2", "ham"), "est_precision"] == 1.0
    assert stats.loc[("h2", "spam"), "est_precision"] == 0.5
    pair = m.agreement.pairs.iloc[0]
    assert (pair["n"], round(pair["percent"], 2)) == (3, 33.33)
    data = m.as_dict()
    assert data["confusion"]["labels"] == ["spam", "ham"]
    assert data["confusion"]["matrix"] == [[1, 0], [2, 0]]
    assert data["distribution"] == {"manual": {"spam": 1, "ham": 2}, "weak_supervision": {"spam": 3, "ham": 2}}
    # Every number of the Dashboard: the progress bar's share and the heuristic table too.
    assert m.labeled_share == pytest.approx(4 / 6)
    assert data["progress_share"]["labeled manually"] == pytest.approx(4 / 6, abs=1e-6)
    assert data["annotators_share"] == {"alice": pytest.approx(4 / 6, abs=1e-6), "bob": 0.5}
    by_pair = {(h["heuristic"], h["label"]): h for h in data["heuristics"]}
    assert len(by_pair) == len(m.heuristics)
    assert by_pair[("h1", "spam")] == {"heuristic": "h1", "label": "spam", "coverage": 2, "hits": 2, "overlaps": 1,
                                       "conflicts": 1, "true_positives": 1, "false_positives": 1,
                                       "est_precision": 0.5}
    json.dumps(data)  # plain JSON values only


def test_task_metrics_by_filter_and_slice(engine: Engine) -> None:
    fx = build_browse_fixture(engine)
    ads = Filter((AttributeFilter("channel", AttributeOp.EQUALS, ("ads",)),))
    with session_scope(engine) as session:
        save_filter_slice(session, project_id=fx.project_id, name="ads", flt=ads)
        by_slice = task_metrics(session, project_id=fx.project_id, task="spam", slice_name="ads")
        by_filter = task_metrics(session, project_id=fx.project_id, task="spam", flt=ads)
    for m in (by_slice, by_filter):
        assert m.records == 3
        assert m.distribution.to_dict("index") == {"spam": {"manual": 1, "weak_supervision": 3},
                                                   "ham": {"manual": 2, "weak_supervision": 0}}
        assert m.confusion.to_numpy().tolist() == [[1, 0], [2, 0]]
        assert m.confidence["count"].sum() == 3
        assert m.by_annotator.set_index("annotator")["records"].to_dict() == {"alice": 3, "bob": 2}


def test_task_metrics_of_an_extraction_task_per_token(engine: Engine) -> None:
    fx: BrowseFixture = build_browse_fixture(engine)
    with session_scope(engine) as session:
        m = task_metrics(session, project_id=fx.project_id, task="ner")
    # r2 "Hello Alice": manual O PER, weak O ORG; r5 "Lunch with Bob": manual O O PER, weak O O PER.
    assert m.confusion_level == "token"
    expected = pd.DataFrame([[1, 1, 0], [0, 0, 0], [0, 0, 3]], index=["PER", "ORG", "O"], columns=["PER", "ORG", "O"])
    assert m.confusion.to_numpy().tolist() == expected.to_numpy().tolist()
    assert list(m.confusion.index) == ["PER", "ORG", "O"]
    assert m.distribution.to_dict("index") == {"PER": {"manual": 2, "weak_supervision": 1},
                                               "ORG": {"manual": 0, "weak_supervision": 1}}
    assert m.confidence["count"].tolist()[6] == 1 and m.confidence["count"].tolist()[8] == 1  # 0.6 and 0.8
    stats = m.heuristics.set_index(["heuristic", "label"])
    assert stats.loc[("h1", "PER"), "hits"] == 2


def test_task_metrics_of_a_multilabel_task_has_heuristic_statistics_per_label(engine: Engine) -> None:
    from core.store.models import LabelAssociation, SourceType
    from core.store.projects import get_project
    from core.store.tasks import create_task, list_labels

    fx = build_browse_fixture(engine)
    with session_scope(engine) as session:
        task = create_task(session, project=get_project(session, "browse"), name="topics", kind="multilabel",
                           labels=["money", "people"])
        label = {lb.name: lb.id for lb in list_labels(session, task.id or 0)}

        def add(key: str, name: str, **kw: object) -> None:
            session.add(LabelAssociation(project_id=fx.project_id, record_id=fx.ids[key], task_id=task.id or 0,
                                         label_id=label[name] or 0, **kw))

        alice = fx.annotators["alice"]
        for key, names in {"r1": ["money"], "r2": ["people"], "r5": ["people", "money"]}.items():
            for name in names:
                add(key, name, source_type=SourceType.MANUAL.value, annotator_id=alice)
        for heuristic, key, name in [("hA", "r1", "money"), ("hA", "r2", "money"), ("hA", "r5", "people"),
                                     ("hB", "r1", "money"), ("hB", "r1", "people"), ("hB", "r3", "people")]:
            add(key, name, source_type=SourceType.HEURISTIC.value, source_name=heuristic)
        session.flush()
        m = task_metrics(session, project_id=fx.project_id, task="topics", with_agreement=False)
    # Per label, by hand: hA money on r1 (manual money: TP) and r2 (manual people: FP), hB also money on r1
    # (an overlap); hA people on r5 (TP); hB people on r1 (FP) and r3 (no manual label: not counted).
    # A vote for another label is no conflict: a record may have both labels.
    columns = ["heuristic", "label", "coverage", "overlaps", "conflicts", "true_positives", "false_positives",
               "est_precision"]
    assert m.heuristics[columns].values.tolist() == [
        ["hA", "money", 2, 1, 0, 1, 1, 0.5],
        ["hA", "people", 1, 0, 0, 1, 0, 1.0],
        ["hB", "money", 1, 1, 0, 1, 0, 1.0],
        ["hB", "people", 2, 0, 0, 0, 1, 0.0],
    ]
    assert [h["label"] for h in m.as_dict()["heuristics"]] == ["money", "people", "money", "people"]
