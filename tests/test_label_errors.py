"""Confident learning: thresholds, confident joint and ranking by hand; planted errors found on embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ValidationError
from core.label_errors import (
    confident_joint,
    confident_thresholds,
    find_label_issues,
    label_issues_from_probs,
    normalized_margin,
)

# Six records, two classes. Worked by hand:
# thresholds: class 0 = (0.9 + 0.8 + 0.3) / 3 = 2/3; class 1 = (0.8 + 0.6 + 0.2) / 3 = 0.5333...
# confident class: r0 0, r1 0, r2 1 (0.7 >= 0.533, 0.3 < 0.667), r3 1, r4 1 (0.6 >= 0.533), r5 0.
PROBS = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.4, 0.6], [0.8, 0.2]])
LABELS = np.array([0, 0, 0, 1, 1, 1])


def test_thresholds_are_mean_self_confidence() -> None:
    np.testing.assert_allclose(confident_thresholds(PROBS, LABELS), [2 / 3, 1.6 / 3])


def test_confident_joint_and_off_diagonal() -> None:
    joint, guess, off = confident_joint(PROBS, LABELS)
    assert joint.tolist() == [[2, 1], [1, 2]]
    assert guess.tolist() == [0, 0, 1, 1, 1, 0]
    assert off.tolist() == [2, 5]


def test_records_reaching_no_threshold_are_not_counted() -> None:
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9], [0.5, 0.5]])
    joint, guess, off = confident_joint(probs, np.array([0, 0, 1, 1]))
    # thresholds 0.7 and 0.7: the two 50/50 records reach neither
    assert guess.tolist() == [0, -1, 1, -1]
    assert joint.tolist() == [[1, 0], [0, 1]]
    assert off.tolist() == []


def test_ranked_by_normalized_margin() -> None:
    np.testing.assert_allclose(normalized_margin(PROBS, LABELS), [0.9, 0.8, 0.3, 0.8, 0.6, 0.2])
    issues = label_issues_from_probs(PROBS, LABELS)
    assert issues["position"].tolist() == [5, 2]  # margin 0.2 before 0.3
    assert issues["suggested"].tolist() == [0, 1]
    np.testing.assert_allclose(issues["score"], [0.2, 0.3])
    np.testing.assert_allclose(issues["suggested_confidence"], [0.8, 0.7])


def blobs(seed: int = 0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centers = {"sports": (0.0, 0.0), "politics": (6.0, 0.0), "tech": (0.0, 6.0)}
    X, y = [], []
    for name, center in centers.items():
        X.append(rng.normal(center, 0.6, size=(30, 2)))
        y += [name] * 30
    return np.vstack(X), y


def test_planted_errors_are_found_with_the_right_suggestion() -> None:
    X, y = blobs()
    planted = {3: "politics", 40: "tech", 75: "sports"}  # deep inside sports, politics, tech clusters
    for i, wrong in planted.items():
        y[i] = wrong
    found = find_label_issues(X, y, ids=[f"r{i}" for i in range(len(y))])
    assert set(found["id"]) >= {f"r{i}" for i in planted}
    top = found.head(3).set_index("id")
    assert set(top.index) == {f"r{i}" for i in planted}
    assert top.loc["r3", "suggested"] == "sports" and top.loc["r40", "suggested"] == "politics"
    assert top.loc["r75", "label"] == "sports" and top.loc["r75", "suggested"] == "tech"
    assert (found["score"].diff().dropna() >= 0).all()  # most likely first
    assert (found["score"].head(3) < 0.2).all()


def test_rare_labels_are_left_out_and_folds_shrink() -> None:
    X, y = blobs()
    X = np.vstack([X[:10], X[30:33], [[0.0, 6.0]]])
    y = ["sports"] * 10 + ["politics"] * 3 + ["tech"]  # tech once: not cross-validatable
    found = find_label_issues(X, y)
    assert "tech" not in set(found["label"]) | set(found["suggested"])


@pytest.mark.parametrize(
    ("X", "labels", "message"),
    [
        (np.zeros((3, 2)), ["a", "b"], "X and labels must be same length, but X is length 3, labels is length 2"),
        (np.zeros(3), ["a", "b", "c"], "n × d matrix"),
        (np.full((4, 2), np.nan), ["a", "a", "b", "b"], "NaN"),
        (np.zeros((3, 2)), ["a", "a", "b"], "at least two labels with two or more.*'a': 2, 'b': 1"),
    ],
)
def test_bad_input_is_refused_with_a_reason(X: np.ndarray, labels: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        find_label_issues(X, labels)


def test_bad_probabilities_are_refused() -> None:
    with pytest.raises(ValidationError, match="same length, but pred_probs is length 6 and labels is length 2"):
        confident_joint(PROBS, np.array([0, 1]))
    with pytest.raises(ValidationError, match=r"class indices 0\.\.1"):
        confident_joint(PROBS, np.array([0, 1, 2, 0, 1, 0]))
