"""Labeling functions for tests/test_sandbox.py: read as text by the test, never imported.

Two heuristics (positive_words, negative_regex); the import, the constants and the
private helpers are the file's own and must be usable by the heuristics.
"""

import re

POSITIVE = ("good", "great")
_NEGATIVE = re.compile(r"\b(bad|awful)\b")


def _words(text):
    return text.lower().split()


def positive_words(record):
    return "positive" if any(word in POSITIVE for word in _words(record["text"])) else None


def negative_regex(record):
    return "negative" if _NEGATIVE.search(record["text"]) else None


def _not_a_heuristic(record):
    return "positive"
