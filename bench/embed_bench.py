"""Embedding speed through Loupe against ``SentenceTransformer.encode`` alone, plus re-run and query times.

1. Embed N short distinct texts (5,000; ``--quick``: 800) with ``loupe``'s
   :func:`core.embeddings.embed_attribute` (reading records, hashing, encoding,
   storing vectors in SQLite and indexing them in Chroma) and with
   ``SentenceTransformer.encode`` on the same texts, same model, same batch size,
   in the same run. Goal: Loupe ≥ 0.8× the bare encoder's records/s.
2. Re-run on unchanged data. Goal: under 5% of the first run's time.
3. Median latency of ``similar_records`` on an index of 100,000 random (clustered)
   vectors (``--quick``: 20,000). Goal: under 50 ms.

The baseline is timed before and after Loupe's run and averaged, because other
processes on a shared machine make a single timing noisy. The last line is
``embed_speed: VALUE records/s (baseline VALUE records/s, ratio R)``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SUBJECTS = ["The new phone", "My neighbour", "This video", "The council", "Our team", "The recipe", "A small startup",
            "The old bridge", "The singer", "That restaurant", "The museum", "The train to Berlin"]
VERBS = ["really surprised", "completely ignored", "quietly changed", "finally fixed", "loudly praised",
         "slowly rebuilt", "openly criticised", "happily shared"]
OBJECTS = ["the whole street", "every comment", "the weekend plans", "the final score", "the price of bread",
           "the rules of the game", "the morning news", "our favourite song", "the budget", "the playlist"]
TAILS = ["last night", "again", "before lunch", "without asking anyone", "for the third time", "this year",
         "after the storm", "on live television"]


def make_texts(n: int, seed: int = 7) -> list[str]:
    """``n`` distinct short sentences (8 to 16 words)."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        text = (f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}, "
                f"said visitor {rng.randrange(100_000)}.")
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def bench_embedding(engine, texts: list[str], batch_size: int) -> tuple[float, float, float, float]:  # type: ignore[no-untyped-def]
    """Seconds of: baseline (mean of two runs), Loupe's first run, Loupe's re-run; and Loupe's encoded count."""
    from core.embeddings import DEFAULT_MODEL, embed_attribute, load_model
    from core.importers import import_file

    import_file(engine, project="bench", data=json.dumps([{"text": t} for t in texts]).encode(),
                name="bench.json", fmt="json")
    model = load_model(DEFAULT_MODEL)
    model.encode(texts[:64], batch_size=batch_size)  # warm-up: first forward passes are slower

    def baseline() -> float:
        start = time.perf_counter()
        model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
        return time.perf_counter() - start

    before = baseline()
    start = time.perf_counter()
    first = embed_attribute(engine, project="bench", attribute="text", batch_size=batch_size)
    loupe = time.perf_counter() - start
    after = baseline()
    start = time.perf_counter()
    again = embed_attribute(engine, project="bench", attribute="text", batch_size=batch_size)
    rerun = time.perf_counter() - start
    if first.encoded != len(texts) or again.encoded != 0:
        raise SystemExit(f"unexpected counts: first run encoded {first.encoded}, re-run {again.encoded}")
    print(f"baseline encode runs: {before:.2f}s and {after:.2f}s for {len(texts)} texts")
    return (before + after) / 2, loupe, rerun, first.encoded


def bench_queries(engine, size: int, queries: int, seed: int = 0) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """Index ``size`` random clustered vectors as a project; returns (build s, median ms, p95 ms) of similar."""
    from sqlalchemy import insert

    from core.index import rebuild_index
    from core.search import similar_records
    from core.store import session_scope
    from core.store.embeddings import get_or_create_space, insert_vectors, write_record_hashes
    from core.store.models import Attribute, Record, utcnow
    from core.store.projects import create_project

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(size // 200, 2), 384)).astype(np.float32)
    vectors = centers[rng.integers(0, len(centers), size)] + 0.6 * rng.standard_normal((size, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    model = "bench-random-384"
    with session_scope(engine) as session:
        project = create_project(session, name="bench-index")
        pid = project.id or 0
        attribute = Attribute(project_id=pid, name="text", data_type="TEXT")
        session.add(attribute)
        session.flush()
        now = utcnow()
        session.execute(insert(Record), [
            {"project_id": pid, "running_id": i, "key": str(i), "data": {"text": f"r{i}"}, "created_at": now,
             "updated_at": now} for i in range(size)
        ])
        hashes = {f"{i:032x}": vectors[i] for i in range(size)}
        insert_vectors(session, model=model, vectors=hashes)
        ids = session.execute(Record.__table__.select().where(Record.project_id == pid)).all()  # type: ignore[attr-defined]
        by_running = {row.running_id: row.id for row in ids}
        space = get_or_create_space(session, project_id=pid, attribute_id=attribute.id or 0, model=model)
        write_record_hashes(session, space=space, changed={by_running[i]: f"{i:032x}" for i in range(size)},
                            removed=[], dim=384)
    start = time.perf_counter()
    with session_scope(engine) as session:
        rebuild_index(session, space=space)
    build = time.perf_counter() - start
    keys = [str(k) for k in rng.integers(0, size, queries)]
    timings = []
    with session_scope(engine) as session:
        similar_records(session, project_id=pid, key=keys[0], model=model, k=10)  # warm-up
        for key in keys:
            start = time.perf_counter()
            hits = similar_records(session, project_id=pid, key=key, model=model, k=10)
            timings.append((time.perf_counter() - start) * 1000)
            if len(hits) != 10 or key in {h.key for h in hits}:
                raise SystemExit(f"similar({key}) returned {len(hits)} hits including itself: {hits}")
    timings.sort()
    return build, statistics.median(timings), timings[int(0.95 * (len(timings) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes; finishes in under a minute")
    parser.add_argument("--texts", type=int, help="texts to embed (default 5000; quick: 800)")
    parser.add_argument("--index-size", type=int, help="vectors in the query index (default 100000; quick: 20000)")
    parser.add_argument("--queries", type=int, default=200, help="similar() calls to time (default 200)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    n_texts = args.texts or (800 if args.quick else 5000)
    index_size = args.index_size or (20_000 if args.quick else 100_000)
    queries = min(args.queries, 100) if args.quick else args.queries

    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as home:
        os.environ["LOUPE_HOME"] = home
        os.environ.pop("DATABASE_URL", None)
        os.environ.pop("CHROMA_HOST", None)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from core.store import get_engine

        engine = get_engine()
        texts = make_texts(n_texts)
        base_s, loupe_s, rerun_s, _ = bench_embedding(engine, texts, args.batch_size)
        build_s, median_ms, p95_ms = bench_queries(engine, index_size, queries)
        engine.dispose()

    base_rate, loupe_rate = n_texts / base_s, n_texts / loupe_s
    print(f"rerun_unchanged: {rerun_s:.3f}s = {100 * rerun_s / loupe_s:.1f}% of the first run's {loupe_s:.2f}s "
          f"(goal < 5%)")
    print(f"index_build: {index_size} vectors in {build_s:.1f}s ({index_size / build_s:.0f} vectors/s)")
    print(f"similar_latency: median {median_ms:.1f} ms, p95 {p95_ms:.1f} ms over {queries} queries on "
          f"{index_size} vectors (goal: median < 50 ms)")
    print(f"embed_speed: {loupe_rate:.1f} records/s (baseline {base_rate:.1f} records/s, "
          f"ratio {loupe_rate / base_rate:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
