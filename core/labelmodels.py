"""Weak supervision: turn the votes of many noisy heuristics into one label per record.

Everything here is pure NumPy: no database, no Streamlit, no printing.

Conventions
-----------
Vote matrix ``L``
    An ``n × m`` integer array, one row per record and one column per heuristic.
    ``-1`` is an abstain; classes are ``0 .. cardinality - 1``.
Confidences ``C``
    Optional ``n × m`` float array in ``[0, 1]``: how sure a heuristic was of its vote
    (1.0 for labeling functions, the predicted probability for active learners).
    Entries where ``L`` abstains are ignored.
Manual labels ``y``
    Optional length-``n`` integer array of *valid* manual labels, ``-1`` where a record
    has none.

Every label model follows scikit-learn's estimator conventions and Snorkel's base
labeler: ``__init__`` stores parameters only, ``fit`` returns ``self``, learned
attributes end in ``_``, ``predict_proba`` is the one method a model must provide, and
``predict`` / ``predict_with_confidence`` / ``score`` come with it.

Records that no heuristic voted on get an **all-zero** row from ``predict_proba`` (not a
uniform one, so that "no evidence" stays distinguishable from "evidence that cancels
out") and the label ``-1`` from ``predict``.

Models
------
``"majority"``
    :class:`MajorityVote`, the baseline.
``"refinery"``
    :class:`RefineryWeightedVote`, refinery's (weak-nlp) precision-weighted vote.
``"dawid_skene"``
    :class:`DawidSkene`, a generative model that learns each heuristic's class-conditional
    vote distribution with EM, without manual labels (and uses them when present).

Also here: helpers for multi-label tasks (one binary task per label) and for
extraction tasks (token-level votes, back to spans, and refinery's span rule).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from core.errors import ValidationError

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "DawidSkene",
    "LabelModel",
    "MajorityVote",
    "PredictedSpan",
    "RefineryWeightedVote",
    "TokenVotes",
    "check_confidences",
    "check_manual_labels",
    "check_manual_spans",
    "check_spans",
    "check_vote_matrix",
    "extraction_precision",
    "fit_predict_extraction",
    "fit_predict_multilabel",
    "make_label_model",
    "manual_token_labels",
    "multilabel_from_binary",
    "multilabel_to_binary",
    "multilabel_votes_from_lists",
    "refinery_extraction",
    "refinery_sigmoid",
    "spans_from_token_labels",
    "token_votes_from_spans",
]

#: Precision refinery assumes for every heuristic when there is no manual label at all.
REFINERY_PRIOR_PRECISION = 0.8


# --------------------------------------------------------------------------- validation


def check_vote_matrix(L: ArrayLike, *, cardinality: int | None = None, name: str = "L") -> np.ndarray:
    """Validate a vote matrix and return it as a 2-D ``int64`` array.

    Parameters
    ----------
    L
        ``n × m`` votes, ``-1`` = abstain, classes ``0 .. cardinality - 1``.
    cardinality
        Number of classes; when given, votes must be below it.
    name
        Name used in error messages.

    Returns
    -------
    numpy.ndarray
        The votes as ``int64``.

    Raises
    ------
    ValidationError
        If ``L`` is not 2-D, not integral, or holds a value outside ``-1 .. cardinality - 1``.
    """
    arr = np.asarray(L)
    if arr.ndim != 2:
        raise ValidationError(
            f"{name} must be a 2-D array (records × heuristics), but it has shape {arr.shape}; "
            "pass one row per record and one column per heuristic (use L.reshape(-1, 1) for one heuristic)."
        )
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise ValidationError(
            f"{name} must hold integer class indices (-1 = abstain), but its dtype is {arr.dtype}; "
            "map label names to indices before calling."
        )
    if arr.dtype.kind == "f" and arr.size and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ValidationError(
            f"{name} must hold whole numbers (-1 = abstain), but it holds non-integral floats; pass an integer array."
        )
    out = arr.astype(np.int64, copy=False)
    if out.size:
        low, high = int(out.min()), int(out.max())
        if low < -1:
            raise ValidationError(f"{name} may only use -1 for an abstain, but it holds {low}; replace abstains by -1.")
        if cardinality is not None and high >= cardinality:
            raise ValidationError(
                f"{name} holds class {high}, but cardinality is {cardinality} (classes 0..{cardinality - 1}); "
                f"pass cardinality={high + 1} or fix the votes."
            )
    return out


def check_confidences(C: ArrayLike | None, *, shape: tuple[int, int], name: str = "C") -> np.ndarray | None:
    """Validate heuristic confidences and return them as ``float64`` (or ``None``).

    Parameters
    ----------
    C
        ``n × m`` confidences in ``[0, 1]``, or ``None`` for "all 1.0".
    shape
        The shape of the vote matrix they belong to.
    name
        Name used in error messages.

    Returns
    -------
    numpy.ndarray or None
        The confidences, or ``None`` when ``C`` is ``None``.

    Raises
    ------
    ValidationError
        On a shape mismatch, a non-finite value or a value outside ``[0, 1]``.
    """
    if C is None:
        return None
    arr = np.asarray(C, dtype=np.float64)
    if arr.shape != shape:
        raise ValidationError(
            f"{name} must have the shape of the vote matrix {shape}, but it has shape {arr.shape}; "
            "pass one confidence per vote (any value where the heuristic abstained)."
        )
    if arr.size and not (np.all(np.isfinite(arr)) and arr.min() >= 0.0 and arr.max() <= 1.0):
        raise ValidationError(
            f"{name} must hold confidences in [0, 1], but it holds values from {np.nanmin(arr)} to "
            f"{np.nanmax(arr)}; clip or rescale them."
        )
    return arr


def check_manual_labels(
    y: ArrayLike | None, *, n: int, cardinality: int | None = None, name: str = "y"
) -> np.ndarray | None:
    """Validate manual labels (``-1`` = none) and return them as ``int64`` (or ``None``).

    Parameters
    ----------
    y
        Length-``n`` labels, ``-1`` where a record has no valid manual label.
    n
        Number of records.
    cardinality
        Number of classes; when given, labels must be below it.
    name
        Name used in error messages.

    Returns
    -------
    numpy.ndarray or None

    Raises
    ------
    ValidationError
        On a length mismatch or a label outside ``-1 .. cardinality - 1``.
    """
    if y is None:
        return None
    arr = check_vote_matrix(np.asarray(y).reshape(-1, 1), cardinality=cardinality, name=name).ravel()
    if np.asarray(y).ndim != 1 or arr.shape[0] != n:
        raise ValidationError(
            f"{name} must be a 1-D array with one label per record ({n}), but it has shape "
            f"{np.asarray(y).shape}; use -1 for records without a manual label."
        )
    return arr


def _check_cardinality(cardinality: int) -> int:
    if isinstance(cardinality, bool) or not isinstance(cardinality, int | np.integer) or cardinality < 2:
        raise ValidationError(
            f"cardinality must be an integer of at least 2 (the number of classes), but it is {cardinality!r}; "
            "a one-class task is a binary task (label vs. not label)."
        )
    return int(cardinality)


# --------------------------------------------------------------------------- base class


class LabelModel(ABC):
    """Base of all label models.

    Parameters
    ----------
    cardinality
        Number of classes ``k``; votes and labels are ``0 .. k - 1``.

    Notes
    -----
    Subclasses implement :meth:`predict_proba` and, if they learn anything, :meth:`fit`.
    """

    def __init__(self, cardinality: int = 2) -> None:
        self.cardinality = cardinality

    def __repr__(self) -> str:
        # parameters only: learned attributes end in "_", private state starts with it
        params = ", ".join(
            f"{key}={value!r}" for key, value in vars(self).items() if not key.endswith("_") and not key.startswith("_")
        )
        return f"{type(self).__name__}({params})"

    # -- validation shared by fit and predict
    def _validate_fit(
        self, L: ArrayLike, C: ArrayLike | None, y: ArrayLike | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        k = _check_cardinality(self.cardinality)
        votes = check_vote_matrix(L, cardinality=k)
        if votes.shape[0] == 0 or votes.shape[1] == 0:
            raise ValidationError(
                f"fit needs at least one record and one heuristic, but L has shape {votes.shape}; "
                "run the heuristics on the records first."
            )
        conf = check_confidences(C, shape=votes.shape)
        labels = check_manual_labels(y, n=votes.shape[0], cardinality=k)
        return votes, conf, labels

    def _validate_predict(self, L: ArrayLike, C: ArrayLike | None) -> tuple[np.ndarray, np.ndarray | None]:
        if not hasattr(self, "n_heuristics_"):
            raise ValidationError(f"{type(self).__name__} is not fitted yet; call fit(L) before predicting.")
        votes = check_vote_matrix(L, cardinality=self.cardinality)
        if votes.shape[1] != self.n_heuristics_:
            raise ValidationError(
                f"L has {votes.shape[1]} heuristic column(s), but the model was fitted on {self.n_heuristics_}; "
                "pass the same heuristics in the same order, or fit again."
            )
        return votes, check_confidences(C, shape=votes.shape)

    def fit(self, L: ArrayLike, *, C: ArrayLike | None = None, y: ArrayLike | None = None) -> LabelModel:
        """Learn from the votes (the base model learns nothing but the number of heuristics).

        Parameters
        ----------
        L
            ``n × m`` votes, ``-1`` = abstain.
        C
            Optional ``n × m`` vote confidences in ``[0, 1]``.
        y
            Optional valid manual labels, ``-1`` = none.

        Returns
        -------
        LabelModel
            ``self``.
        """
        votes, _, _ = self._validate_fit(L, C, y)
        self.n_heuristics_ = votes.shape[1]
        return self

    @abstractmethod
    def predict_proba(self, L: ArrayLike, *, C: ArrayLike | None = None) -> np.ndarray:
        """Return an ``n × k`` array of class probabilities.

        Rows of records without any vote are all zeros.
        """

    def predict_with_confidence(self, L: ArrayLike, *, C: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return the label of each record and the confidence to store with it.

        Parameters
        ----------
        L
            ``n × m`` votes.
        C
            Optional vote confidences.

        Returns
        -------
        labels : numpy.ndarray
            ``int64``, ``-1`` where no heuristic voted (or the model declines to label).
        confidence : numpy.ndarray
            ``float64`` in ``[0, 1]``, ``0.0`` where the label is ``-1``.
        """
        proba = self.predict_proba(L, C=C)
        return _argmax_or_abstain(proba)

    def predict(self, L: ArrayLike, *, C: ArrayLike | None = None) -> np.ndarray:
        """Return one label per record, ``-1`` where there is none.

        Parameters
        ----------
        L
            ``n × m`` votes.
        C
            Optional vote confidences.

        Returns
        -------
        numpy.ndarray
            ``int64`` labels.
        """
        return self.predict_with_confidence(L, C=C)[0]

    def score(self, L: ArrayLike, y: ArrayLike, *, C: ArrayLike | None = None) -> float:
        """Accuracy against ``y`` on the records that have a label; a ``-1`` prediction counts as wrong.

        Parameters
        ----------
        L
            ``n × m`` votes.
        y
            Reference labels, ``-1`` = not part of the evaluation.
        C
            Optional vote confidences.

        Returns
        -------
        float
            Accuracy in ``[0, 1]``; ``nan`` when ``y`` has no label.
        """
        pred = self.predict(L, C=C)
        labels = check_manual_labels(y, n=pred.shape[0], cardinality=self.cardinality)
        if labels is None:
            raise ValidationError("score needs reference labels y; pass one label per record (-1 = skip).")
        known = labels >= 0
        if not known.any():
            return float("nan")
        return float(np.mean(pred[known] == labels[known]))


