"""Label models, multi-label and extraction helpers, and applying heuristics (core.labelmodels, core.apply)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.apply import apply_heuristics
from core.errors import LoupeError, ValidationError
from core.labelmodels import (
    DEFAULT_MODEL,
    MODELS,
    DawidSkene,
    MajorityVote,
    PredictedSpan,
    RefineryWeightedVote,
    fit_predict_extraction,
    fit_predict_multilabel,
    make_label_model,
    multilabel_from_binary,
    multilabel_to_binary,
    multilabel_votes_from_lists,
    refinery_extraction,
    refinery_sigmoid,
    spans_from_token_labels,
    token_votes_from_spans,
)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-(7.0 * x - 3.0)))


def synthetic(
    n: int, accuracies: list[float], coverages: list[float], *, k: int = 2, seed: int = 0, balance=None
) -> tuple[np.ndarray, np.ndarray]:
    """Independent heuristics with known accuracy; a wrong vote picks another class uniformly."""
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=balance)
    L = np.full((n, len(accuracies)), -1)
    for j, (acc, cov) in enumerate(zip(accuracies, coverages, strict=True)):
        fire = rng.random(n) < cov
        right = rng.random(n) < acc
        wrong = (y + rng.integers(1, k, size=n)) % k
        L[fire, j] = np.where(right, y, wrong)[fire]
    return L, y


# --------------------------------------------------------------------------- majority vote


def test_majority_vote_ties_abstain_by_default_and_lowest_on_request():
    L = np.array([[0, 0, 1], [0, 1, -1], [-1, -1, -1], [1, 1, 1], [2, 1, -1]])
    model = MajorityVote(3).fit(L)
    labels, conf = model.predict_with_confidence(L)
    assert labels.tolist() == [0, -1, -1, 1, -1]
    assert conf == pytest.approx([2 / 3, 0.0, 0.0, 1.0, 0.0])
    lowest = MajorityVote(3, tie_break="lowest").fit(L)
    assert lowest.predict(L).tolist() == [0, 0, -1, 1, 1]


def test_majority_vote_weighs_votes_by_confidence():
    L = np.array([[0, 1, 1]])
    C = np.array([[1.0, 0.3, 0.3]])
    model = MajorityVote().fit(L)
    assert model.predict(L).tolist() == [1]
    assert model.predict(L, C=C).tolist() == [0]
    assert model.predict_proba(L, C=C)[0] == pytest.approx([1 / 1.6, 0.6 / 1.6])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_records_without_votes_get_zero_probabilities_and_no_label(name):
    L, y = synthetic(400, [0.8, 0.7, 0.9], [0.5, 0.5, 0.5], seed=1)
    L[:5] = -1
    model = make_label_model(name).fit(L, y=np.where(np.arange(400) < 50, y, -1))
    proba = model.predict_proba(L)
    assert proba.shape == (400, 2)
    assert np.all(proba[:5] == 0.0)
    labels, conf = model.predict_with_confidence(L)
    assert labels[:5].tolist() == [-1] * 5
    assert conf[:5].tolist() == [0.0] * 5
    voted = (L >= 0).any(axis=1)
    assert np.allclose(proba[voted].sum(axis=1)[proba[voted].sum(axis=1) > 0], 1.0)


# --------------------------------------------------------------------------- refinery

# Hand example. Precision per heuristic and label against y (rows 0-3 labeled):
#   h0 label 0: rows 0 (TP), 1 (FP), 2 (TP) -> 2/3;  h0 label 1: row 3 (TP) -> 1
#   h1 label 0: rows 0, 2 (TP) -> 1;                h1 label 1: only row 4, unlabeled -> 0 (refinery)
#   h2 label 1: rows 0 (FP), 1 (TP), 3 (TP) -> 2/3
REFINERY_L = np.array([[0, 0, 1], [0, -1, 1], [0, 0, -1], [1, -1, 1], [0, 1, 1], [-1, 0, -1]])
REFINERY_Y = np.array([0, 1, 0, 1, -1, -1])


def test_refinery_precision_and_margin_sigmoid_by_hand():
    model = RefineryWeightedVote().fit(REFINERY_L, y=REFINERY_Y)
    assert model.precision_ == pytest.approx(np.array([[2 / 3, 1.0], [1.0, 0.0], [0.0, 2 / 3]]))
    labels, conf = model.predict_with_confidence(REFINERY_L)
    # row 0: S = (2/3 + 1, 2/3), m = 1;  row 1: 2/3 vs 2/3, m = 0 -> none
    # row 2: m = 5/3;  row 3: m = 5/3;  row 4: (2/3, 0 + 2/3), m = 0 -> none;  row 5: m = 1
    assert labels.tolist() == [0, -1, 0, 1, -1, 0]
    assert conf == pytest.approx([0.9820137900, 0.0, sigmoid(5 / 3), sigmoid(5 / 3), 0.0, 0.9820137900])
    assert conf[2] == pytest.approx(0.9998277974, abs=1e-9)  # 1 / (1 + e^-(35/3 - 3))


def test_refinery_unmeasured_precision_is_an_explicit_choice():
    model = RefineryWeightedVote(unmeasured_precision=0.8).fit(REFINERY_L, y=REFINERY_Y)
    labels, conf = model.predict_with_confidence(REFINERY_L)
    # row 4: S = (2/3, 0.8 + 2/3), m = 0.8
    assert labels[4] == 1
    assert conf[4] == pytest.approx(sigmoid(0.8))


def test_refinery_without_manual_labels_assumes_precision_point_eight():
    model = RefineryWeightedVote().fit(REFINERY_L)
    assert np.all(model.precision_ == 0.8)
    labels, conf = model.predict_with_confidence(REFINERY_L)
    assert labels.tolist() == [0, -1, 0, 1, 1, 0]  # row 1 is one vote each way; row 4 two against one
    assert conf[0] == pytest.approx(0.930861940)  # m = 1.6 - 0.8
    assert conf[4] == pytest.approx(0.930861940)
    assert conf[2] == pytest.approx(sigmoid(1.6))


def test_refinery_confidence_scales_the_weight():
    L = np.array([[0, 1]])
    model = RefineryWeightedVote().fit(L)
    labels, conf = model.predict_with_confidence(L, C=np.array([[1.0, 0.5]]))
    assert labels.tolist() == [0]
    assert conf[0] == pytest.approx(sigmoid(0.8 - 0.4))
    assert refinery_sigmoid(3 / 7) == pytest.approx(0.5)


# --------------------------------------------------------------------------- Dawid–Skene


def test_dawid_skene_recovers_accuracies_and_class_balance():
    accuracies = [0.9, 0.8, 0.7, 0.65, 0.85, 0.6]
    L, y = synthetic(20_000, accuracies, [0.6, 0.5, 0.4, 0.7, 0.3, 0.5], seed=3, balance=[0.3, 0.7])
    model = DawidSkene().fit(L)
    assert model.accuracy_ == pytest.approx(accuracies, abs=0.03)
    covered = (L >= 0).any(axis=1)
    assert model.class_balance_ == pytest.approx(np.bincount(y[covered]) / covered.sum(), abs=0.03)
    pred = model.predict(L)
    majority = MajorityVote().fit(L).predict(L)
    assert np.mean(pred == y) > np.mean(majority == y) + 0.02


def test_dawid_skene_three_classes():
    accuracies = [0.85, 0.75, 0.7, 0.6]
    L, _ = synthetic(15_000, accuracies, [0.7, 0.7, 0.6, 0.8], k=3, seed=4)
    model = DawidSkene(3).fit(L)
    assert model.accuracy_ == pytest.approx(accuracies, abs=0.03)
    assert model.confusion_.shape == (4, 3, 4)
    assert np.allclose(model.confusion_.sum(axis=2), 1.0)


def test_dawid_skene_uses_manual_labels():
    # Three heuristics that are usually wrong: without labels EM believes the majority and
    # learns them as accurate; with manual labels it must learn the truth.
    L, y = synthetic(6000, [0.25, 0.3, 0.2], [0.9, 0.9, 0.9], seed=5)
    unsupervised = DawidSkene().fit(L)
    assert np.all(unsupervised.accuracy_ > 0.5)
    supervised = DawidSkene().fit(L, y=y)
    assert supervised.accuracy_ == pytest.approx([0.25, 0.3, 0.2], abs=0.03)
    assert np.mean(supervised.predict(L) == y) > 0.7


def test_dawid_skene_zero_confidence_vote_is_an_abstain():
    L, _ = synthetic(2000, [0.8, 0.7, 0.9], [0.6, 0.6, 0.6], seed=6)
    C = np.ones(L.shape)
    C[:, 2] = 0.0
    with_zero = DawidSkene().fit(L, C=C)
    without = DawidSkene().fit(np.where(np.arange(3) == 2, -1, L))
    keep = (L[:, :2] >= 0).any(axis=1)
    assert with_zero.predict_proba(L, C=C)[keep] == pytest.approx(
        without.predict_proba(np.where(np.arange(3) == 2, -1, L))[keep], abs=1e-6
    )


@pytest.mark.parametrize(
    ("k", "accuracies", "coverages", "with_labels"),
    [
        (2, [0.9, 0.8, 0.7, 0.65, 0.85, 0.6], [0.3, 0.2, 0.25, 0.1, 0.15, 0.3], False),
        (3, [0.85, 0.6, 0.7, 0.55, 0.75], [0.5, 0.4, 0.3, 0.6, 0.2], True),
    ],
)
def test_dawid_skene_acceleration_ends_at_the_em_fixed_point(k, accuracies, coverages, with_labels):
    # SQUAREM takes fewer steps; its answer must be near the point EM converges to. The tight fit
    # stops only when a plain EM step moves no posterior by 1e-11: it is at a fixed point.
    # (Plain EM with the default tol stops 0.035 away on the first matrix, after 100 steps.)
    L, y = synthetic(8000, accuracies, coverages, k=k, seed=10)
    y_fit = np.where(np.arange(8000) % 10 == 0, y, -1) if with_labels else None
    model = DawidSkene(k).fit(L, y=y_fit)
    tight = DawidSkene(k, tol=1e-11, max_iter=10_000).fit(L, y=y_fit)
    assert model.n_iter_ < tight.n_iter_ / 2
    assert np.abs(model.predict_proba(L) - tight.predict_proba(L)).max() < 5e-3
    assert model.confusion_ == pytest.approx(tight.confusion_, abs=1e-3)


@pytest.mark.parametrize("max_iter", [1, 2, 3, 4, 7])
def test_dawid_skene_runs_at_most_max_iter_steps(max_iter):
    L, _ = synthetic(3000, [0.8, 0.6, 0.7, 0.55], [0.4, 0.5, 0.3, 0.6], k=3, seed=11)
    assert DawidSkene(3, max_iter=max_iter).fit(L).n_iter_ == max_iter


@pytest.mark.parametrize("fit_uncovered", [False, True])
def test_dawid_skene_predict_on_the_fitted_votes_equals_encoding_them_anew(fit_uncovered):
    # predict reuses fit's encoding when it gets the same votes; that must not change a number
    L, y = synthetic(3000, [0.8, 0.7, 0.9, 0.6], [0.4, 0.3, 0.5, 0.2], seed=7)
    L[:10] = -1
    model = DawidSkene(fit_uncovered=fit_uncovered).fit(L, y=np.where(np.arange(3000) % 7 == 0, y, -1))
    order = np.random.default_rng(0).permutation(3000)
    anew = model.predict_proba(L[order])[np.argsort(order)]  # other votes row by row: encoded anew
    proba = model.predict_proba(L)
    assert proba == pytest.approx(anew, abs=1e-12)
    assert np.all(proba[:10] == 0.0)


def test_dawid_skene_never_reuses_the_fit_encoding_for_other_votes():
    L, _ = synthetic(2000, [0.8, 0.7, 0.9], [0.5, 0.5, 0.5], seed=8)
    L[0] = [0, 0, 0]
    model = DawidSkene().fit(L)
    alone = model.predict_proba(np.array([[1, 1, 1]]))[0]
    assert alone[1] > 0.9
    other = L.copy()
    other[0] = [1, 1, 1]
    assert model.predict_proba(other)[0] == pytest.approx(alone)
    L[0] = [1, 1, 1]  # the fitted matrix itself, changed in place after fit
    assert model.predict_proba(L)[0] == pytest.approx(alone)
    C = np.ones(L.shape)
    C[0] = 0.5  # same votes, other confidences
    assert model.predict_proba(L, C=C)[0] == pytest.approx(model.predict_proba(L[:1], C=C[:1])[0])
    assert model.predict_proba(L, C=C)[0, 1] < alone[1]


def test_repr_shows_parameters_not_learned_state():
    L, _ = synthetic(200, [0.8, 0.7], [0.5, 0.5], seed=9)
    assert repr(DawidSkene(smoothing=2.0).fit(L)) == (
        "DawidSkene(cardinality=2, abstain_evidence=0.5, max_iter=100, tol=0.0001, smoothing=2.0, "
        "class_balance=None, fit_uncovered=False)"
    )


def test_default_model_is_registered_and_factory_rejects_unknown_names():
    assert DEFAULT_MODEL in MODELS
    assert isinstance(make_label_model("majority", cardinality=3, tie_break="lowest"), MajorityVote)
    with pytest.raises(ValidationError, match=r"unknown label model 'snorkel'.*dawid_skene"):
        make_label_model("snorkel")
    with pytest.raises(ValidationError, match="invalid option"):
        make_label_model("majority", colour="red")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("L", "match"),
    [
        (np.array([0, 1, -1]), "2-D array"),
        (np.array([[0, -2]]), "only use -1"),
        (np.array([[0, 2]]), "holds class 2, but cardinality is 2"),
        (np.array([[0.5, 1.0]]), "whole numbers"),
        (np.array([["a", "b"]]), "integer class indices"),
        (np.zeros((0, 3), dtype=int), "at least one record"),
    ],
)
def test_fit_rejects_bad_vote_matrices(L, match):
    with pytest.raises(ValidationError, match=match):
        DawidSkene().fit(L)


def test_bad_confidences_labels_and_predict_inputs():
    L = np.array([[0, 1], [1, -1]])
    with pytest.raises(ValidationError, match=r"shape of the vote matrix \(2, 2\).*\(2, 1\)"):
        MajorityVote().fit(L, C=np.ones((2, 1)))
    with pytest.raises(ValidationError, match=r"confidences in \[0, 1\]"):
        MajorityVote().fit(L, C=np.full((2, 2), 1.5))
    with pytest.raises(ValidationError, match=r"one label per record \(2\)"):
        RefineryWeightedVote().fit(L, y=np.array([0, 1, 1]))
    with pytest.raises(ValidationError, match="not fitted yet"):
        DawidSkene().predict(L)
    model = MajorityVote().fit(L)
    with pytest.raises(ValidationError, match="fitted on 2"):
        model.predict(np.array([[0, 1, 1]]))
    with pytest.raises(ValidationError, match="cardinality must be an integer of at least 2"):
        MajorityVote(1).fit(L)
    with pytest.raises(ValidationError, match="class_balance"):
        DawidSkene(class_balance=[0.9, 0.2]).fit(L)
    assert issubclass(ValidationError, LoupeError)


# --------------------------------------------------------------------------- multi-label


def test_multilabel_round_trip():
    votes = [
        [[0, 2], None, [2]],
        [[], [1], [1]],
        [None, None, None],
    ]
    V = multilabel_votes_from_lists(votes, n_labels=3)
    assert V.shape == (3, 3, 3)
    per_label = multilabel_to_binary(V)
    assert len(per_label) == 3
    assert per_label[0].tolist() == [[1, -1, -1], [-1, -1, -1], [-1, -1, -1]]
    assert per_label[2].tolist() == [[1, -1, 1], [-1, -1, -1], [-1, -1, -1]]
    # binary predictions back to a multi-label result
    assigned, conf = multilabel_from_binary(
        [(np.array([1, -1, -1]), np.array([0.9, 0, 0])), (np.array([0, 1, -1]), np.array([0.8, 0.7, 0]))]
    )
    assert assigned.tolist() == [[True, False], [False, True], [False, False]]
    assert conf.tolist() == [[0.9, 0.0], [0.0, 0.7], [0.0, 0.0]]
    assigned, _ = fit_predict_multilabel(V, model="majority")
    assert assigned.tolist() == [[True, False, True], [False, True, False], [False, False, False]]


def test_multilabel_rejects_bad_input():
    with pytest.raises(ValidationError, match="3-D"):
        multilabel_to_binary(np.zeros((2, 2)))
    with pytest.raises(ValidationError, match=r"labels are 0\.\.1"):
        multilabel_votes_from_lists([[[5]]], n_labels=2)


# --------------------------------------------------------------------------- extraction


def test_token_votes_treat_uncovered_tokens_as_abstain():
    spans = [[[(0, 0, 2)], [(1, 1, 3, 0.5)]], [[], [(0, 0, 1)]]]
    votes = token_votes_from_spans(spans, [4, 2], n_labels=2)
    assert votes.offsets.tolist() == [0, 4, 6]
    assert votes.L.tolist() == [[0, -1], [0, 1], [-1, 1], [-1, -1], [-1, 0], [-1, -1]]
    assert votes.C[1].tolist() == [1.0, 0.5]
    assert votes.link[:, 0].tolist() == [False, True, False, False, False, False]


def test_spans_round_trip_and_adjacent_entities_stay_apart():
    # one heuristic, two adjacent PER spans and a LOC: predicting its own votes gives its spans back
    spans = [[[(0, 0, 2), (0, 2, 3), (1, 5, 7)]]]
    votes = token_votes_from_spans(spans, [8], n_labels=2)
    labels = votes.L[:, 0]
    result = spans_from_token_labels(labels, np.ones(8), offsets=votes.offsets, link=votes.link, n_labels=2)
    assert [(s.label, s.start, s.end) for s in result[0]] == [(0, 0, 2), (0, 2, 3), (1, 5, 7)]
    merged = spans_from_token_labels(labels, np.ones(8), offsets=votes.offsets, n_labels=2)
    assert [(s.label, s.start, s.end) for s in merged[0]] == [(0, 0, 3), (1, 5, 7)]


def test_fit_predict_extraction_with_majority_and_manual_spans():
    spans = [
        [[(0, 0, 2)], [(0, 0, 2)], [(1, 4, 5)]],
        [[(1, 1, 3)], [], [(1, 1, 3)]],
    ]
    result = fit_predict_extraction(spans, [6, 4], n_labels=2, model="majority")
    assert result == [
        [PredictedSpan(0, 0, 2, 1.0), PredictedSpan(1, 4, 5, 1.0)],
        [PredictedSpan(1, 1, 3, 1.0)],
    ]
    ds = fit_predict_extraction(spans, [6, 4], n_labels=2, manual_spans=[[(0, 0, 2)], None])
    assert [(s.label, s.start, s.end) for s in ds[0]][:1] == [(0, 0, 2)]
    with pytest.raises(ValidationError, match=r"0 <= start < end <= 4"):
        fit_predict_extraction([[[(0, 2, 5)]]], [4], n_labels=2)


def test_refinery_extraction_merges_per_label_and_keeps_the_heaviest():
    spans = [
        [
            [(0, 0, 2), (1, 6, 8)],  # h0: PER 0-2, LOC 6-8
            [(0, 1, 3)],  # h1: PER 1-3 -> merges with h0's into PER 0-3
            [(1, 2, 4, 0.5)],  # h2: LOC 2-4, weight 0.8 * 0.5 -> overlaps PER 0-3 (0.8), dropped
        ]
    ]
    result = refinery_extraction(spans, [10], n_labels=2)
    assert [(s.label, s.start, s.end) for s in result[0]] == [(0, 0, 3), (1, 6, 8)]
    assert [s.confidence for s in result[0]] == pytest.approx([0.930861940, 0.930861940])
    # merging is transitive over the merged chunk: a long span swallows later short ones
    chained = refinery_extraction([[[(0, 0, 10)], [(0, 1, 2)], [(0, 5, 6)]]], [10], n_labels=1)
    assert [(s.start, s.end) for s in chained[0]] == [(0, 10)]


def test_refinery_extraction_weighs_by_token_precision():
    # record 0 is labeled: PER 0-2. h0 hits it exactly (precision 1), h1 marks 2-4 LOC (precision 0).
    spans = [[[(0, 0, 2)], [(1, 2, 4)]], [[(0, 0, 1)], [(1, 1, 3)]]]
    result = refinery_extraction(spans, [5, 4], n_labels=2, manual_spans=[[(0, 0, 2)], None])
    assert [(s.label, s.start, s.end) for s in result[1]] == [(0, 0, 1)]
    assert result[1][0].confidence == pytest.approx(sigmoid(1.0))


# --------------------------------------------------------------------------- apply


def test_apply_heuristics_counts_errors_and_bad_outputs():
    records = [{"text": "free money"}, {"text": "hello"}, {"text": None}, {"text": "win free"}]

    def free(record):
        return "spam" if "free" in record["text"] else None

    def typo(record):
        return "spma" if record["text"] and "win" in record["text"] else 0

    L, errors = apply_heuristics([free, ("typo", typo)], records, label_names=["ham", "spam"])
    assert L.tolist() == [[1, 0], [-1, 0], [-1, 0], [1, -1]]
    assert errors["free"].count == 1
    assert errors["free"].first_record == 2
    assert errors["free"].first_message.startswith("TypeError")
    assert errors["typo"].count == 1
    assert "returned 'spma'" in errors["typo"].first_message


def test_apply_heuristics_rejects_duplicate_names():
    def lf(record):
        return None

    with pytest.raises(ValidationError, match="more than once: lf"):
        apply_heuristics([lf, ("lf", lf)], [{}], label_names=["a", "b"])
