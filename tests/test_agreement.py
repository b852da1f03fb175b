"""Agreement numbers on hand-computed examples, against scikit-learn, and from the store and the CLI."""

from __future__ import annotations

import json
import math

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from core.agreement import (
    agreement_matrix,
    agreement_report,
    cohen_kappa,
    krippendorff_alpha,
    pairwise_agreement,
    percent_agreement,
    token_answers,
)
from core.cli import main
from core.errors import ValidationError
from core.labeling import add_span, get_or_create_annotator, set_label, set_labels
from core.store import session_scope
from core.store.slices import save_slice
from tests.fixtures_labeling import LabelingProject, labeling_project_fixture  # noqa: F401

N = None


@pytest.mark.parametrize("seed", range(40))
def test_alpha_matches_the_krippendorff_package_on_random_data_with_gaps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    units, coders, categories = int(rng.integers(3, 40)), int(rng.integers(2, 6)), int(rng.integers(2, 5))
    codes = rng.integers(0, categories, size=(units, coders)).astype(float)
    codes[rng.random((units, coders)) < rng.uniform(0.0, 0.5)] = np.nan
    # Ours takes items × annotators of any hashable labels, None where missing.
    ours = krippendorff_alpha([[None if np.isnan(v) else f"label {int(v)}" for v in row] for row in codes])
    pairable = codes[(~np.isnan(codes)).sum(axis=1) >= 2]
    if len(set(pairable[~np.isnan(pairable)].tolist())) < 2:
        assert math.isnan(ours)  # alpha is undefined with one category or nothing pairable
        return
    # The package takes coders × units, NaN where missing.
    reference = krippendorff.alpha(reliability_data=codes.T, level_of_measurement="nominal")
    assert ours == pytest.approx(reference, abs=1e-9)


def test_percent_and_kappa_by_hand() -> None:
    a = ["y", "y", "n", "n", "y"]
    b = ["y", "n", "n", "n", "y"]
    assert percent_agreement(a, b) == pytest.approx(80.0)
    # p_o = 0.8; p_e = 3/5·2/5 + 2/5·3/5 = 0.48; kappa = 0.32 / 0.52
    assert cohen_kappa(a, b) == pytest.approx(0.32 / 0.52)


def test_missing_answers_are_left_out_of_a_pair() -> None:
    a = ["y", N, "n", float("nan"), "y"]
    b = ["y", "n", N, "n", "n"]
    assert percent_agreement(a, b) == pytest.approx(50.0)  # items 0 and 4 only
    assert math.isnan(percent_agreement([N, "y"], ["n", N]))
    assert math.isnan(cohen_kappa([N], ["y"]))
    with pytest.raises(ValidationError, match="a is length 2 and b is length 1"):
        percent_agreement(["y", "n"], ["y"])


@pytest.mark.parametrize("seed", range(6))
def test_kappa_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = ["spam", "ham", "other"][: 2 + seed % 2]
    a = rng.choice(labels, size=40)
    # b agrees with a most of the time, so kappa is far from 0.
    b = np.where(rng.random(40) < 0.7, a, rng.choice(labels, size=40))
    assert cohen_kappa(list(a), list(b)) == pytest.approx(cohen_kappa_score(a, b))


def test_kappa_is_undefined_when_both_use_one_label_only() -> None:
    assert math.isnan(cohen_kappa(["y", "y"], ["y", "y"]))
    with pytest.warns(UserWarning):  # scikit-learn agrees: undefined, reported as NaN
        assert math.isnan(cohen_kappa_score(["y", "y"], ["y", "y"]))


def test_krippendorff_alpha_by_hand() -> None:
    # Coincidences: o_aa = 2, o_ab = o_ba = 1, o_bb = 2; n_a = n_b = 3, n = 6.
    # alpha = 1 − (n − 1)·(o_ab + o_ba) / (n_a·n_b + n_b·n_a) = 1 − 5·2 / 18 = 4/9
    assert krippendorff_alpha([("a", "a"), ("a", "b"), ("b", "b")]) == pytest.approx(4 / 9)
    # Units labeled by one coder only are not pairable and change nothing.
    assert krippendorff_alpha([("a", "a"), ("a", "b"), ("b", "b"), ("a", N)]) == pytest.approx(4 / 9)
    assert math.isnan(krippendorff_alpha([("a", "a"), ("a", "a")]))  # one category: undefined
    assert math.isnan(krippendorff_alpha([("a", N)]))


