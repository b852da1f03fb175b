"""Data browser benchmark: one filtered, sorted page of 100 rows on a large project.

Run from the repository root::

    python bench/browser_bench.py            # 1,000,000 records (about 2 minutes to build, once)
    python bench/browser_bench.py --quick    # 100,000 records, under a minute
    python bench/browser_bench.py --db /tmp/browser-1m.db   # keep the database and reuse it next time

The project: records with a text, a channel (20 values) and a length; one
classification task (spam/ham) with weak supervision on 90 % of the records
(random confidence), manual labels on 5 % (three annotators) and three
heuristics hitting 30 % each: about 3.3 associations per record.

Each scenario times :func:`core.browse.browse_page` (the ids in SQL, then the
page's columns: attributes, valid manual label, weak supervision, confidence,
heuristics, annotators, status, comments) against a bare, hand-written SQL
query returning the same 100 ids with their data (the same conditions, so the
same plan: an attribute condition compares the attribute's text, which no
sort index serves), checks both return the same ids, and prints the median of
several runs. The seeded random order's baseline is hand-written SQL too: the
seed's first bucket of the ``random_key`` index ordered by the seeded hash
(the plan Loupe's page uses), and, for information, the plain
``ORDER BY <seeded key> LIMIT 100`` over the whole filtered set.

The Data page also shows how many records match, so each scenario times the
count on its own (against a bare ``SELECT count(*)`` with the same conditions)
and the page with its count (``browse_page(with_total=True)``), which is what
a page costs when the count is not cached yet.

The last line is the headline: the first scenario (weak supervision says spam,
no manual label, channel ch3; least confident first), rows only.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from core.browse import browse_page, count_filtered  # noqa: E402
from core.filters import (  # noqa: E402
    AttributeFilter,
    AttributeOp,
    Filter,
    LabelMatch,
    ManualLabelFilter,
    Sort,
    SortBy,
    WeakLabelFilter,
)
from core.store import make_engine, session_scope  # noqa: E402
from core.store.browse_indexes import (  # noqa: E402
    _A,
    _B,
    _C,
    _P,
    SeededOrder,
    ensure_attribute_indexes,
    ensure_browse_indexes,
)
from core.store.tasks import list_attributes  # noqa: E402

PROJECT = "bench"
CHUNK = 50_000
WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "spam", "offer", "free", "click",
         "subscribe", "video", "love", "song")
WS = "WEAK_SUPERVISION"


def _rows(n: int, seed: int = 0) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Chunks of (records, associations) rows, deterministic for a seed."""
    rnd = random.Random(seed)
    aid = 0
    records: list[tuple[Any, ...]] = []
    assocs: list[tuple[Any, ...]] = []
    now = "2024-01-01 00:00:00"
    for i in range(1, n + 1):
        data = {"text": " ".join(rnd.choice(WORDS) for _ in range(8)), "channel": f"ch{rnd.randrange(20)}",
                "length": rnd.randint(1, 500)}
        records.append((i, 1, i, str(i), json.dumps(data), now, now))
        if rnd.random() < 0.9:
            aid += 1
            assocs.append((aid, 1, i, 1, rnd.choice((1, 2)), WS, None, None, rnd.random(), False, now, now))
        if rnd.random() < 0.05:
            aid += 1
            assocs.append((aid, 1, i, 1, rnd.choice((1, 2)), "MANUAL", None, rnd.choice((1, 2, 3)), None, False, now,
                           now))
        for h in range(3):
            if rnd.random() < 0.3:
                aid += 1
                assocs.append((aid, 1, i, 1, rnd.choice((1, 2)), "HEURISTIC", f"h{h}", None, 1.0, False, now, now))
        if len(records) == CHUNK:
            yield records, assocs
            records, assocs = [], []
    if records:
        yield records, assocs


def build(engine: Engine, n: int) -> float:
    """Write the benchmark project; returns the seconds it took."""
    start = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        now = "2024-01-01 00:00:00"
        cur.execute("INSERT INTO project (id, name, description, created_at, revision, tokenizer) "
                    "VALUES (1, 'bench', '', ?, 0, 'blank:en')", (now,))
        cur.executemany("INSERT INTO attribute (id, project_id, name, data_type, is_primary_key, position) "
                        "VALUES (?, 1, ?, ?, 0, ?)",
                        [(1, "text", "TEXT", 0), (2, "channel", "CATEGORY", 1), (3, "length", "INTEGER", 2)])
        cur.execute("INSERT INTO labelingtask (id, project_id, name, kind, created_at) "
                    "VALUES (1, 1, 'spam', 'classification', ?)", (now,))
        cur.executemany("INSERT INTO label (id, task_id, name, color, position) VALUES (?, 1, ?, '#888888', ?)",
                        [(1, "spam", 0), (2, "ham", 1)])
        cur.executemany("INSERT INTO annotator (id, name, created_at) VALUES (?, ?, ?)",
                        [(1, "alice", now), (2, "bob", now), (3, "carol", now)])
        for records, assocs in _rows(n):
            cur.executemany("INSERT INTO record (id, project_id, running_id, key, data, created_at, updated_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", records)
            cur.executemany(
                "INSERT INTO labelassociation (id, project_id, record_id, task_id, label_id, source_type, "
                "source_name, annotator_id, confidence, is_gold, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", assocs)
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - start


