"""Import speed and memory: Loupe's ``import_file`` against a plain pandas + sqlite3 baseline.

A seeded synthetic CSV (two text attributes of 20 words from a fixed
vocabulary, one category) is written to a temp dir, then imported

* by Loupe: ``core.importers.import_file`` into a fresh SQLite store (type
  inference, conversion, running ids, one transaction), and
* by the baseline: ``pandas.read_csv`` plus one ``executemany`` INSERT into a
  fresh SQLite table with the ``sqlite3`` module.

Each side runs in its own ``spawn`` child process, so the peak memory is that
side's own peak resident set (``ru_maxrss`` of the child, read in the child as
it finishes). Tokenization is deferred until an extraction task needs it (see
``core/tokenize.py``); the script times it separately, for information.

Goal: Loupe within 3x of the baseline's records/s, peak memory under 1 GB.
The last line is the headline::

    import_speed: VALUE records/s (baseline VALUE records/s, ratio R)

Usage: ``python bench/import_bench.py [--quick] [--records N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FULL_RECORDS = 100_000
QUICK_RECORDS = 20_000
WORDS_PER_TEXT = 20
CATEGORIES = ("news", "sports", "tech", "arts", "science")
GOAL_RATIO = 3.0
GOAL_PEAK_MB = 1024.0


def write_csv(path: Path, *, records: int, seed: int) -> None:
    """``title,body,category``: two texts of WORDS_PER_TEXT words from a seeded vocabulary, and a category."""
    rng = random.Random(seed)
    syllables = ("ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "da", "shi", "ron", "tel", "mar", "qui")
    vocabulary = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(1, 3))) for _ in range(5000)})
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["title", "body", "category"])
        for _ in range(records):
            writer.writerow([
                " ".join(rng.choices(vocabulary, k=WORDS_PER_TEXT)) + ".",
                " ".join(rng.choices(vocabulary, k=WORDS_PER_TEXT)) + "!",
                rng.choice(CATEGORIES),
            ])


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def loupe_side(csv_path: str, db_path: str, queue: Any) -> None:
    """Child: Loupe's import into a fresh SQLite store."""
    sys.path.insert(0, str(REPO))
    from core.importers import import_file
    from core.store import make_engine

    engine = make_engine(f"sqlite:///{db_path}")
    started, cpu = time.perf_counter(), time.process_time()
    result = import_file(engine, project="bench", path=csv_path)
    seconds = time.perf_counter() - started
    queue.put({"seconds": seconds, "cpu": time.process_time() - cpu, "records": result.created,
               "peak_mb": _peak_mb()})


def baseline_side(csv_path: str, db_path: str, queue: Any) -> None:
    """Child: pandas.read_csv and one executemany into a plain SQLite table."""
    import sqlite3

    import pandas as pd

    started, cpu = time.perf_counter(), time.process_time()
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    connection = sqlite3.connect(db_path)
    connection.execute("CREATE TABLE record (id INTEGER PRIMARY KEY, title TEXT, body TEXT, category TEXT)")
    connection.executemany(
        "INSERT INTO record (title, body, category) VALUES (?, ?, ?)", frame.itertuples(index=False, name=None)
    )
    connection.commit()
    connection.close()
    seconds = time.perf_counter() - started
    queue.put({"seconds": seconds, "cpu": time.process_time() - cpu, "records": len(frame), "peak_mb": _peak_mb()})