def test_krippendorff_alpha_on_krippendorffs_own_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", 4 observers × 12 units: nominal alpha 0.743.
    rows = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
        "C": [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
    }
    assert krippendorff_alpha(pd.DataFrame(rows, dtype=object)) == pytest.approx(0.743, abs=5e-4)


def test_pairwise_frame_and_matrix() -> None:
    answers = pd.DataFrame({"ann": ["y", "y", "n", N], "bob": ["y", "n", "n", "y"], "cy": [N, N, N, "y"]},
                           dtype=object)
    pairs = pairwise_agreement(answers)
    assert pairs[["a", "b", "n"]].values.tolist() == [["ann", "bob", 3], ["ann", "cy", 0], ["bob", "cy", 1]]
    assert pairs["percent"].iloc[0] == pytest.approx(200 / 3)
    assert pairs["cohen_kappa"].iloc[0] == pytest.approx(cohen_kappa_score(["y", "y", "n"], ["y", "n", "n"]))
    matrix = agreement_matrix(answers)
    assert matrix.loc["ann", "bob"] == matrix.loc["bob", "ann"] == pytest.approx(200 / 3)
    assert matrix.loc["bob", "cy"] == 100.0 and matrix.loc["ann", "ann"] == 100.0
    assert math.isnan(matrix.loc["ann", "cy"])
    assert agreement_matrix(answers, value="n").loc["ann", "ann"] == 3


def test_token_answers_tag_outside_tokens() -> None:
    frame = token_answers({("r1", "ann"): [("PER", 0, 1)], ("r1", "bob"): [("PER", 0, 2)], ("r2", "ann"): []},
                          {"r1": 3, "r2": 2})
    assert frame["ann"].tolist() == ["PER", "O", "O", "O", "O"]
    assert frame["bob"].tolist() == ["PER", "PER", "O", None, None]


def _names(engine, *names: str) -> list[int]:
    with session_scope(engine) as s:
        return [get_or_create_annotator(s, n).id or 0 for n in names]


def test_report_for_classification_multilabel_and_extraction(labeling_project: LabelingProject) -> None:
    p = labeling_project
    ann, bob = _names(p.engine, "ann", "bob")
    r = p.record_ids
    with session_scope(p.engine) as s:
        for rid, x, y in [(r[0], "positive", "positive"), (r[1], "negative", "negative"),
                          (r[2], "neutral", "positive"), (r[3], "negative", "negative")]:
            set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=ann, label=x)
            set_label(s, task_id=p.sentiment, record_id=rid, annotator_id=bob, label=y)
        set_label(s, task_id=p.sentiment, record_id=r[4], annotator_id=ann, label="neutral")  # ann only
        set_labels(s, task_id=p.topics, record_id=r[0], annotator_id=ann, labels=["price", "quality"])
        set_labels(s, task_id=p.topics, record_id=r[0], annotator_id=bob, labels=["quality", "price"])
        set_labels(s, task_id=p.topics, record_id=r[1], annotator_id=ann, labels=["service"])
        set_labels(s, task_id=p.topics, record_id=r[1], annotator_id=bob, labels=["service", "price"])
        # "Bob works for Google in Paris": 6 tokens; they agree on PER, not on Google.
        add_span(s, task_id=p.entities, record_id=r[4], annotator_id=ann, label="PER", token_start=0, token_end=1)
        add_span(s, task_id=p.entities, record_id=r[4], annotator_id=ann, label="ORG", token_start=3, token_end=4)
        add_span(s, task_id=p.entities, record_id=r[4], annotator_id=bob, label="PER", token_start=0, token_end=1)
        add_span(s, task_id=p.entities, record_id=r[4], annotator_id=bob, label="LOC", token_start=3, token_end=4)
        sentiment = agreement_report(s, task_id=p.sentiment)
        sliced = agreement_report(s, task_id=p.sentiment, record_ids=[r[0], r[1]])
        topics = agreement_report(s, task_id=p.topics)
        entities = agreement_report(s, task_id=p.entities)
    x = ["positive", "negative", "neutral", "negative"]
    y = ["positive", "negative", "positive", "negative"]
    assert sentiment.as_dict()["pairs"] == [{"a": "ann", "b": "bob", "n": 4, "percent": 75.0,
                                             "cohen_kappa": pytest.approx(cohen_kappa_score(x, y), abs=1e-6)}]
    assert sentiment.items == 4
    assert sentiment.alpha == pytest.approx(krippendorff_alpha(list(zip(x, y, strict=True))))
    assert sliced.pairs["percent"].tolist() == [100.0]
    assert topics.pairs[["n", "percent"]].values.tolist() == [[2, 50.0]]  # label sets compared as wholes
    assert entities.level == "token"
    assert entities.pairs[["n", "percent"]].values.tolist() == [[1, pytest.approx(500 / 6)]]
    tags_a = ["PER", "O", "O", "ORG", "O", "O"]
    tags_b = ["PER", "O", "O", "LOC", "O", "O"]
    assert entities.pairs["cohen_kappa"].iloc[0] == pytest.approx(cohen_kappa_score(tags_a, tags_b))
    assert entities.pairs["cohen_kappa"].iloc[0] == pytest.approx(13 / 19)