def median_ms(fn: Callable[[], Any], *, repeat: int) -> tuple[float, Any]:
    result = fn()  # warm the page cache and SQLAlchemy's statement cache
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def bare(engine: Engine, sql: str) -> Callable[[], list[int]]:
    def run() -> list[int]:
        with engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(text(sql)).all()]

    return run


NOT_MANUAL = ("NOT EXISTS (SELECT 1 FROM labelassociation m WHERE m.record_id = r.id AND m.task_id = 1 "
              "AND m.source_type = 'MANUAL')")
WS_SPAM = ("EXISTS (SELECT 1 FROM labelassociation w WHERE w.record_id = r.id AND w.task_id = 1 "
           f"AND w.source_type = '{WS}' AND w.label_id = 1)")
CH3 = "CAST(json_extract(r.data, '$.\"channel\"') AS VARCHAR) = 'ch3'"
FREE = "lower(json_extract(r.data, '$.\"text\"')) LIKE '%free%'"
SEED = 7


def _mix(x: str, s1: int, s2: int) -> str:
    """The seeded hash of core.store.browse_indexes, written out as SQL text."""
    x = f"(({x}) * {_A} + {s1}) % {_P}"
    x = f"(({x}) * ({x})) % {_P}"
    x = f"(({x}) * {_B} + {s2}) % {_P}"
    return f"(({x}) * ({x})) % {_P}"


def random_sql(seed: int, where: str) -> tuple[str, str]:
    """Bare SQL for the first page of the seeded order: (first bucket along the index, whole sort)."""
    order = SeededOrder(seed)
    x = f"CAST(r.id AS BIGINT) % {_P} * {_A} % {_P}"
    key = f"((({x}) * ({x}) % {_P}) * {_B} + {_C}) % {_P}"  # the indexed random_key, as the index declares it
    rank = _mix(f"CAST(r.id AS BIGINT) % {_P}", order.s2, order.s1)
    low, high = order.key_range(order.buckets()[0])
    bucket = f"({key}) / {1 << order.bits}"
    first = (f"SELECT r.id, r.key, r.data FROM record r WHERE r.project_id = 1 AND {key} >= {low} AND {key} < {high} "
             f"AND {where} ORDER BY {rank}, r.id LIMIT 100")
    whole = (f"SELECT r.id, r.key, r.data FROM record r WHERE r.project_id = 1 AND {where} "
             f"ORDER BY {_mix(f'{bucket} + 1', order.s1, order.s2)}, {bucket}, {rank}, r.id LIMIT 100")
    return first, whole


# name, filter, sort, offset, bare page SQL, bare count SQL
SCENARIOS: list[tuple[str, Filter, Sort, int, str, str]] = [
    (
        "weak=spam, no manual label, channel=ch3; by confidence",
        Filter((WeakLabelFilter("spam", ("spam",)), ManualLabelFilter("spam", match=LabelMatch.HAS_NONE),
                AttributeFilter("channel", AttributeOp.EQUALS, ("ch3",), case_sensitive=True))),
        Sort(SortBy.CONFIDENCE, task="spam"),
        0,
        "SELECT r.id, r.key, r.data FROM record r JOIN labelassociation s ON s.record_id = r.id "
        f"AND s.task_id = 1 AND s.source_type = '{WS}' AND s.confidence IS NOT NULL "
        f"WHERE r.project_id = 1 AND {WS_SPAM} AND {NOT_MANUAL} "
        f"AND {CH3} ORDER BY s.confidence, s.record_id LIMIT 100",
        f"SELECT count(*) FROM record r WHERE r.project_id = 1 AND {WS_SPAM} AND {NOT_MANUAL} AND {CH3}",
    ),
    (
        "weak=spam, no manual label; by length (indexed), descending",
        Filter((WeakLabelFilter("spam", ("spam",)), ManualLabelFilter("spam", match=LabelMatch.HAS_NONE))),
        Sort(SortBy.ATTRIBUTE, attribute="length", descending=True),
        0,
        f"SELECT r.id, r.key, r.data FROM record r WHERE r.project_id = 1 AND {WS_SPAM} AND {NOT_MANUAL} "
        "ORDER BY json_extract(r.data, '$.\"length\"') DESC NULLS LAST, r.id DESC LIMIT 100",
        f"SELECT count(*) FROM record r WHERE r.project_id = 1 AND {WS_SPAM} AND {NOT_MANUAL}",
    ),
    (
        "text contains 'free', page 50; import order",
        Filter((AttributeFilter("text", AttributeOp.CONTAINS, ("free",)),)),
        Sort(),
        4900,
        f"SELECT r.id, r.key, r.data FROM record r WHERE r.project_id = 1 AND {FREE} "
        "ORDER BY r.running_id LIMIT 100 OFFSET 4900",
        f"SELECT count(*) FROM record r WHERE r.project_id = 1 AND {FREE}",
    ),
    (
        f"no manual label; random order (seed {SEED})",
        Filter((ManualLabelFilter("spam", match=LabelMatch.HAS_NONE),)),
        Sort(SortBy.RANDOM, seed=SEED),
        0,
        random_sql(SEED, NOT_MANUAL)[0],
        f"SELECT count(*) FROM record r WHERE r.project_id = 1 AND {NOT_MANUAL}",
    ),
]