def tokenize_side(csv_path: str, queue: Any) -> None:
    """Child: what tokenizing both text attributes would cost (``core.tokenize.tokenize_texts``)."""
    sys.path.insert(0, str(REPO))
    from core.tokenize import get_nlp, tokenize_texts

    with open(csv_path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    nlp = get_nlp("blank:en")
    started = time.perf_counter()
    tokens = 0
    for column in ("title", "body"):
        tokens += sum(len(offsets) for offsets in tokenize_texts((r[column] for r in rows), nlp=nlp))
    seconds = time.perf_counter() - started
    queue.put({"seconds": seconds, "texts": 2 * len(rows), "tokens": tokens, "peak_mb": _peak_mb()})


def in_child(target: Any, *args: Any) -> dict[str, Any]:
    """Run ``target(*args, queue)`` in a fresh spawned interpreter and return what it reports."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    try:
        report = queue.get(timeout=900)
    finally:
        process.join(timeout=60)
    if process.exitcode != 0:
        raise RuntimeError(f"{target.__name__} exited with code {process.exitcode}")
    return report


def best_of(repeat: int, target: Any, csv_path: Path, workdir: Path) -> dict[str, Any]:
    """The fastest of ``repeat`` runs, each into a new database file; peak memory is the largest seen."""
    runs = []
    for i in range(repeat):
        db_path = workdir / f"{target.__name__}_{i}.db"
        runs.append(in_child(target, str(csv_path), str(db_path)))
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "peak_mb": max(r["peak_mb"] for r in runs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RECORDS:,} records instead of {FULL_RECORDS:,}")
    parser.add_argument("--records", type=int, help="number of records (overrides --quick)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the fastest counts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-tokenize", action="store_true", help="skip timing the deferred tokenization")
    args = parser.parse_args(argv)
    records = args.records or (QUICK_RECORDS if args.quick else FULL_RECORDS)

    with tempfile.TemporaryDirectory(prefix="loupe-import-bench-") as tmp:
        workdir = Path(tmp)
        csv_path = workdir / "synthetic.csv"
        write_csv(csv_path, records=records, seed=args.seed)
        size_mb = csv_path.stat().st_size / 1e6
        print(f"data: {records:,} records (title and body of {WORDS_PER_TEXT} words, category), "
              f"CSV {size_mb:.1f} MB, seed {args.seed}")

        baseline = best_of(args.repeat, baseline_side, csv_path, workdir)
        loupe = best_of(args.repeat, loupe_side, csv_path, workdir)
        if loupe["records"] != records or baseline["records"] != records:
            raise RuntimeError(f"expected {records} records, loupe {loupe['records']}, baseline {baseline['records']}")
        base_speed = records / baseline["seconds"]
        loupe_speed = records / loupe["seconds"]
        ratio = base_speed / loupe_speed

        print(f"baseline (pandas.read_csv + sqlite3 executemany): {baseline['seconds']:.2f} s "
              f"({baseline['cpu']:.2f} s CPU), {base_speed:,.0f} records/s, peak RSS {baseline['peak_mb']:.0f} MB")
        print(f"loupe import_file into SQLite: {loupe['seconds']:.2f} s ({loupe['cpu']:.2f} s CPU), "
              f"{loupe_speed:,.0f} records/s, peak RSS {loupe['peak_mb']:.0f} MB")
        # On a busy machine wall time is noisy; the CPU-time ratio says the same with less noise.
        print(f"CPU-time ratio: {loupe['cpu'] / baseline['cpu']:.2f}")
        if not args.no_tokenize:
            tok = in_child(tokenize_side, str(csv_path))
            print(f"tokenizing title and body (deferred until an extraction task needs it; not in the import): "
                  f"{tok['seconds']:.2f} s for {tok['texts']:,} texts, {tok['tokens']:,} tokens, "
                  f"{tok['texts'] / tok['seconds']:,.0f} texts/s")
        speed_ok = ratio <= GOAL_RATIO
        memory_ok = loupe["peak_mb"] < GOAL_PEAK_MB
        print(f"goal: within {GOAL_RATIO:g}x of the baseline: {'met' if speed_ok else 'MISSED'} (ratio {ratio:.2f}); "
              f"peak memory under {GOAL_PEAK_MB:.0f} MB: {'met' if memory_ok else 'MISSED'} "
              f"({loupe['peak_mb']:.0f} MB)")
        print(f"import_speed: {loupe_speed:.0f} records/s (baseline {base_speed:.0f} records/s, ratio {ratio:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