def _argmax_or_abstain(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top class and its probability; ``-1`` / ``0.0`` for all-zero rows."""
    if proba.shape[0] == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    labels = proba.argmax(axis=1).astype(np.int64)
    confidence = proba[np.arange(proba.shape[0]), labels]
    empty = proba.sum(axis=1) <= 0.0
    labels[empty] = -1
    confidence = np.where(empty, 0.0, confidence)
    return labels, confidence


def _vote_weights(L: np.ndarray, C: np.ndarray | None, k: int, weight: np.ndarray | None = None) -> np.ndarray:
    """Sum per record and class of the vote weights (``C`` × optional per heuristic-and-class weight)."""
    n, m = L.shape
    voted = L >= 0
    rows = np.broadcast_to(np.arange(n)[:, None], L.shape)[voted]
    cls = L[voted]
    w = np.ones(cls.shape[0]) if C is None else C[voted]
    if weight is not None:
        cols = np.broadcast_to(np.arange(m)[None, :], L.shape)[voted]
        w = w * weight[cols, cls]
    # bincount on a flattened (record, class) index is the fastest scatter-add NumPy has
    return np.bincount(rows * k + cls, weights=w, minlength=n * k).reshape(n, k)


# --------------------------------------------------------------------------- majority vote


class MajorityVote(LabelModel):
    """Majority vote: the class with most votes wins.

    Votes are weighted by ``C`` when given (so an active learner voting with 0.6 counts
    0.6); labeling functions all have weight 1, which makes this a plain vote count.

    Parameters
    ----------
    cardinality
        Number of classes.
    tie_break
        ``"abstain"`` (default): a tie for the top class gives no label (``-1``), since a
        tie is no evidence either way. ``"lowest"``: the lowest class index among the tied
        classes wins (deterministic).

    Notes
    -----
    ``predict_proba`` returns each class's share of the vote weight (all zeros without
    votes); ``predict_with_confidence`` returns that share of the winning class.
    """

    def __init__(self, cardinality: int = 2, *, tie_break: Literal["abstain", "lowest"] = "abstain") -> None:
        super().__init__(cardinality)
        self.tie_break = tie_break

    def predict_proba(self, L: ArrayLike, *, C: ArrayLike | None = None) -> np.ndarray:
        votes, conf = self._validate_predict(L, C)
        counts = _vote_weights(votes, conf, self.cardinality)
        total = counts.sum(axis=1, keepdims=True)
        return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)

    def predict_with_confidence(self, L: ArrayLike, *, C: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        if self.tie_break not in ("abstain", "lowest"):
            raise ValidationError(f"tie_break must be 'abstain' or 'lowest', but it is {self.tie_break!r}.")
        proba = self.predict_proba(L, C=C)
        labels, confidence = _argmax_or_abstain(proba)
        if self.tie_break == "abstain" and proba.shape[0]:
            top = proba.max(axis=1, keepdims=True)
            # isclose, not ==: confidences summed in different orders may differ in the last bit
            tied = np.isclose(proba, top, rtol=0.0, atol=1e-9).sum(axis=1) > 1
            labels[tied] = -1
            confidence[tied] = 0.0
        return labels, confidence


# --------------------------------------------------------------------------- refinery


def refinery_sigmoid(x: ArrayLike) -> np.ndarray:
    """refinery's confidence curve ``1 / (1 + exp(-(7x - 3)))`` (0.5 at ``x = 3/7``).

    Parameters
    ----------
    x
        Margin (classification) or span weight (extraction).

    Returns
    -------
    numpy.ndarray
    """
    return 1.0 / (1.0 + np.exp(-(7.0 * np.asarray(x, dtype=np.float64) - 3.0)))


# Margins below this are float noise (0.1 + 0.2 vs 0.3), not a real majority.
_MARGIN_EPS = 1e-12


class RefineryWeightedVote(LabelModel):
    """refinery's weak supervision (weak-nlp): votes weighted by each heuristic's precision.

    The weight of a vote is the heuristic's precision for the voted label, measured
    against the valid manual labels (``TP / (TP + FP)`` over records with ``y >= 0``),
    times the vote's confidence. Per record, ``S`` is the weight per label, ``S_max`` the
    top label's, ``S_all`` the total; the margin ``m = S_max - (S_all - S_max)``. When
    ``m <= 0`` no label is given, else the label is the top one with confidence
    ``1 / (1 + exp(-(7m - 3)))``.

    Parameters
    ----------
    cardinality
        Number of classes.
    prior_precision
        Precision of every heuristic when ``y`` has no manual label at all (refinery: 0.8).
    unmeasured_precision
        Precision of a (heuristic, label) pair with ``TP + FP == 0`` while other manual
        labels exist. refinery uses 0.0 ("0 when undefined"): a heuristic whose votes for a
        label never met a manually labeled record is ignored for that label. The default
        keeps that exact behaviour; pass 0.8 to treat unmeasured heuristics as in the
        no-label case instead.

    Attributes
    ----------
    precision_ : numpy.ndarray
        ``m × k`` precision per heuristic and label (the vote weights before ``C``).
    true_positives_, false_positives_ : numpy.ndarray
        ``m × k`` counts behind ``precision_``.

    Notes
    -----
    ``predict_proba`` returns each label's share of the weight ``S / S_all`` (zeros
    without votes or when all weights are 0). ``predict`` applies the margin rule, so it
    can return ``-1`` where ``predict_proba`` has a top class, e.g. 2 votes against 1 of
    equal weight give margin ``w > 0`` but 2 of 3 labels' weight split evenly give none.
    Ties for the top label always have ``m <= 0`` and so never get a label.
    """

    def __init__(
        self,
        cardinality: int = 2,
        *,
        prior_precision: float = REFINERY_PRIOR_PRECISION,
        unmeasured_precision: float = 0.0,
    ) -> None:
        super().__init__(cardinality)
        self.prior_precision = prior_precision
        self.unmeasured_precision = unmeasured_precision

    def fit(self, L: ArrayLike, *, C: ArrayLike | None = None, y: ArrayLike | None = None) -> RefineryWeightedVote:
        """Measure each heuristic's precision per label against ``y``.

        Parameters
        ----------
        L
            ``n × m`` votes.
        C
            Ignored for the precision (refinery counts votes, not confidences); accepted
            for a uniform interface and validated.
        y
            Valid manual labels, ``-1`` = none.

        Returns
        -------
        RefineryWeightedVote
            ``self``.
        """
        votes, _, labels = self._validate_fit(L, C, y)
        k, m = self.cardinality, votes.shape[1]
        tp = np.zeros((m, k), dtype=np.int64)
        fp = np.zeros((m, k), dtype=np.int64)
        if labels is not None and (labels >= 0).any():
            known = labels >= 0
            lv, lk = votes[known], labels[known]
            for cls in range(k):
                said = lv == cls
                tp[:, cls] = (said & (lk == cls)[:, None]).sum(axis=0)
                fp[:, cls] = (said & (lk != cls)[:, None]).sum(axis=0)
            denominator = tp + fp
            precision = np.divide(
                tp, denominator, out=np.full((m, k), float(self.unmeasured_precision)), where=denominator > 0
            )
        else:
            precision = np.full((m, k), float(self.prior_precision))
        self.true_positives_ = tp
        self.false_positives_ = fp
        self.precision_ = precision
        self.n_heuristics_ = m
        return self

    def _weights(self, L: ArrayLike, C: ArrayLike | None) -> np.ndarray:
        votes, conf = self._validate_predict(L, C)
        return _vote_weights(votes, conf, self.cardinality, weight=self.precision_)

    def predict_proba(self, L: ArrayLike, *, C: ArrayLike | None = None) -> np.ndarray:
        weights = self._weights(L, C)
        total = weights.sum(axis=1, keepdims=True)
        return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)

    def predict_with_confidence(self, L: ArrayLike, *, C: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        weights = self._weights(L, C)
        if weights.shape[0] == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        top = weights.argmax(axis=1)
        s_max = weights[np.arange(weights.shape[0]), top]
        margin = s_max - (weights.sum(axis=1) - s_max)
        labeled = margin > _MARGIN_EPS
        labels = np.where(labeled, top, -1).astype(np.int64)
        confidence = np.where(labeled, refinery_sigmoid(margin), 0.0)
        return labels, confidence


# --------------------------------------------------------------------------- Dawid–Skene


def _vote_keys(L: np.ndarray, k: int) -> np.ndarray | None:
    """One ``int64`` per record packing its votes, or ``None`` when they do not fit in one.

    The digits are ``L + 1`` (``0`` = abstain) in base ``k + 1``, so equal keys mean equal vote
    rows and key ``0`` means no vote at all. One digit is left free for a manual label. A
    matrix product packs all columns in one pass, and sorting one integer per record is far
    faster than ``np.unique(axis=0)`` on the rows.
    """
    m = L.shape[1]
    if (m + 1) * math.log2(k + 1) >= 62:
        return None
    powers = (k + 1) ** np.arange(m - 1, -1, -1, dtype=np.int64)
    return L @ powers + powers.sum()  # = (L + 1) @ powers without an n x m temporary


def _unique_keys(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(an index, inverse, counts)`` of the distinct values of ``key``, sorted like ``np.unique``.

    Any index of a value will do (the rows behind equal keys are equal), so the sort need
    not be stable: that is what makes it several times faster than ``np.unique`` here.
    """
    n = key.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    order = np.argsort(key)
    ordered = key[order]
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.cumsum(new) - 1
    return order[starts], inverse, np.diff(starts, append=n)


