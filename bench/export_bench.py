"""Export benchmark: Loupe's streamed refinery JSON export against ``pandas.DataFrame.to_json``.

Run from the repository root::

    python bench/export_bench.py           # 100,000 labeled records
    python bench/export_bench.py --quick   # 20,000 records, well under a minute

What it does, in one run on this machine:

1. Builds a project in a temporary SQLite store: ``N`` records with a text, a
   category and an integer attribute, one classification task with three labels,
   a manual label on every record and a weak-supervision label with confidence.
2. In a fresh process, exports it with :func:`core.exporters.export_project`
   (default preset: refinery JSON), which streams record by record.
3. In another fresh process, the baseline: the same table (same columns, same
   values) loaded with ``pandas.read_sql`` and written with
   ``DataFrame.to_json(orient="records")``. The baseline time is ``to_json``
   alone (the table already in memory), as the issue asks; ``read_sql`` plus
   ``to_json`` is printed for reference. Each side is the best of five runs (``--repeat``).

Peak memory is each process's peak resident set size (``ru_maxrss``), which
includes the interpreter and imported libraries. The last line is the headline::

    export_speed: 0.44 s (baseline 0.23 s, ratio 1.91)
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROJECT = "export-bench"
WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "spam", "and", "ham", "comments",
    "arrive", "from", "many", "channels", "every", "day", "with", "links", "offers", "music", "videos", "songs",
    "subscribe", "please", "check", "out",
)  # fmt: skip
LABELS = ("positive", "negative", "neutral")


def peak_mb() -> float:
    """This process's peak resident set size in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(db: Path, n: int) -> None:
    """A project of ``n`` records, each with a manual and a weak-supervision label."""
    from sqlalchemy import insert

    from core.store import make_engine, session_scope
    from core.store.models import Annotator, Attribute, Label, LabelAssociation, LabelingTask, Project, Record

    engine = make_engine(f"sqlite:///{db}")
    rng = random.Random(7)
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        project = Project(name=PROJECT)
        annotator = Annotator(name="bench")
        session.add_all([project, annotator])
        session.flush()
        pid = project.id or 0
        for position, (name, kind) in enumerate((("text", "TEXT"), ("channel", "CATEGORY"), ("likes", "INTEGER"))):
            session.add(Attribute(project_id=pid, name=name, data_type=kind, position=position))
        task = LabelingTask(project_id=pid, name="sentiment", kind="classification")
        session.add(task)
        session.flush()
        labels = [Label(task_id=task.id or 0, name=name, position=i) for i, name in enumerate(LABELS)]
        session.add_all(labels)
        session.flush()
        for start in range(0, n, 10_000):
            rows = [
                {"project_id": pid, "running_id": i + 1, "key": str(i + 1), "created_at": now, "updated_at": now,
                 "data": {"text": " ".join(rng.choices(WORDS, k=rng.randint(8, 30))),
                          "channel": f"channel {rng.randint(1, 50)}", "likes": rng.randint(0, 10_000)}}
                for i in range(start, min(start + 10_000, n))
            ]
            session.execute(insert(Record), rows)
        from sqlalchemy import select

        ids = list(session.execute(select(Record.id).where(Record.project_id == pid).order_by(Record.running_id))
                   .scalars())
        for start in range(0, n, 10_000):
            assoc = []
            for rid in ids[start : start + 10_000]:
                manual, ws = rng.choice(labels), rng.choice(labels)
                common = {"project_id": pid, "record_id": rid, "task_id": task.id, "created_at": now,
                          "updated_at": now}
                assoc.append({**common, "label_id": manual.id, "source_type": "MANUAL",
                              "annotator_id": annotator.id, "confidence": None})
                assoc.append({**common, "label_id": ws.id, "source_type": "WEAK_SUPERVISION", "annotator_id": None,
                              "confidence": round(rng.uniform(0.5, 1.0), 4)})
            session.execute(insert(LabelAssociation), assoc)
    # Closing the builder's connections checkpoints SQLite's write-ahead log (some 80 MB after one big
    # transaction) into the database: the workers read the store at rest, not through the log.
    engine.dispose()


