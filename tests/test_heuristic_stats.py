"""Heuristic statistics (core.heuristic_stats): refinery's and Snorkel's definitions, by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import ValidationError
from core.heuristic_stats import (
    conflict_matrix,
    lf_summary,
    overlap_matrix,
    refinery_extraction_stats,
    refinery_stats,
)

# Snorkel's own doc example for LFAnalysis.
L = np.array([[-1, 0, 0], [-1, -1, -1], [1, 0, -1], [-1, 0, -1], [0, 0, 0]])
NAMES = ["h0", "h1", "h2"]
LABELS = ["neg", "pos"]
Y = np.array([0, 0, 1, 1, 0])


def test_lf_summary_by_hand():
    summary = lf_summary(L, heuristic_names=NAMES, label_names=LABELS, y=Y)
    assert list(summary.index) == NAMES
    assert summary["polarity"].tolist() == [["neg", "pos"], ["neg"], ["neg"]]
    assert summary["coverage"].tolist() == pytest.approx([0.4, 0.8, 0.4])
    assert summary["overlaps"].tolist() == pytest.approx([0.4, 0.6, 0.4])
    assert summary["conflicts"].tolist() == pytest.approx([0.2, 0.2, 0.0])
    # h1 votes neg on rows 0, 2, 3, 4; rows 2 and 3 are pos
    assert summary["correct"].tolist() == [2, 2, 2]
    assert summary["incorrect"].tolist() == [0, 2, 0]
    assert summary["emp_acc"].tolist() == pytest.approx([1.0, 0.5, 1.0])


def test_lf_summary_leaves_out_records_without_manual_label():
    summary = lf_summary(L, heuristic_names=NAMES, label_names=LABELS, y=np.array([0, -1, 1, -1, 0]))
    assert summary["correct"].tolist() == [2, 2, 2]
    assert summary["incorrect"].tolist() == [0, 1, 0]
    assert summary["emp_acc"].tolist() == pytest.approx([1.0, 2 / 3, 1.0])
    assert "correct" not in lf_summary(L, heuristic_names=NAMES, label_names=LABELS).columns


def _snorkel():
    bench_copy = Path(__file__).resolve().parents[1] / "bench" / ".snorkel"
    if bench_copy.is_dir() and str(bench_copy) not in sys.path:
        sys.path.append(str(bench_copy))
    return pytest.importorskip("snorkel.labeling")


@pytest.mark.filterwarnings("ignore::FutureWarning")  # raised inside snorkel by new scipy
def test_lf_summary_matches_snorkel_when_installed():
    snorkel = _snorkel()
    rng = np.random.default_rng(0)
    votes = rng.integers(-1, 3, size=(200, 5))
    gold = rng.integers(0, 3, size=200)
    theirs = snorkel.LFAnalysis(votes).lf_summary(Y=gold)
    ours = lf_summary(votes, heuristic_names=list("abcde"), label_names=["x", "y", "z"], y=gold)
    for their_col, our_col in [
        ("Coverage", "coverage"),
        ("Overlaps", "overlaps"),
        ("Conflicts", "conflicts"),
        ("Correct", "correct"),
        ("Incorrect", "incorrect"),
        ("Emp. Acc.", "emp_acc"),
    ]:
        assert ours[our_col].to_numpy(dtype=float) == pytest.approx(theirs[their_col].to_numpy(dtype=float))


def test_refinery_stats_by_hand():
    stats = refinery_stats(L, heuristic_names=NAMES, label_names=LABELS, y=Y)
    expected = pd.DataFrame(
        [
            ("h0", "neg", 1, 1, 1, 0, 1, 0, 1.0),
            ("h0", "pos", 1, 1, 0, 1, 1, 0, 1.0),
            ("h1", "neg", 4, 4, 2, 1, 2, 2, 0.5),
            ("h2", "neg", 2, 2, 2, 0, 2, 0, 1.0),
        ],
        columns=[
            "heuristic",
            "label",
            "coverage",
            "hits",
            "overlaps",
            "conflicts",
            "true_positives",
            "false_positives",
            "est_precision",
        ],
    )
    pd.testing.assert_frame_equal(stats, expected)


def test_refinery_stats_without_manual_labels_and_with_empty_pairs():
    stats = refinery_stats(L, heuristic_names=NAMES, label_names=LABELS, include_empty=True)
    assert len(stats) == 6
    assert stats["true_positives"].sum() == 0
    assert stats["est_precision"].tolist() == [0.0] * 6  # 0 when undefined
    assert stats.set_index(["heuristic", "label"]).loc[("h1", "pos"), "coverage"] == 0


def test_refinery_extraction_stats_by_hand():
    # one record of 6 tokens; manual: PER on tokens 0-1, the rest outside
    spans = [[[(0, 0, 2), (1, 3, 4)], [(0, 1, 4)]]]
    stats = refinery_extraction_stats(
        spans, [6], heuristic_names=["h0", "h1"], label_names=["PER", "LOC"], manual_spans=[[(0, 0, 2)]]
    ).set_index(["heuristic", "label"])
    rows = {key: tuple(row) for key, row in stats.iterrows()}
    # coverage, hits, overlaps, conflicts, TP, FP, FN, precision
    assert rows[("h0", "PER")] == (1, 1, 1, 0, 2, 0, 0, 1.0)
    assert rows[("h0", "LOC")] == (1, 1, 0, 1, 0, 1, 0, 0.0)
    assert rows[("h1", "PER")] == (1, 1, 1, 1, 1, 2, 1, pytest.approx(1 / 3))
    assert ("h1", "LOC") not in rows


def test_overlap_and_conflict_matrices():
    overlaps = overlap_matrix(L, heuristic_names=NAMES)
    assert overlaps.to_numpy().tolist() == [[2, 2, 1], [2, 4, 2], [1, 2, 2]]
    assert list(overlaps.index) == NAMES and list(overlaps.columns) == NAMES
    conflicts = conflict_matrix(L, heuristic_names=NAMES)
    assert conflicts.to_numpy().tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    share = overlap_matrix(L, heuristic_names=NAMES, normalize="row_coverage")
    assert share.loc["h0"].tolist() == pytest.approx([1.0, 1.0, 0.5])
    assert conflict_matrix(L, heuristic_names=NAMES, normalize="records").loc["h0", "h1"] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"heuristic_names": ["a", "b"], "label_names": LABELS}, r"one name per column of L \(3\), but it has 2"),
        ({"heuristic_names": ["a", "a", "b"], "label_names": LABELS}, "unique, but these repeat: a"),
        ({"heuristic_names": NAMES, "label_names": ["only"]}, "holds class 1, but cardinality is 1"),
        ({"heuristic_names": NAMES, "label_names": LABELS, "y": [0, 1]}, r"one label per record \(5\)"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        lf_summary(L, **kwargs)


def test_bad_normalize_and_bad_spans():
    with pytest.raises(ValidationError, match="normalize must be"):
        overlap_matrix(L, heuristic_names=NAMES, normalize="percent")
    with pytest.raises(ValidationError, match=r"label 3 is outside 0\.\.1"):
        refinery_extraction_stats([[[(3, 0, 1)]]], [2], heuristic_names=["h"], label_names=["A", "B"])
