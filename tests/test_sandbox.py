"""Labeling functions run in worker processes: results, and failures reported per heuristic."""

from __future__ import annotations

import os
import re
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import ValidationError
from core.sandbox import HeuristicRun, InvalidSpan, discover_functions, run_heuristics

DATA = Path(__file__).parent / "data"
TEXTS = ["a good movie", "bad plot", "great and awful", "nothing here"]
RECORDS = [{"text": t} for t in TEXTS]
IDS = [101, 102, 103, 104]
LABELS = ["positive", "negative"]


def classify(source: str, **options) -> dict[str, HeuristicRun]:
    options.setdefault("records", RECORDS)
    options.setdefault("record_ids", IDS)
    options.setdefault("time_limit_s", 10)
    return run_heuristics(textwrap.dedent(source), labels=LABELS, kind="classification", **options)


def _worker_children() -> list[int]:
    """Worker processes of this test process that are still around."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"sandbox_worker" in cmdline:
            found.append(int(entry.name))
    return found


# --- discovery ------------------------------------------------------------------------------------


def test_discovery_lists_public_top_level_functions_only():
    source = (DATA / "lf_keywords.py").read_text()
    assert discover_functions(source) == ["positive_words", "negative_regex"]


def test_discovery_does_not_run_the_code():
    assert discover_functions("import sys\nsys.exit(1)\ndef lf(record):\n    return None\n") == ["lf"]


def test_syntax_error_names_the_line():
    with pytest.raises(ValidationError, match=r"syntax error on line 3"):
        discover_functions("def lf(record):\n    return None\ndef broken(record)\n    return 1\n")


def test_duplicate_names_are_named_with_their_lines():
    source = "def lf(record):\n    return None\n\ndef lf(record):\n    return 'x'\n"
    with pytest.raises(ValidationError, match=r"duplicate .*lf \(lines 1, 4\)"):
        discover_functions(source)


def test_source_without_functions_is_rejected():
    with pytest.raises(ValidationError, match="no labeling function"):
        discover_functions("X = 1\n\ndef _helper(record):\n    return None\n")


def test_function_that_cannot_take_the_record_is_rejected():
    with pytest.raises(ValidationError, match=r"line 1: tokenize\(text, n\) must take exactly one argument"):
        discover_functions("def tokenize(text, n):\n    return []\n")
    assert discover_functions("def lf(record, threshold=3):\n    return None\n") == ["lf"]


# --- classification -------------------------------------------------------------------------------


def test_functions_from_a_file_use_its_imports_constants_and_helpers():
    runs = run_heuristics(
        (DATA / "lf_keywords.py").read_text(),
        records=RECORDS,
        record_ids=IDS,
        labels=LABELS,
        kind="classification",
    )
    assert list(runs) == ["positive_words", "negative_regex"]
    assert runs["positive_words"].state == "finished"
    assert runs["positive_words"].votes == ["positive", None, "positive", None]
    assert runs["negative_regex"].votes == [None, "negative", "negative", None]
    assert runs["negative_regex"].error is None


def test_function_names_selects_and_orders():
    runs = run_heuristics(
        (DATA / "lf_keywords.py").read_text(),
        function_names=["negative_regex"],
        records=RECORDS,
        record_ids=IDS,
        labels=LABELS,
        kind="classification",
    )
    assert list(runs) == ["negative_regex"]
    with pytest.raises(ValidationError, match="no labeling function named 'missing'"):
        classify("def lf(record):\n    return None\n", function_names=["missing"])


def test_undefined_label_is_reported_not_stored():
    runs = classify(
        """
        def lf(record):
            return "Positive" if "good" in record["text"] else "negative"
        """
    )
    run = runs["lf"]
    assert run.state == "finished"
    assert run.invalid_labels == {"Positive"}
    assert run.votes == [None, "negative", "negative", "negative"]


def test_results_keep_record_order_across_chunks():
    records = [{"n": i} for i in range(2500)]
    runs = classify(
        'def odd(record):\n    return "positive" if record["n"] % 2 else None\n',
        records=records,
        record_ids=list(range(2500)),
    )
    assert runs["odd"].votes == ["positive" if i % 2 else None for i in range(2500)]


def test_progress_reaches_the_total():
    seen: list[tuple[int, int]] = []
    classify(
        (DATA / "lf_keywords.py").read_text(),
        records=RECORDS * 600,
        record_ids=list(range(2400)),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (4800, 4800)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_numpy_values_arrive_as_plain_python_without_numpy_in_the_worker():
    runs = classify(
        """
        import sys
        def lf(record):
            plain = type(record["n"]) is int and type(record["x"]) is float
            return "positive" if plain and "numpy" not in sys.modules else "negative"
        """,
        records=[{"n": np.int64(3), "x": np.float32(0.5)}],
        record_ids=[1],
    )
    assert runs["lf"].votes == ["positive"]


def test_prints_are_kept_as_logs():
    runs = classify('def lf(record):\n    print("saw", record["text"])\n    return None\n')
    assert "saw a good movie\n" in runs["lf"].logs
    assert runs["lf"].state == "finished"


# --- lookup lists ---------------------------------------------------------------------------------


def test_lookup_lists_are_globals_and_importable_from_knowledge():
    runs = classify(
        """
        from knowledge import negative_terms

        def by_global(record):
            return "positive" if any(t in record["text"] for t in positive_terms) else None

        def by_import(record):
            return "negative" if any(t in record["text"] for t in negative_terms) else None
        """,
        lookup_lists={"positive_terms": ["good"], "negative_terms": ["bad", "awful"]},
    )
    assert runs["by_global"].votes == ["positive", None, None, None]
    assert runs["by_import"].votes == [None, "negative", "negative", None]


def test_lookup_list_name_must_be_an_identifier():
    with pytest.raises(ValidationError, match=r"'city names'.*Python identifier"):
        classify("def lf(record):\n    return None\n", lookup_lists={"city names": ["Paris"]})


# --- failures -------------------------------------------------------------------------------------


def test_exception_names_type_message_line_and_record_and_stores_nothing():
    runs = classify(
        """
        def lf(record):
            if record["text"] == "bad plot":
                raise ValueError("cannot handle this one")
            return "positive"
        """
    )
    run = runs["lf"]
    assert run.state == "failed"
    assert run.votes == []
    assert run.failed_record_id == 102
    assert "ValueError: cannot handle this one" in run.error
    assert "line 4 in lf" in run.error
    assert "on record 102" in run.error


def test_infinite_loop_times_out_and_the_next_function_still_runs():
    start = time.monotonic()
    runs = classify(
        """
        def loop(record):
            while True:
                pass

        def ok(record):
            return "positive"
        """,
        time_limit_s=2,
        max_workers=1,
    )
    assert runs["loop"].state == "timeout"
    assert "time limit of 2 s" in runs["loop"].error
    # where it was stuck, from the worker's stack: the sample lands on the `while` or on its body
    assert re.search(r"line [34] in loop", runs["loop"].error)
    assert runs["loop"].failed_record_id == 101
    assert runs["ok"].state == "finished"
    assert runs["ok"].votes == ["positive"] * 4
    assert time.monotonic() - start < 6


@pytest.mark.parametrize(
    "body",
    ["data = bytearray(10**10)", "data = []\n    while True:\n        data.append(' ' * 10**6)"],
    ids=["huge-allocation", "growing-list"],
)
def test_memory_hog_is_reported(body: str):
    runs = classify(f"def hog(record):\n    {body}\n\ndef ok(record):\n    return None\n", memory_limit_mb=256)
    assert runs["hog"].state == "memory"
    assert "MemoryError" in runs["hog"].error
    assert "256 MB" in runs["hog"].error
    assert runs["hog"].failed_record_id == 101
    assert runs["ok"].state == "finished"


def test_sys_exit_is_reported():
    runs = classify("import sys\n\ndef lf(record):\n    sys.exit(3)\n")
    assert runs["lf"].state == "failed"
    assert runs["lf"].error.startswith("SystemExit: 3")
    assert runs["lf"].failed_record_id == 101


def test_os_exit_is_reported_with_the_record():
    runs = classify(
        """
        import os

        def lf(record):
            if record["text"] == "great and awful":
                os._exit(1)
            return None
        """
    )
    assert runs["lf"].state == "failed"
    assert "exited with code 1" in runs["lf"].error
    assert runs["lf"].failed_record_id == 103


def test_segfault_is_reported():
    runs = classify("import ctypes\n\ndef lf(record):\n    return ctypes.string_at(0)\n")
    assert runs["lf"].state == "failed"
    assert "SIGSEGV" in runs["lf"].error
    assert "line 4 in lf" in runs["lf"].error


def test_error_at_module_level_fails_before_any_record():
    runs = classify("import no_such_module_here\n\ndef lf(record):\n    return None\n")
    assert runs["lf"].state == "failed"
    assert "ModuleNotFoundError" in runs["lf"].error
    assert "before any record" in runs["lf"].error
    assert runs["lf"].failed_record_id is None


def test_returning_a_non_label_is_a_failure_that_mentions_helpers():
    runs = classify("def tokens(record):\n    return record['text'].split()\n")
    assert runs["tokens"].state == "failed"
    assert "returned ['a', 'good', 'movie'] (list)" in runs["tokens"].error
    assert "start with `_`" in runs["tokens"].error


def test_raising_progress_callback_stops_the_workers():
    def stop(done: int, total: int) -> None:
        if done == 0:
            raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        classify("def loop(record):\n    while True:\n        pass\n", time_limit_s=30, progress=stop)
    assert time.monotonic() - start < 5
    assert _worker_children() == []


# --- extraction -----------------------------------------------------------------------------------


EXTRACTION = """
def capitalized(record):
    for i, token in enumerate(record["text"].split()):
        if token[:1].isupper():
            yield "NAME", i, i + 1