@dataclass(frozen=True)
class _Encoded:
    """The distinct (votes, confidences, label) rows of the encoded records, in sparse form, for EM.

    Vote entries are sorted by output (heuristic, class), and by distinct row within one: the
    M-step sums each output's run with ``np.add.reduceat``, and the E-step's per-row sums
    still add a row's votes in heuristic order.
    """

    n_rows: int  # distinct rows
    weight: np.ndarray  # (u,) how many records share the row
    records: np.ndarray | None  # (r,) the encoded records' indices in L; None = all
    inverse: np.ndarray  # (r,) distinct row of each encoded record
    row: np.ndarray  # (nnz,) distinct row of each vote
    flat: np.ndarray  # (nnz,) output of each vote: heuristic * (k + 1) + class + 1
    starts: np.ndarray  # (g,) where each run of one output starts in row / flat
    outputs: np.ndarray  # (g,) the output of each run
    conf: np.ndarray  # (nnz,) vote confidence
    label: np.ndarray  # (u,) manual label, -1 = none
    covered: np.ndarray  # (u,) at least one vote
    conf_is_one: bool  # all confidences are 1.0: skip the multiplications


def _encode(
    L: np.ndarray,
    C: np.ndarray | None,
    y: np.ndarray | None,
    k: int,
    *,
    covered_only: bool,
    keys: np.ndarray | None = None,
) -> _Encoded:
    """Deduplicate the records of ``L`` (those with a vote when ``covered_only``) for EM.

    ``C`` is ``None`` when every vote has confidence 1 (see :func:`_effective_votes`);
    ``keys`` are ``_vote_keys(L, k)`` when the caller has them already.
    """
    n, m = L.shape
    if C is None and keys is None:
        keys = _vote_keys(L, k)
    if not covered_only:
        records = None
    elif C is None and keys is not None:
        records = np.flatnonzero(keys)  # key 0: no vote
    else:
        records = np.flatnonzero((L >= 0).any(axis=1))
    if records is not None and records.shape[0] == n:
        records = None
    labels = None if y is None else (y if records is None else y[records])
    if C is None and keys is not None:
        key = keys if records is None else keys[records]
        if labels is not None:
            key = key + (labels + 1) * (k + 1) ** m  # the digit _vote_keys left free
        first, inverse, counts = _unique_keys(key)
        C_u = None
    else:
        sub = L if records is None else L[records]
        stacked = [sub, np.full((sub.shape[0], 1), -1) if labels is None else labels[:, None]]
        if C is not None:
            # confidences are floats: dedupe exact repeats only (active learner outputs rarely repeat)
            stacked.append(np.where(sub >= 0, C if records is None else C[records], 0.0))
        _, first, inverse, counts = np.unique(
            np.column_stack(stacked), axis=0, return_index=True, return_inverse=True, return_counts=True
        )
        inverse = inverse.ravel()
        C_u = None if C is None else stacked[2][first]
    source = first if records is None else records[first]
    L_u = np.take(L, source, axis=0)  # several times faster than L[source] for rows
    y_u = np.full(first.shape[0], -1, dtype=np.int64) if labels is None else labels[first]
    u = L_u.shape[0]
    # row-major positions of the votes: each row's votes in heuristic order
    position = np.flatnonzero(L_u >= 0)
    row, col = np.divmod(position, m)
    flat = col * (k + 1) + 1 + L_u.ravel().take(position)
    conf = np.ones(row.shape[0]) if C_u is None else C_u.ravel().take(position)
    # regroup by output; a stable sort keeps rows ascending within each output (radix sort on int16)
    order = np.argsort(flat.astype(np.int16) if m * (k + 1) < 2**15 else flat, kind="stable")
    flat, row, conf = flat[order], row[order], conf[order]
    starts = np.flatnonzero(np.diff(flat, prepend=-1))
    return _Encoded(
        n_rows=u,
        weight=counts.astype(np.float64),
        records=records,
        inverse=inverse,
        row=row,
        flat=flat,
        starts=starts,
        outputs=flat[starts],
        conf=conf,
        label=y_u,
        covered=np.bincount(row, minlength=u) > 0,
        conf_is_one=C_u is None,
    )