def worker_loupe(db: Path, out: Path, repeat: int) -> dict[str, Any]:
    from core.exporters import ExportOptions, export_project
    from core.store import make_engine

    engine = make_engine(f"sqlite:///{db}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = export_project(engine, project=PROJECT, options=ExportOptions(), out=out)
        times.append(time.perf_counter() - started)
    return {"seconds": min(times), "records": result.records, "peak_mb": peak_mb(), "bytes": out.stat().st_size}


def worker_pandas(db: Path, out: Path, repeat: int) -> dict[str, Any]:
    loads, writes = [], []
    for _ in range(repeat):
        load, write, n = _pandas_once(db, out)
        loads.append(load)
        writes.append(write)
    return {"seconds": min(writes), "load_seconds": min(loads), "records": n, "peak_mb": peak_mb(),
            "bytes": out.stat().st_size}


def _pandas_once(db: Path, out: Path) -> tuple[float, float, int]:
    import sqlite3

    import pandas as pd

    started = time.perf_counter()
    with sqlite3.connect(db) as conn:
        frame = pd.read_sql(
            """
            SELECT json_extract(r.data, '$.text') AS text, json_extract(r.data, '$.channel') AS channel,
                   json_extract(r.data, '$.likes') AS likes,
                   lm.name AS "__sentiment__MANUAL", lw.name AS "__sentiment__WEAK_SUPERVISION",
                   w.confidence AS "__sentiment__WEAK_SUPERVISION__confidence"
            FROM record r
            LEFT JOIN labelassociation m ON m.record_id = r.id AND m.source_type = 'MANUAL'
            LEFT JOIN label lm ON lm.id = m.label_id
            LEFT JOIN labelassociation w ON w.record_id = r.id AND w.source_type = 'WEAK_SUPERVISION'
            LEFT JOIN label lw ON lw.id = w.label_id
            ORDER BY r.running_id
            """,
            conn,
        )
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    frame.to_json(out, orient="records", force_ascii=False, lines=False)
    return loaded, time.perf_counter() - started, len(frame)


def run_worker(kind: str, db: Path, out: Path, repeat: int) -> dict[str, Any]:
    """Run one measurement (best of ``repeat``) in a fresh interpreter so peak memory is its own."""
    output = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--db", str(db), "--out", str(out), "--repeat", str(repeat)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=None, help="records to export (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="20,000 records: under a minute")
    parser.add_argument("--worker", choices=["loupe", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the best is reported")
    args = parser.parse_args(argv)
    if args.worker:
        fn = worker_loupe if args.worker == "loupe" else worker_pandas
        print(json.dumps(fn(args.db, args.out, args.repeat)))
        return 0
    n = args.records or (20_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory(prefix="loupe-export-bench-") as tmp:
        db = Path(tmp) / "bench.db"
        started = time.perf_counter()
        build(db, n)
        print(f"built {n:,} labeled records in {time.perf_counter() - started:.1f}s")
        loupe = run_worker("loupe", db, Path(tmp) / "loupe.json", args.repeat)
        baseline = run_worker("pandas", db, Path(tmp) / "pandas.json", args.repeat)
    # The baseline: pandas.DataFrame.to_json of the same table (already in memory). Reading that table from
    # the store with read_sql is extra work the baseline gets for free; read_sql + to_json is printed for reference.
    ratio = loupe["seconds"] / baseline["seconds"]
    pandas_total = baseline["seconds"] + baseline["load_seconds"]
    ok = ratio <= 2 and loupe["peak_mb"] < 500
    print(f"loupe export (streamed):   {loupe['seconds']:.2f} s, {loupe['records'] / loupe['seconds']:,.0f} "
          f"records/s, peak RSS {loupe['peak_mb']:.0f} MB, {loupe['bytes'] / 1e6:.1f} MB written")
    print(f"pandas to_json (baseline): {baseline['seconds']:.2f} s, peak RSS {baseline['peak_mb']:.0f} MB "
          f"(with the table in memory), {baseline['bytes'] / 1e6:.1f} MB written")
    print(f"for reference, read_sql + to_json: {pandas_total:.2f} s (ratio {loupe['seconds'] / pandas_total:.2f})")
    print(f"goal: within 2x of to_json and peak memory < 500 MB: {'met' if ok else 'not met'} (ratio {ratio:.2f}, "
          f"{loupe['peak_mb']:.0f} MB)")
    print(f"export_speed: {loupe['seconds']:.2f} s (baseline {baseline['seconds']:.2f} s, ratio {ratio:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