def out_of_range(record):
    yield "NAME", 0, 99
    yield "NAME", 2, 2
    yield "NAME", 0, 1

def unknown_label(record):
    yield "PERSON", 0, 1
"""


def extract(source: str, **options) -> dict[str, HeuristicRun]:
    texts = ["Ada met Grace", "no names here", "Paris"]
    return run_heuristics(
        textwrap.dedent(source),
        records=[{"text": t} for t in texts],
        record_ids=["r1", "r2", "r3"],
        labels=["NAME"],
        kind="extraction",
        token_counts=[len(t.split()) for t in texts],
        time_limit_s=10,
        **options,
    )


def test_extraction_spans_are_validated():
    runs = extract(EXTRACTION)
    assert runs["capitalized"].votes == [[("NAME", 0, 1), ("NAME", 2, 3)], [], [("NAME", 0, 1)]]
    bounded = runs["out_of_range"]
    assert bounded.state == "finished"
    assert bounded.votes == [[("NAME", 0, 1)]] * 3
    assert bounded.n_invalid_spans == 6
    assert bounded.invalid_spans[:2] == [InvalidSpan("r1", "NAME", 0, 99), InvalidSpan("r1", "NAME", 2, 2)]
    assert runs["unknown_label"].invalid_labels == {"PERSON"}
    assert runs["unknown_label"].votes == [[], [], []]


def test_extraction_needs_generators_and_triples():
    runs = extract(
        """
        def returns(record):
            return [("NAME", 0, 1)]

        def pairs(record):
            yield "NAME", 0
        """
    )
    assert runs["returns"].state == "failed"
    assert "does not use `yield`" in runs["returns"].error
    assert runs["pairs"].state == "failed"
    assert "expected (label, start, end)" in runs["pairs"].error
    assert runs["pairs"].failed_record_id == "r1"


def test_extraction_requires_token_counts():
    with pytest.raises(ValidationError, match="token_counts"):
        run_heuristics(EXTRACTION, records=[{"text": "x"}], record_ids=[1], labels=["NAME"], kind="extraction")


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValidationError, match="records has 4 and record_ids has 3"):
        classify("def lf(record):\n    return None\n", record_ids=IDS[:3])


# --- batches of programs with their own sources ---------------------------------------------------


def test_run_programs_runs_each_source_in_its_own_worker_and_reports_each_on_its_own():
    from core.sandbox import Program, run_programs

    done: list[str] = []
    programs = [
        Program(name="good", source="def good(record):\n    return 'positive' if 'good' in record['text'] else None\n"),
        Program(name="boom", source="def boom(record):\n    return 1 / 0\n"),
        Program(name="listed", source="def listed(record):\n    return 'negative' if any(w in record['text'] "
                "for w in words) else None\n", lookup_lists={"words": ["bad", "awful"]}),
    ]
    runs = run_programs(programs, records=RECORDS, record_ids=IDS, labels=LABELS, kind="classification",
                        time_limit_s=10, on_run=lambda run: done.append(run.name))
    assert list(runs) == ["good", "boom", "listed"]
    assert runs["good"].votes == ["positive", None, None, None]
    assert runs["boom"].state == "failed" and "ZeroDivisionError" in runs["boom"].error
    assert runs["boom"].failed_record_id == 101
    assert runs["listed"].votes == [None, "negative", "negative", None]
    assert sorted(done) == ["boom", "good", "listed"]  # each reported as it ended


def test_run_programs_rejects_a_program_whose_source_lacks_its_function():
    from core.sandbox import Program, run_programs

    with pytest.raises(ValidationError, match="no labeling function named 'other'"):
        run_programs([Program(name="other", source="def lf(record):\n    return None\n")], records=RECORDS,
                     record_ids=IDS, labels=LABELS, kind="classification")


# --- multi-label ----------------------------------------------------------------------------------


def test_multilabel_functions_return_several_labels_and_unknown_ones_are_reported():
    runs = run_heuristics(textwrap.dedent('''
        def topics(record):
            found = set()
            if "good" in record["text"] or "great" in record["text"]:
                found.add("positive")
            if "bad" in record["text"] or "awful" in record["text"]:
                found.add("negative")
            if "nothing" in record["text"]:
                return ("negative", "neutral")
            return sorted(found) or None


        def single(record):
            return "positive" if "good" in record["text"] else None
    '''), records=RECORDS, record_ids=IDS, labels=LABELS, kind="multilabel", time_limit_s=10)
    assert runs["topics"].state == "finished"
    assert runs["topics"].votes == [["positive"], ["negative"], ["negative", "positive"], ["negative"]]
    assert runs["topics"].invalid_labels == {"neutral"}
    assert runs["single"].votes == [["positive"], None, None, None]


def test_multilabel_list_with_a_non_label_fails_with_the_record():
    runs = run_heuristics("def lf(record):\n    return ['positive', 3]\n", records=RECORDS, record_ids=IDS,
                          labels=LABELS, kind="multilabel", time_limit_s=10)
    assert runs["lf"].state == "failed"
    assert "a list of label names" in runs["lf"].error and runs["lf"].failed_record_id == 101


def test_classification_still_rejects_a_list():
    runs = classify("def lf(record):\n    return ['positive']\n")
    assert runs["lf"].state == "failed" and "returns a label name (str) or None" in runs["lf"].error