def bare_count(engine: Engine, sql: str) -> Callable[[], int]:
    def run() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100,000 records instead of 1,000,000")
    parser.add_argument("--records", type=int, help="number of records (overrides --quick)")
    parser.add_argument("--db", type=Path, help="SQLite file to build once and reuse")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n = args.records or (100_000 if args.quick else 1_000_000)
    tmp = None
    if args.db is None:
        tmp = tempfile.TemporaryDirectory(prefix="loupe-browser-bench-")
        path = Path(tmp.name) / "bench.db"
    else:
        path = args.db
    fresh = not path.exists()
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        have = conn.execute(text("SELECT count(*) FROM record WHERE project_id = 1")).scalar_one()
    if not fresh and have != n:
        print(f"error: {path} holds {have} records, not {n}; delete it or pass --records {have}", file=sys.stderr)
        return 1
    if fresh or have == 0:
        print(f"Building {n:,} records ...", flush=True)
        print(f"  built in {build(engine, n):.1f} s", flush=True)
    start = time.perf_counter()
    ensure_browse_indexes(engine)
    with session_scope(engine) as session:
        created = ensure_attribute_indexes(engine, list_attributes(session, 1))
    if created:
        print(f"  sort indexes on {', '.join(created)} in {time.perf_counter() - start:.1f} s", flush=True)
    print(f"{n:,} records; median of {args.repeat} runs after one warm-up\n", flush=True)
    headline: tuple[float, float] | None = None
    for name, flt, order, offset, sql, count_sql in SCENARIOS:
        def page(flt: Filter = flt, order: Sort = order, offset: int = offset, total: bool = False) -> list[int]:
            with session_scope(engine) as session:
                return browse_page(session, project_id=1, flt=flt, sort=order, offset=offset, limit=100,
                                   with_total=total).record_ids

        ours, ids = median_ms(page, repeat=args.repeat)
        base, expected = median_ms(bare(engine, sql), repeat=args.repeat)
        same = "same rows" if ids == expected else "DIFFERENT ROWS"
        print(f"{name}\n  page       {ours:8.1f} ms   bare SQL {base:8.1f} ms   ({same})")
        if order.by is SortBy.RANDOM:
            whole, _ = median_ms(bare(engine, random_sql(order.seed, NOT_MANUAL)[1]), repeat=1)
            print(f"  (bare SQL sorting the whole filtered set by the seeded key: {whole:.1f} ms)")

        def counting(flt: Filter = flt) -> int:
            with session_scope(engine) as session:
                return count_filtered(session, project_id=1, flt=flt)

        slow = max(1, args.repeat // 2)
        count_ms, total = median_ms(counting, repeat=slow)
        bare_ms, bare_total = median_ms(bare_count(engine, count_sql), repeat=slow)
        agree = "same count" if total == bare_total else f"DIFFERENT COUNT {bare_total:,}"
        print(f"  count      {count_ms:8.1f} ms   bare SQL {bare_ms:8.1f} ms   ({total:,} records match, {agree})")
        both, _ = median_ms(lambda page=page: page(total=True), repeat=slow)
        print(f"  page+count {both:8.1f} ms   bare SQL {base + bare_ms:8.1f} ms (page + count)", flush=True)
        if headline is None:
            headline = (ours, base)
    engine.dispose()
    if tmp is not None:
        tmp.cleanup()
    assert headline is not None
    ours, base = headline
    print(f"browser_page: {ours:.1f} ms (baseline {base:.1f} ms, ratio {ours / base:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