@dataclass(frozen=True)
class _FittedVotes:
    """The votes a model was fitted on (as :func:`_vote_keys`) and their encoding."""

    keys: np.ndarray
    cardinality: int
    encoding: _Encoded

    def matches(self, keys: np.ndarray, cardinality: int) -> bool:
        """Whether ``keys`` are those of the same vote matrix (equal keys <=> equal votes)."""
        return cardinality == self.cardinality and np.array_equal(keys, self.keys)


def _effective_votes(L: np.ndarray, C: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Votes with confidence 0 made abstains, and ``C = None`` when every remaining vote has confidence 1.

    The product passes ``C`` = 1.0 for every labeling-function vote; recognising that keeps
    the fast integer path (and ``C`` is ignored where ``L`` abstains anyway).
    """
    if C is None:
        return L, None
    given = C[L >= 0]
    if np.all(given == 1.0):
        return L, None
    votes = np.where(C > 0, L, -1)
    return votes, None if np.all(given[given > 0] == 1.0) else C


def _softmax_columns(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 of a ``k × u`` array, in place.

    Class-major layout on purpose: with few classes, reducing over a short axis 1 is
    several times slower in NumPy than combining ``k`` long rows element-wise.
    """
    top = logits[0].copy()
    for row in logits[1:]:
        np.maximum(top, row, out=top)
    logits -= top
    np.exp(logits, out=logits)
    total = logits[0].copy()
    for row in logits[1:]:
        total += row
    logits /= total
    return logits


class DawidSkene(LabelModel):
    """Dawid–Skene label model fitted by EM, unsupervised or semi-supervised.

    Each heuristic ``j`` has a class-conditional distribution over its outputs
    ``P(L_j = o | Y = c)``, where the outputs are the ``k`` classes and the abstain. Modelling
    the abstain matters: most heuristics only ever vote one class (a spam keyword), so
    what they tell is "fires more often on spam than on ham", which is an abstain rate.
    Heuristics are assumed independent given the true class. That holds worse for
    abstains than for votes: keyword heuristics fall silent together (a short text trips
    none of them), and a full-weight product of abstain terms counts that one fact many
    times. So the abstain terms enter the likelihood with weight ``abstain_evidence``
    (a tempered, "power" likelihood): 1 is textbook Dawid–Skene, 0 ignores abstains when
    scoring records as Snorkel's ``predict_proba`` does (but then EM cannot tell how often
    a one-class heuristic fires per class, and drifts).

    EM starts from the (soft) majority vote, so classes keep their meaning, and stops
    when an EM step moves no posterior by more than ``tol``. It is accelerated with SQUAREM
    (Varadhan & Roland 2008): every two EM steps it extrapolates the parameters along
    their path, which about halves the steps on the benchmark's matrices and ends nearer
    the fixed point than plain EM with the same ``tol``. When the EM step from an extrapolated
    point is larger than the step before it, the extrapolation is dropped and EM goes on
    from the last plain step. A symmetric Dirichlet prior
    (``smoothing`` pseudo-votes per output, plus ``smoothing`` more on the correct vote)
    keeps rare heuristics from getting probabilities of exactly 0 or 1 and encodes the
    mild belief that a heuristic is better than chance. Records with a manual label have
    their posterior clamped to it during EM (semi-supervised EM). A vote with confidence
    ``c`` counts as ``c`` of a vote and ``1 - c`` of an abstain.

    Parameters
    ----------
    cardinality
        Number of classes.
    max_iter
        Maximum number of EM iterations.
    tol
        Stop when the largest change of a posterior is below this.
    smoothing
        Dirichlet pseudo-count per output (see above); 0 gives plain maximum likelihood.
    class_balance
        Fixed class prior ``P(Y)``; ``None`` (default) estimates it with EM.
    fit_uncovered
        Also fit on records without any vote. Off by default: those records never get a
        label, and leaving them out makes the model describe the records it will label
        (their class balance, their abstain rates). Manual labels of records left out are
        not used either.
    abstain_evidence
        Weight in ``[0, 1]`` of the abstain terms (see above). The default 0.5 was chosen
        on the *train* splits' gold labels of bench/ws_bench.py (YouTube: accuracy on covered
        train records 92.5 % at 1.0, 94.9 % at 0.5; SMS: 94.0 % and 93.9 %); on synthetic
        votes that do satisfy independence it changes accuracy by < 0.1 point.

    Attributes
    ----------
    class_balance_ : numpy.ndarray
        ``(k,)`` estimated ``P(Y)`` among the fitted records.
    confusion_ : numpy.ndarray
        ``m × k × (k + 1)``: ``confusion_[j, c, 0]`` is ``P(heuristic j abstains | Y = c)``,
        ``confusion_[j, c, o + 1]`` is ``P(heuristic j votes o | Y = c)``.
    accuracy_ : numpy.ndarray
        ``(m,)`` estimated probability that a vote of the heuristic is right.
    coverage_ : numpy.ndarray
        ``(m,)`` fraction of fitted records the heuristic voted on.
    n_iter_ : int
        E-steps run (EM steps and SQUAREM's extrapolated points).
    """

    def __init__(
        self,
        cardinality: int = 2,
        *,
        max_iter: int = 100,
        tol: float = 1e-4,
        smoothing: float = 1.0,
        class_balance: Sequence[float] | None = None,
        fit_uncovered: bool = False,
        abstain_evidence: float = 0.5,
    ) -> None:
        super().__init__(cardinality)
        self.abstain_evidence = abstain_evidence
        self.max_iter = max_iter
        self.tol = tol
        self.smoothing = smoothing
        self.class_balance = class_balance
        self.fit_uncovered = fit_uncovered

    def _check_params(self) -> np.ndarray | None:
        k = self.cardinality
        if not (isinstance(self.max_iter, int) and self.max_iter >= 1):
            raise ValidationError(f"max_iter must be a positive integer, but it is {self.max_iter!r}.")
        if not (self.tol > 0):
            raise ValidationError(f"tol must be positive, but it is {self.tol!r}.")
        if not (self.smoothing >= 0):
            raise ValidationError(f"smoothing must be 0 or more, but it is {self.smoothing!r}.")
        if not (0.0 <= self.abstain_evidence <= 1.0):
            raise ValidationError(f"abstain_evidence must be in [0, 1], but it is {self.abstain_evidence!r}.")
        if self.class_balance is None:
            return None
        prior = np.asarray(self.class_balance, dtype=np.float64)
        if prior.shape != (k,) or np.any(prior <= 0) or not np.isclose(prior.sum(), 1.0):
            raise ValidationError(
                f"class_balance must be {k} positive probabilities summing to 1, but it is "
                f"{self.class_balance!r}; pass e.g. {[round(1 / k, 3)] * k} or None to estimate it."
            )
        return prior

    def _posteriors(self, enc: _Encoded, log_table: np.ndarray, log_prior: np.ndarray) -> np.ndarray:
        """Posterior class probabilities of each distinct row, class-major (``k × u``)."""
        k = self.cardinality
        m = log_table.shape[0] // (k + 1)
        # Every heuristic abstains by default; each vote swaps its abstain term for the vote's.
        per_heuristic = log_table.reshape(m, k + 1, k)
        weight = float(self.abstain_evidence)
        abstain_total = weight * per_heuristic[:, 0, :].sum(axis=0) + log_prior
        swap = (per_heuristic - weight * per_heuristic[:, :1, :]).reshape(m * (k + 1), k)
        # Logits relative to class 0 (whose own are then 0): one scatter-add fewer per class, and
        # with two classes the posterior is a sigmoid of one logit difference.
        swap = swap[enc.outputs]
        relative = swap[:, 1:] - swap[:, :1]
        lengths = np.diff(enc.starts, append=enc.row.shape[0])
        post = np.empty((k, enc.n_rows))
        for cls in range(1, k):
            # votes come sorted by output, so each vote's term is its run's value repeated
            contrib = np.repeat(relative[:, cls - 1], lengths)
            if not enc.conf_is_one:
                contrib *= enc.conf
            post[cls] = np.bincount(enc.row, weights=contrib, minlength=enc.n_rows)
            post[cls] += abstain_total[cls] - abstain_total[0]
        if k == 2:
            p1 = post[1]
            np.negative(p1, out=p1)
            with np.errstate(over="ignore"):  # exp(> 709) = inf gives 1 / inf = 0, as it should
                np.exp(p1, out=p1)
            p1 += 1.0
            np.reciprocal(p1, out=p1)
            np.subtract(1.0, p1, out=post[0])
            return post
        post[0] = 0.0
        return _softmax_columns(post)

    def _m_step(self, enc: _Encoded, post: np.ndarray, m: int, vote_mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class-conditional output counts (``m·(k+1) × k``) and class mass (``k``) from ``k × u`` posteriors.

        ``vote_mass`` is the total weight of each output's votes (the runs of ``enc.outputs``):
        class 0 gets what the other classes leave of it, one gather and sum fewer per step.
        """
        k = self.cardinality
        counts = np.zeros((m * (k + 1), k))
        class_mass = np.empty(k)
        for cls in range(1, k):
            mass = post[cls] * enc.weight
            class_mass[cls] = mass.sum()
            spent = mass.take(enc.row)
            if not enc.conf_is_one:
                spent *= enc.conf
            # the votes come sorted by output: one sum per run (bincount into a few bins is slower)
            counts[enc.outputs, cls] = np.add.reduceat(spent, enc.starts)
        class_mass[0] = max(enc.weight.sum() - class_mass[1:].sum(), 0.0)
        counts[enc.outputs, 0] = np.maximum(vote_mass - counts[enc.outputs, 1:].sum(axis=1), 0.0)
        # abstain count = all mass of the class minus what the heuristic spent on votes
        per_heuristic = counts.reshape(m, k + 1, k)
        per_heuristic[:, 0, :] = np.maximum(class_mass[None, :] - per_heuristic[:, 1:, :].sum(axis=1), 0.0)
        return counts, class_mass

    def _normalise(self, counts: np.ndarray, m: int) -> np.ndarray:
        k = self.cardinality
        table = counts.reshape(m, k + 1, k) + self.smoothing
        # the correct vote (output c + 1 under class c) gets the extra pseudo-votes
        table[:, np.arange(1, k + 1), np.arange(k)] += self.smoothing
        table /= table.sum(axis=1, keepdims=True)
        # floor: with smoothing=0 an output never seen would be log(0) = -inf
        return np.maximum(table, 1e-12).reshape(m * (k + 1), k)

    def _parameters(
        self, enc: _Encoded, post: np.ndarray, m: int, output_mass: np.ndarray, fixed_prior: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """M-step: the vote table (``m·(k+1) × k``) and the class prior (``k``)."""
        k = self.cardinality
        counts, class_mass = self._m_step(enc, post, m, output_mass)
        table = self._normalise(counts, m)
        if fixed_prior is None:
            prior = np.maximum((class_mass + self.smoothing) / (class_mass.sum() + k * self.smoothing), 1e-12)
        else:
            prior = fixed_prior
        return table, prior

    def _project(self, theta: np.ndarray, m: int, fixed_prior: np.ndarray | None) -> np.ndarray:
        """Back to valid log probabilities after an extrapolation: renormalise, floor as ``_normalise`` does."""
        k = self.cardinality
        log_table = theta[:-k].reshape(m, k + 1, k)
        top = log_table.max(axis=1, keepdims=True)
        log_table = log_table - (top + np.log(np.exp(log_table - top).sum(axis=1, keepdims=True)))
        if fixed_prior is None:
            log_prior = theta[-k:] - (theta[-k:].max() + np.log(np.exp(theta[-k:] - theta[-k:].max()).sum()))
        else:
            log_prior = np.log(fixed_prior)
        floor = math.log(1e-12)
        return np.concatenate([np.maximum(log_table, floor).ravel(), np.maximum(log_prior, floor)])

    def fit(self, L: ArrayLike, *, C: ArrayLike | None = None, y: ArrayLike | None = None) -> DawidSkene:
        """Estimate class balance and each heuristic's vote distribution with EM.

        Parameters
        ----------
        L
            ``n × m`` votes.
        C
            Optional vote confidences.
        y
            Optional manual labels; their records' posteriors are clamped to them.

        Returns
        -------
        DawidSkene
            ``self``.
        """
        votes, conf, labels = self._validate_fit(L, C, y)
        fixed_prior = self._check_params()
        # a vote with confidence 0 is no vote at all, also for which records are fitted
        votes, conf = _effective_votes(votes, conf)
        k, m = self.cardinality, votes.shape[1]
        keys = _vote_keys(votes, k) if conf is None else None
        enc = _encode(votes, conf, labels, k, covered_only=not self.fit_uncovered, keys=keys)
        if enc.row.shape[0] == 0:
            raise ValidationError(
                "no heuristic voted on any record, so there is nothing to learn from; "
                "check that the heuristics return labels for this task."
            )
        labeled = np.nonzero(enc.label >= 0)[0]
        clamp = np.zeros((k, labeled.shape[0]))
        clamp[enc.label[labeled], np.arange(labeled.shape[0])] = 1.0

        # Initialise from the soft majority vote; rows without votes start uniform.
        post = np.empty((k, enc.n_rows))
        vote_class = (enc.flat - 1) % (k + 1)
        for cls in range(k):
            post[cls] = np.bincount(enc.row, weights=enc.conf * (vote_class == cls), minlength=enc.n_rows)
        total = post.sum(axis=0)
        post = np.where(total > 0, post / np.where(total > 0, total, 1.0), 1.0 / k)
        post[:, labeled] = clamp

        output_mass = np.add.reduceat(enc.weight.take(enc.row) * enc.conf, enc.starts)

        def parameters(post: np.ndarray) -> np.ndarray:
            table, prior = self._parameters(enc, post, m, output_mass, fixed_prior)
            return np.concatenate([np.log(table).ravel(), np.log(prior)])

        def posteriors(theta: np.ndarray) -> np.ndarray:
            new_post = self._posteriors(enc, theta[:-k].reshape(m * (k + 1), k), theta[-k:])
            new_post[:, labeled] = clamp
            return new_post

        # SQUAREM (Varadhan & Roland 2008, scheme S3) on the log parameters theta. One cycle: two
        # EM steps theta0 -> theta1 -> theta2, the extrapolation theta0 + 2 a r + a^2 v along them,
        # and one EM step from there. Convergence is always judged on a plain EM step.
        n_iter = 0
        step_max = 1.0  # the step length a may grow (x4 each time it is reached), as in SQUAREM
        theta0 = parameters(post)
        q0 = posteriors(theta0)
        n_iter += 1
        converged = float(np.abs(q0 - post).max()) < self.tol
        post = q0
        fallback: np.ndarray | None = None  # theta2 of the last cycle, in case its extrapolation hurt
        last_change = math.inf
        while not converged and n_iter < self.max_iter:
            theta1 = parameters(q0)
            q1 = posteriors(theta1)
            n_iter += 1
            change = float(np.abs(q1 - q0).max())
            if fallback is not None and change > last_change and n_iter < self.max_iter:
                # the EM step from the extrapolated point is larger than the one before it:
                # continue with plain EM from the last cycle's second step instead
                theta0, fallback, step_max = fallback, None, 1.0
                q0 = post = posteriors(theta0)
                n_iter += 1
                continue
            fallback = None
            post = q1
            if change < self.tol or n_iter >= self.max_iter:
                break
            last_change = change
            theta2 = parameters(q1)
            r = theta1 - theta0
            v = theta2 - theta1 - r
            vv = float(v @ v)
            alpha = 1.0 if vv == 0.0 else min(max(math.sqrt(float(r @ r) / vv), 1.0), step_max)
            if alpha == step_max:
                step_max *= 4.0
            extrapolated = self._project(theta0 + 2.0 * alpha * r + alpha * alpha * v, m, fixed_prior)
            if n_iter + 2 > self.max_iter or not np.all(np.isfinite(extrapolated)):
                theta0 = theta2
            else:
                theta0 = parameters(posteriors(extrapolated))  # SQUAREM's stabilising EM step
                n_iter += 1
                fallback = theta2
            q0 = posteriors(theta0)
            n_iter += 1
            post = q0

        # Final M-step so the parameters match the final posteriors.
        table, prior = self._parameters(enc, post, m, output_mass, fixed_prior)
        confusion = table.reshape(m, k + 1, k).transpose(0, 2, 1)  # m × class × output
        vote_mass = prior[None, :] * (1.0 - confusion[:, :, 0])  # P(vote, Y = c)
        right_mass = prior[None, :] * confusion[:, np.arange(k), np.arange(1, k + 1)]
        self.confusion_ = np.ascontiguousarray(confusion)
        self.class_balance_ = prior
        self.accuracy_ = right_mass.sum(axis=1) / np.maximum(vote_mass.sum(axis=1), 1e-12)
        heuristic = (enc.flat - 1) // (k + 1)
        self.coverage_ = np.bincount(heuristic, weights=enc.weight[enc.row], minlength=m) / enc.weight.sum()
        self.n_iter_ = n_iter
        self.n_heuristics_ = m
        self._log_table = np.log(table)
        self._log_prior = np.log(prior)
        # fit(L) then predict(L) is the common path (the product's and the bench's): predict can
        # reuse this encoding when it gets the same votes, which its keys tell exactly.
        self._fitted_votes = None if keys is None else _FittedVotes(keys=keys, cardinality=k, encoding=enc)
        return self

    def predict_proba(self, L: ArrayLike, *, C: ArrayLike | None = None) -> np.ndarray:
        votes, conf = self._validate_predict(L, C)
        if votes.shape[0] == 0:
            return np.zeros((0, self.cardinality))
        votes, conf = _effective_votes(votes, conf)
        k = self.cardinality
        keys = _vote_keys(votes, k) if conf is None else None
        fitted = getattr(self, "_fitted_votes", None)
        if keys is not None and fitted is not None and fitted.matches(keys, k):
            enc = fitted.encoding
        else:
            # records without a vote keep an all-zero row, so only the others are encoded
            enc = _encode(votes, conf, None, k, covered_only=True, keys=keys)
        post = self._posteriors(enc, self._log_table, self._log_prior)
        post[:, ~enc.covered] = 0.0  # fit_uncovered fits records without votes; they still get no label
        proba = np.zeros((votes.shape[0], k))
        proba[slice(None) if enc.records is None else enc.records] = post.T[enc.inverse]
        return proba


# --------------------------------------------------------------------------- registry

#: Label models by name, for settings and the UI.
MODELS: dict[str, type[LabelModel]] = {
    "majority": MajorityVote,
    "refinery": RefineryWeightedVote,
    "dawid_skene": DawidSkene,
}

#: The model Loupe uses unless told otherwise, chosen by measurement (bench/ws_bench.py, ten
#: keyword heuristics per dataset, test accuracy with "no label" counted wrong): the most
#: accurate of ours on YouTube and SMS spam, and without manual labels at least as accurate as
#: Snorkel's LabelModel on the same vote matrix (YouTube 88.6 vs 88.4 %, SMS 88.0 vs 85.6 %).
#: Fit + predict on 100,000 x 20 synthetic votes: 0.047 s vs Snorkel's 0.66 s with one torch thread,
#: 14x (its fastest setting here; ~20x slower with torch's default threads on a busy 2-core machine;
#: Snorkel's time varies with the machine's load, 0.66-1.4 s, the ratio with it). Before SQUAREM,
#: the reuse of fit's encoding in predict and the faster encoding it took 0.18 s (4x).
#: With the manual labels of 10 % of train it is NOT as accurate: Snorkel then labels every
#: record no heuristic voted on by the class prior (YouTube 91.9 vs 88.9 %, SMS 97.5 vs 88.3 %),
#: which Loupe's contract forbids (records without votes get no label and count as wrong);
#: with that rule applied to Snorkel's output the default is ahead on both.
DEFAULT_MODEL = "dawid_skene"


def make_label_model(name: str = DEFAULT_MODEL, *, cardinality: int = 2, **params: object) -> LabelModel:
    """Create a label model by name.

    Parameters
    ----------
    name
        One of :data:`MODELS` (``"majority"``, ``"refinery"``, ``"dawid_skene"``).
    cardinality
        Number of classes.
    **params
        Keyword options of that model (e.g. ``tie_break="lowest"`` for ``"majority"``).

    Returns
    -------
    LabelModel
        An unfitted model.

    Raises
    ------
    ValidationError
        For an unknown name or option.
    """
    try:
        cls = MODELS[name]
    except KeyError as e:
        raise ValidationError(f"unknown label model {name!r}; expected one of {sorted(MODELS)}.") from e
    _check_cardinality(cardinality)
    try:
        return cls(cardinality, **params)  # type: ignore[arg-type]
    except TypeError as e:
        raise ValidationError(f"invalid option for label model {name!r}: {e}") from e


def _as_model(model: str | LabelModel, cardinality: int) -> LabelModel:
    if isinstance(model, LabelModel):
        if model.cardinality != cardinality:
            raise ValidationError(
                f"the label model has cardinality {model.cardinality}, but this task needs {cardinality}; "
                f"create it with cardinality={cardinality} or pass its name."
            )
        return model
    return make_label_model(model, cardinality=cardinality)


# --------------------------------------------------------------------------- multi-label


def multilabel_votes_from_lists(votes: Sequence[Sequence[Iterable[int] | None]], *, n_labels: int) -> np.ndarray:
    """Build an ``n × m × k`` multi-label vote tensor from per-record, per-heuristic label lists.

    Parameters
    ----------
    votes
        ``votes[i][j]`` is the labels heuristic ``j`` gave record ``i`` (empty or ``None`` =
        abstain).
    n_labels
        Number of labels ``k``.

    Returns
    -------
    numpy.ndarray
        ``int64`` tensor: 1 where the heuristic gave the label, ``-1`` (abstain) elsewhere.
        A multi-label heuristic that does not name a label says nothing about it, so that
        is an abstain, not a "no" vote.

    Raises
    ------
    ValidationError
        On ragged rows or a label outside ``0 .. n_labels - 1``.
    """
    n = len(votes)
    m = len(votes[0]) if n else 0
    out = np.full((n, m, n_labels), -1, dtype=np.int64)
    for i, row in enumerate(votes):
        if len(row) != m:
            raise ValidationError(
                f"every record needs one entry per heuristic ({m}), but record {i} has {len(row)}; "
                "use None for a heuristic that abstained."
            )
        for j, labels in enumerate(row):
            for label in labels or ():
                if not 0 <= int(label) < n_labels:
                    raise ValidationError(
                        f"record {i}, heuristic {j} gave label {label}, but labels are 0..{n_labels - 1}."
                    )
                out[i, j, int(label)] = 1
    return out


def multilabel_to_binary(V: ArrayLike) -> list[np.ndarray]:
    """Split an ``n × m × k`` multi-label vote tensor into ``k`` binary vote matrices.

    Parameters
    ----------
    V
        ``V[i, j, l]`` is 1 (heuristic ``j`` says record ``i`` has label ``l``), 0 (says it
        has not) or ``-1`` (abstain).

    Returns
    -------
    list of numpy.ndarray
        ``k`` matrices ``n × m`` with classes 0 = "not label ``l``", 1 = "label ``l``".

    Raises
    ------
    ValidationError
        If ``V`` is not 3-D or holds a value other than -1, 0, 1.
    """
    arr = np.asarray(V)
    if arr.ndim != 3:
        raise ValidationError(
            f"multi-label votes must be a 3-D array (records × heuristics × labels), but the shape is "
            f"{arr.shape}; build it with multilabel_votes_from_lists."
        )
    n, m, k = arr.shape
    tensor = check_vote_matrix(arr.reshape(n, m * k), cardinality=2, name="V").reshape(n, m, k)
    return [np.ascontiguousarray(tensor[:, :, label]) for label in range(k)]


def multilabel_from_binary(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Join per-label binary predictions back into a multi-label result.

    Parameters
    ----------
    predictions
        One ``(labels, confidence)`` pair per label, as returned by
        :meth:`LabelModel.predict_with_confidence` on the binary task of that label.

    Returns
    -------
    assigned : numpy.ndarray
        ``n × k`` bool, True where the binary model predicted class 1.
    confidence : numpy.ndarray
        ``n × k`` float, the confidence of the assigned labels, 0.0 elsewhere.
    """
    if not predictions:
        return np.zeros((0, 0), dtype=bool), np.zeros((0, 0))
    labels = np.column_stack([np.asarray(p[0]) for p in predictions])
    conf = np.column_stack([np.asarray(p[1], dtype=np.float64) for p in predictions])
    assigned = labels == 1
    return assigned, np.where(assigned, conf, 0.0)


def fit_predict_multilabel(
    V: ArrayLike,
    *,
    model: str | Callable[[], LabelModel] = DEFAULT_MODEL,
    y: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weakly supervise a multi-label task as one binary task per label.

    Parameters
    ----------
    V
        ``n × m × k`` votes (see :func:`multilabel_to_binary`).
    model
        A model name, or a factory returning a fresh binary model.
    y
        Optional ``n × k`` manual labels: 1 has the label, 0 has not, -1 unknown.

    Returns
    -------
    assigned, confidence : numpy.ndarray
        See :func:`multilabel_from_binary`.
    """
    matrices = multilabel_to_binary(V)
    labels = None
    if y is not None:
        labels = check_vote_matrix(y, cardinality=2, name="y")
        if labels.shape != (np.asarray(V).shape[0], len(matrices)):
            raise ValidationError(
                f"y must be records × labels {(np.asarray(V).shape[0], len(matrices))}, but it has shape "
                f"{labels.shape}; use -1 where a record's label is unknown."
            )
    results = []
    for index, L_label in enumerate(matrices):
        lm = make_label_model(model, cardinality=2) if isinstance(model, str) else model()
        target = None if labels is None else labels[:, index]
        if not (L_label >= 0).any() and (target is None or not (target >= 0).any()):
            # nobody voted on this label: nothing to fit, nothing assigned
            results.append((np.full(L_label.shape[0], -1), np.zeros(L_label.shape[0])))
            continue
        lm.fit(L_label, y=target)
        results.append(lm.predict_with_confidence(L_label))
    return multilabel_from_binary(results)


# --------------------------------------------------------------------------- extraction

#: A heuristic's span: ``(label, start_token, end_token)`` with the end exclusive, optionally
#: followed by a confidence in ``[0, 1]``.
Span = tuple[int, int, int] | tuple[int, int, int, float]


@dataclass(frozen=True)
class PredictedSpan:
    """A span chosen by weak supervision (``end`` exclusive)."""

    label: int
    start: int
    end: int
    confidence: float


@dataclass(frozen=True)
class TokenVotes:
    """Token-level votes of extraction heuristics, all records' tokens stacked.

    Attributes
    ----------
    L : numpy.ndarray
        ``T × m`` votes per token (``-1`` = the heuristic put no span on the token).
    C : numpy.ndarray
        ``T × m`` confidences of those votes.
    offsets : numpy.ndarray
        ``n + 1`` start row of each record; record ``i`` is rows ``offsets[i]:offsets[i+1]``.
    link : numpy.ndarray
        ``T × k`` bool: ``link[t, l]`` is True when one span of label ``l`` covers both token
        ``t - 1`` and ``t`` (keeps adjacent entities apart when turning tokens back into spans).
    """

    L: np.ndarray
    C: np.ndarray
    offsets: np.ndarray
    link: np.ndarray


def check_spans(
    spans: Sequence[Sequence[Iterable[Span]]], n_tokens: Sequence[int], n_labels: int, *, name: str = "spans"
) -> list[list[list[tuple[int, int, int, float]]]]:
    """Validate ``spans[i][j]`` lists against token counts and labels.

    Returns
    -------
    list
        The same nesting with every span as ``(label, start, end, confidence)``.

    Raises
    ------
    ValidationError
        On ragged input, a label outside ``0 .. n_labels - 1``, a span outside its record
        or a confidence outside ``[0, 1]``.
    """
    if len(spans) != len(n_tokens):
        raise ValidationError(
            f"{name} has {len(spans)} record(s) but n_tokens has {len(n_tokens)}; pass one entry per record."
        )
    m = len(spans[0]) if len(spans) else 0
    out = []
    for i, (row, size) in enumerate(zip(spans, n_tokens, strict=True)):
        if len(row) != m:
            raise ValidationError(
                f"every record needs one span list per heuristic ({m}), but record {i} has {len(row)}; "
                "use an empty list for a heuristic without spans."
            )
        clean_row = []
        for j, items in enumerate(row):
            clean = []
            for span in items or ():
                if len(span) not in (3, 4):
                    raise ValidationError(
                        f"record {i}, heuristic {j}: a span is (label, start, end[, confidence]), but got {span!r}."
                    )
                label, start, end = int(span[0]), int(span[1]), int(span[2])
                conf = float(span[3]) if len(span) == 4 else 1.0  # type: ignore[misc]
                if not 0 <= label < n_labels:
                    raise ValidationError(
                        f"record {i}, heuristic {j}: span label {label} is outside 0..{n_labels - 1}."
                    )
                if not 0 <= start < end <= size:
                    raise ValidationError(
                        f"record {i}, heuristic {j}: span ({start}, {end}) must satisfy 0 <= start < end <= "
                        f"{size} (the record's token count, end exclusive)."
                    )
                if not 0.0 <= conf <= 1.0:
                    raise ValidationError(f"record {i}, heuristic {j}: span confidence {conf} is outside [0, 1].")
                clean.append((label, start, end, conf))
            clean_row.append(clean)
        out.append(clean_row)
    return out


def check_manual_spans(
    manual_spans: Sequence[Iterable[Span] | None] | None, n_tokens: Sequence[int], n_labels: int
) -> list[list[tuple[int, int, int, float]] | None] | None:
    """Validate manual spans per record (``None`` = record not labeled) like :func:`check_spans`."""
    if manual_spans is None:
        return None
    if len(manual_spans) != len(n_tokens):
        raise ValidationError(
            f"manual_spans has {len(manual_spans)} record(s) but n_tokens has {len(n_tokens)}; "
            "pass None for records without manual labels."
        )
    wrapped = [[[] if s is None else list(s)] for s in manual_spans]
    checked = check_spans(wrapped, n_tokens, n_labels, name="manual_spans")
    return [None if manual_spans[i] is None else checked[i][0] for i in range(len(checked))]


def manual_token_labels(
    manual: list[list[tuple[int, int, int, float]] | None] | None, offsets: np.ndarray, outside: int
) -> np.ndarray:
    """Token labels from manual spans: the label, ``outside`` on labeled records' other tokens, else -1.

    Parameters
    ----------
    manual
        Output of :func:`check_manual_spans`.
    offsets
        Record boundaries (see :class:`TokenVotes`).
    outside
        Class index of "outside" (the number of span labels).

    Returns
    -------
    numpy.ndarray
    """
    y = np.full(int(offsets[-1]), -1, dtype=np.int64)
    if manual is None:
        return y
    for i, record_spans in enumerate(manual):
        if record_spans is None:
            continue
        y[offsets[i] : offsets[i + 1]] = outside
        for label, start, end, _ in record_spans:
            y[offsets[i] + start : offsets[i] + end] = label
    return y


def token_votes_from_spans(
    spans: Sequence[Sequence[Iterable[Span]]], n_tokens: Sequence[int], *, n_labels: int
) -> TokenVotes:
    """Turn extraction heuristics' spans into token-level votes.

    Parameters
    ----------
    spans
        ``spans[i][j]`` is the list of spans heuristic ``j`` emitted on record ``i``:
        ``(label, start, end)`` or ``(label, start, end, confidence)``, end exclusive.
    n_tokens
        Token count of each record.
    n_labels
        Number of span labels.

    Returns
    -------
    TokenVotes
        A token that a heuristic did not cover is an **abstain** of that heuristic, not an
        "outside" vote: heuristics only ever say where an entity is. When one heuristic's
        spans of different labels overlap, the first emitted span wins on the shared tokens.

    Raises
    ------
    ValidationError
        On ragged input, a label outside ``0 .. n_labels - 1`` or a span outside its record.
    """
    clean = check_spans(spans, n_tokens, n_labels)
    m = len(clean[0]) if clean else 0
    offsets = np.zeros(len(n_tokens) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.asarray(n_tokens, dtype=np.int64))
    total = int(offsets[-1])
    L = np.full((total, m), -1, dtype=np.int64)
    C = np.zeros((total, m))
    link = np.zeros((total, n_labels), dtype=bool)
    for i, row in enumerate(clean):
        base = int(offsets[i])
        for j, items in enumerate(row):
            # reversed so that the first emitted span is written last and wins
            for label, start, end, conf in reversed(items):
                L[base + start : base + end, j] = label
                C[base + start : base + end, j] = conf
                link[base + start + 1 : base + end, label] = True
    return TokenVotes(L=L, C=C, offsets=offsets, link=link)


def spans_from_token_labels(
    labels: np.ndarray,
    confidence: np.ndarray,
    *,
    offsets: np.ndarray,
    link: np.ndarray | None = None,
    n_labels: int | None = None,
) -> list[list[PredictedSpan]]:
    """Turn token predictions back into spans: maximal runs of one label.

    Parameters
    ----------
    labels
        ``(T,)`` predicted label per token; ``-1`` (and any label ``>= n_labels``, the outside
        class) is outside.
    confidence
        ``(T,)`` confidence per token.
    offsets
        ``n + 1`` record boundaries (see :class:`TokenVotes`); runs never cross records.
    link
        Optional ``T × k`` "same span" links; when given, a run is also cut where no single
        heuristic span joins two neighbouring tokens, so "Paris" "London" stay two entities.
    n_labels
        Number of span labels; labels at or above it are outside.

    Returns
    -------
    list of list of PredictedSpan
        Per record, spans in token order with ``confidence`` = mean token confidence.
    """
    labels = np.asarray(labels, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    inside = labels >= 0
    if n_labels is not None:
        inside &= labels < n_labels
    result: list[list[PredictedSpan]] = []
    for i in range(len(offsets) - 1):
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        lab, ins = labels[lo:hi], inside[lo:hi]
        # a run starts at an inside token whose left neighbour is outside, differs or is not linked
        starts = ins.copy()
        if hi - lo > 1:
            same = ins[1:] & ins[:-1] & (lab[1:] == lab[:-1])
            if link is not None:
                same &= link[lo + 1 : hi][np.arange(hi - lo - 1), np.clip(lab[1:], 0, link.shape[1] - 1)]
            starts[1:] &= ~same
        start_idx = np.nonzero(starts)[0]
        record_spans = []
        for s_pos, start in enumerate(start_idx):
            stop = start_idx[s_pos + 1] if s_pos + 1 < len(start_idx) else hi - lo
            end = start + 1
            while end < stop and ins[end]:
                end += 1
            record_spans.append(
                PredictedSpan(
                    label=int(lab[start]),
                    start=int(start),
                    end=int(end),
                    confidence=float(confidence[lo + start : lo + end].mean()),
                )
            )
        result.append(record_spans)
    return result


def fit_predict_extraction(
    spans: Sequence[Sequence[Iterable[Span]]],
    n_tokens: Sequence[int],
    *,
    n_labels: int,
    model: str | LabelModel = DEFAULT_MODEL,
    manual_spans: Sequence[Iterable[Span] | None] | None = None,
) -> list[list[PredictedSpan]]:
    """Weakly supervise an extraction task with a token-level label model.

    Heuristic spans become token votes (:func:`token_votes_from_spans`); the model has one
    class per span label plus an "outside" class (index ``n_labels``) that heuristics never
    vote for but manual labels can teach: with manual spans the semi-supervised models
    learn how often a heuristic fires on tokens that are not entities. Predicted tokens
    become spans again (:func:`spans_from_token_labels`).

    Parameters
    ----------
    spans
        ``spans[i][j]``: spans of heuristic ``j`` on record ``i`` (see :func:`token_votes_from_spans`).
    n_tokens
        Token count of each record.
    n_labels
        Number of span labels.
    model
        A model name or an unfitted model with ``cardinality == n_labels + 1``.
    manual_spans
        Optional valid manual spans per record (``None`` = record not labeled; ``[]`` =
        labeled, no entity).

    Returns
    -------
    list of list of PredictedSpan
    """
    votes = token_votes_from_spans(spans, n_tokens, n_labels=n_labels)
    manual = check_manual_spans(manual_spans, n_tokens, n_labels)
    y = manual_token_labels(manual, votes.offsets, outside=n_labels)
    lm = _as_model(model, n_labels + 1)
    if votes.L.shape[0] == 0 or votes.L.shape[1] == 0 or not ((votes.L >= 0).any() or (y >= 0).any()):
        return [[] for _ in range(len(votes.offsets) - 1)]
    lm.fit(votes.L, C=votes.C, y=y)
    labels, conf = lm.predict_with_confidence(votes.L, C=votes.C)
    return spans_from_token_labels(labels, conf, offsets=votes.offsets, link=votes.link, n_labels=n_labels)


def extraction_precision(
    votes: TokenVotes, y: np.ndarray, *, n_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token-level TP, FP, FN per heuristic and label against manual token labels.

    Parameters
    ----------
    votes
        Token votes of the heuristics.
    y
        ``(T,)`` manual token labels: a label, ``n_labels`` for outside, ``-1`` not labeled.
    n_labels
        Number of span labels.

    Returns
    -------
    true_positives, false_positives, false_negatives : numpy.ndarray
        ``m × n_labels`` token counts on manually labeled records. A token a heuristic
        labels ``l`` is a TP when the manual label is ``l``, else an FP of ``l``; a token
        manually labeled ``l`` that the heuristic did not label ``l`` is an FN of ``l``.
    """
    m = votes.L.shape[1]
    known = y >= 0
    lv, lk = votes.L[known], y[known]
    tp = np.zeros((m, n_labels), dtype=np.int64)
    fp = np.zeros((m, n_labels), dtype=np.int64)
    fn = np.zeros((m, n_labels), dtype=np.int64)
    for label in range(n_labels):
        said = lv == label
        truth = (lk == label)[:, None]
        tp[:, label] = (said & truth).sum(axis=0)
        fp[:, label] = (said & ~truth).sum(axis=0)
        fn[:, label] = (~said & truth).sum(axis=0)
    return tp, fp, fn


def refinery_extraction(
    spans: Sequence[Sequence[Iterable[Span]]],
    n_tokens: Sequence[int],
    *,
    n_labels: int,
    manual_spans: Sequence[Iterable[Span] | None] | None = None,
    prior_precision: float = REFINERY_PRIOR_PRECISION,
    unmeasured_precision: float = 0.0,
) -> list[list[PredictedSpan]]:
    """refinery's (weak-nlp) extraction rule.

    Each span weighs its heuristic's token-level precision for its label times its
    confidence (precision against manual spans, as in :func:`extraction_precision`;
    ``prior_precision`` when there is no manual label at all, ``unmeasured_precision``
    when the heuristic's label never met a manually labeled token). Per record and label,
    overlapping spans are chain-merged (the union of their tokens, weight = the largest).
    Across labels the heaviest merged span is kept and every span overlapping it dropped,
    then the next heaviest remaining, and so on. A kept span with weight > 0 gets
    confidence ``1 / (1 + exp(-(7w - 3)))``.

    Parameters
    ----------
    spans, n_tokens, n_labels, manual_spans
        As in :func:`fit_predict_extraction`.
    prior_precision, unmeasured_precision
        As in :class:`RefineryWeightedVote`.

    Returns
    -------
    list of list of PredictedSpan
        Per record, spans in token order.

    Notes
    -----
    Two deliberate departures from weak-nlp's code, both where it does not do what it
    describes: weak-nlp merges a span with the next one only if those two overlap (so a long
    span followed by two short ones inside it can yield overlapping chunks) and a span
    already dropped can still drop others. Here merging is transitive over the merged chunk
    and only kept spans drop others (greedy by weight, ties by position). Precision counts
    each token once per heuristic (weak-nlp counts a token twice when a heuristic's own spans
    overlap).
    """
    clean = check_spans(spans, n_tokens, n_labels)
    manual = check_manual_spans(manual_spans, n_tokens, n_labels)
    m = len(clean[0]) if clean else 0
    if manual is not None and any(record is not None for record in manual):
        votes = token_votes_from_spans(spans, n_tokens, n_labels=n_labels)
        y = manual_token_labels(manual, votes.offsets, outside=n_labels)
        tp, fp, _ = extraction_precision(votes, y, n_labels=n_labels)
        denominator = tp + fp
        precision = np.divide(
            tp, denominator, out=np.full((m, n_labels), float(unmeasured_precision)), where=denominator > 0
        )
    else:
        precision = np.full((m, n_labels), float(prior_precision))

    result: list[list[PredictedSpan]] = []
    for row in clean:
        chunks: list[tuple[float, int, int, int]] = []  # (weight, start, end, label)
        for label in range(n_labels):
            weighted = sorted(
                (start, end, precision[j, label] * conf)
                for j, items in enumerate(row)
                for (lab, start, end, conf) in items
                if lab == label
            )
            current: list[float] | None = None
            for start, end, weight in weighted:
                if current is not None and start < current[1]:
                    current[1] = max(current[1], end)
                    current[2] = max(current[2], weight)
                    continue
                if current is not None:
                    chunks.append((current[2], int(current[0]), int(current[1]), label))
                current = [start, end, weight]
            if current is not None:
                chunks.append((current[2], int(current[0]), int(current[1]), label))
        chunks.sort(key=lambda chunk: (-chunk[0], chunk[1], chunk[3]))
        kept: list[tuple[float, int, int, int]] = []
        for chunk in chunks:
            if all(chunk[2] <= other[1] or other[2] <= chunk[1] for other in kept):
                kept.append(chunk)
        result.append(
            sorted(
                (
                    PredictedSpan(label=lab, start=s, end=e, confidence=float(refinery_sigmoid(w)))
                    for w, s, e, lab in kept
                    if w > 0
                ),
                key=lambda span: (span.start, span.label),
            )
        )
    return result