def test_cli_agreement_json(labeling_project: LabelingProject, capsys: pytest.CaptureFixture[str]) -> None:
    for who, labels in (("ann", ["positive", "negative", "neutral"]), ("bob", ["positive", "negative", "positive"]),
                        ("cy", ["positive", "positive", "neutral"])):
        for key, name in zip(("1", "2", "3"), labels, strict=True):
            assert main(["label", "--project", "reviews", "--task", "sentiment", "--record", key, "--label", name,
                         "--annotator", who]) == 0
    capsys.readouterr()
    assert main(["agreement", "--project", "reviews", "--task", "sentiment", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    # Exactly the object: nothing but pairs and alpha at the top level.
    assert list(payload) == ["pairs", "krippendorff_alpha"]
    assert [(p["a"], p["b"], p["n"]) for p in payload["pairs"]] == [("ann", "bob", 3), ("ann", "cy", 3),
                                                                    ("bob", "cy", 3)]
    assert set(payload["pairs"][0]) == {"a", "b", "n", "percent", "cohen_kappa"}
    assert payload["pairs"][0]["percent"] == pytest.approx(200 / 3, abs=1e-4)
    assert payload["pairs"][0]["cohen_kappa"] == pytest.approx(
        cohen_kappa_score(["positive", "negative", "neutral"], ["positive", "negative", "positive"]), abs=1e-6)
    assert payload["krippendorff_alpha"] == pytest.approx(
        krippendorff_alpha([("positive",) * 3, ("negative", "negative", "positive"), ("neutral", "positive",
                                                                                       "neutral")]), abs=1e-6)
    assert main(["agreement", "--project", "reviews", "--task", "sentiment"]) == 0
    out = capsys.readouterr().out
    assert "Krippendorff's alpha (nominal)" in out and "ann" in out
    assert "Task 'sentiment' (record level)" in out  # the context the JSON leaves out
    assert main(["agreement", "--project", "reviews", "--task", "sentiment", "--slice", "nope"]) == 1
    assert "No slice named 'nope'" in capsys.readouterr().err
    with session_scope(labeling_project.engine) as s:
        save_slice(s, project_id=labeling_project.project_id, name="first two", kind="static",
                   record_ids=labeling_project.record_ids[:2])
    assert main(["agreement", "--project", "reviews", "--task", "sentiment", "--slice", "first two", "--json"]) == 0
    sliced = json.loads(capsys.readouterr().out)
    assert [(p["a"], p["b"], p["n"], p["percent"]) for p in sliced["pairs"]] == [
        ("ann", "bob", 2, 100.0), ("ann", "cy", 2, 50.0), ("bob", "cy", 2, 50.0)]
