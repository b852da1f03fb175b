"""Apply named heuristics (plain Python callables) to records and collect their votes.

A heuristic is ``def lf(record) -> label | None``: a label name (or class index), or
``None`` to abstain. Applying ``m`` heuristics to ``n`` records gives the ``n × m`` vote
matrix that :mod:`core.labelmodels` and :mod:`core.heuristic_stats` read, plus per
heuristic how many records raised an error and the first message. Errors are counted
and reported, never swallowed silently, and never stop the other heuristics.

This runs the functions in-process; untrusted user code goes through the sandbox
worker instead, which can reuse :func:`votes_from_outputs` to map its results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ValidationError

__all__ = ["HeuristicErrors", "apply_heuristics", "votes_from_outputs"]

Heuristic = Callable[[Mapping[str, Any]], Hashable | None]


@dataclass(frozen=True)
class HeuristicErrors:
    """What went wrong while applying one heuristic.

    Attributes
    ----------
    count : int
        Records on which the heuristic raised or returned something that is not a label.
    first_message : str or None
        ``"ExceptionType: message"`` of the first failure, ``None`` without failures.
    first_record : int or None
        Position of the first failing record.
    """

    count: int = 0
    first_message: str | None = None
    first_record: int | None = None


def _named(
    functions: Mapping[str, Heuristic] | Sequence[Heuristic | tuple[str, Heuristic]],
) -> list[tuple[str, Heuristic]]:
    if isinstance(functions, Mapping):
        pairs = [(str(name), fn) for name, fn in functions.items()]
    else:
        pairs = []
        for item in functions:
            if isinstance(item, tuple):
                given, fn = item
                pairs.append((str(given), fn))
                continue
            found = getattr(item, "name", None) or getattr(item, "__name__", None)
            if not found:
                raise ValidationError(
                    f"heuristic {item!r} has no name; pass (name, function) pairs or a dict of name → function."
                )
            pairs.append((str(found), item))
    for name, fn in pairs:
        if not callable(fn):
            raise ValidationError(f"heuristic {name!r} is {type(fn).__name__}, not a function; pass a callable.")
    duplicates = sorted(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
    if duplicates:
        raise ValidationError(
            f"heuristic names must be unique, but these appear more than once: {', '.join(duplicates)}; "
            "rename them so every column of the vote matrix can be told apart."
        )
    return pairs


def votes_from_outputs(
    outputs: Sequence[Hashable | None], *, label_index: Mapping[Hashable, int]
) -> tuple[np.ndarray, list[int]]:
    """Map one heuristic's outputs to class indices.

    Parameters
    ----------
    outputs
        One output per record: a key of ``label_index`` or ``None`` (abstain).
    label_index
        Label (name or index) → class index.

    Returns
    -------
    votes : numpy.ndarray
        ``int64`` class indices, ``-1`` for ``None``.
    bad : list of int
        Positions whose output is neither ``None`` nor a known label (left at ``-1``).
    """
    votes = np.fromiter(
        (-1 if out is None else label_index.get(out, -2) if _hashable(out) else -2 for out in outputs),
        dtype=np.int64,
        count=len(outputs),
    )
    bad = np.nonzero(votes == -2)[0].tolist()
    votes[votes == -2] = -1
    return votes, bad


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def apply_heuristics(
    functions: Mapping[str, Heuristic] | Sequence[Heuristic | tuple[str, Heuristic]],
    records: Sequence[Mapping[str, Any]],
    *,
    label_names: Sequence[str],
) -> tuple[np.ndarray, dict[str, HeuristicErrors]]:
    """Apply heuristics to records.

    Parameters
    ----------
    functions
        ``{name: function}``, a list of ``(name, function)`` pairs, or a list of
        functions (named by their ``name`` attribute or ``__name__``). Each function takes
        one record and returns a label name, a class index, or ``None`` to abstain.
    records
        The records, e.g. dicts of attribute values.
    label_names
        The task's labels; class ``i`` is ``label_names[i]``. Heuristics may return the
        name or the index.

    Returns
    -------
    L : numpy.ndarray
        ``n × m`` ``int64`` votes in the order of ``functions``; ``-1`` = abstain or error.
    errors : dict of str to HeuristicErrors
        Per heuristic name, the failures: exceptions, and outputs that are not a label
        (e.g. a typo in a label name). Every heuristic has an entry (count 0 when clean).

    Raises
    ------
    ValidationError
        On duplicate heuristic names, duplicate label names or a non-callable.
    """
    pairs = _named(functions)
    labels = [str(name) for name in label_names]
    if len(set(labels)) != len(labels):
        duplicates = sorted(name for name, count in Counter(labels).items() if count > 1)
        raise ValidationError(f"label names must be unique, but these repeat: {', '.join(duplicates)}.")
    label_index: dict[Hashable, int] = {name: i for i, name in enumerate(labels)}
    # indices are accepted too; bool is an int in Python, so keep True/False out explicitly
    label_index.update({i: i for i in range(len(labels))})

    n = len(records)
    L = np.full((n, len(pairs)), -1, dtype=np.int64)
    errors: dict[str, HeuristicErrors] = {}
    for col, (name, fn) in enumerate(pairs):
        failures = 0
        first_message: str | None = None
        first_record: int | None = None
        try:
            # fast path: one list comprehension per heuristic, no per-record try
            outputs: list[Hashable | None] = [fn(record) for record in records]
        except Exception:
            outputs = []
            for position, record in enumerate(records):
                try:
                    outputs.append(fn(record))
                except Exception as e:
                    outputs.append(None)
                    failures += 1
                    if first_message is None:
                        first_message = f"{type(e).__name__}: {e}"
                        first_record = position
        votes, bad = votes_from_outputs(
            [None if isinstance(out, bool) else out for out in outputs], label_index=label_index
        )
        bad += [i for i, out in enumerate(outputs) if isinstance(out, bool)]
        if bad:
            bad.sort()
            failures += len(bad)
            position = bad[0]
            if first_record is None or position < first_record:
                first_record = position
                first_message = f"returned {outputs[position]!r}, expected one of {labels} (or its index) or None"
        L[:, col] = votes
        errors[name] = HeuristicErrors(count=failures, first_message=first_message, first_record=first_record)
    return L, errors
