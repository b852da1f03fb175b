"""The demo project: YouTube comments (spam or not), about 10% labeled by hand.

Data: UCI YouTube Spam Collection (Alberto, Lochter & Almeida, ICMLA 2015),
CC BY 4.0, in ``data/youtube``. The ``CLASS`` column is the dataset's ground
truth; the demo keeps it out of the attributes (it would give the answers away)
and turns a seeded 10% sample of it into manual labels.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

from sqlalchemy.engine import Engine

from core.errors import NotFoundError
from core.importers import ImportResult, import_file
from core.store.engine import session_scope
from core.store.projects import find_project

DEMO_PROJECT = "YouTube spam (demo)"
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "youtube"
LABELED_FRACTION = 0.10
SEED = 2015
CLASS_NAMES = {"1": "spam", "0": "ham"}
DEMO_LOADED_FLAG = "demo_loaded"


def demo_rows(data_dir: Path = DATA_DIR) -> list[dict[str, object]]:
    """Rows of the five CSV files, with the video name and a seeded 10% of labels in ``__spam``."""
    files = sorted(data_dir.glob("Youtube0*.csv"))
    if not files:
        raise NotFoundError(f"Demo data not found in {data_dir}; the YouTube CSV files ship in data/youtube.")
    rows: list[dict[str, object]] = []
    for path in files:
        video = path.stem.split("-", 1)[-1]
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append({
                    "CONTENT": row["CONTENT"],
                    "AUTHOR": row["AUTHOR"],
                    "DATE": row["DATE"] or None,
                    "VIDEO": video,
                    "COMMENT_ID": row["COMMENT_ID"],
                    "__spam": CLASS_NAMES[row["CLASS"].strip()],
                })
    rng = random.Random(SEED)
    labeled = set(rng.sample(range(len(rows)), round(len(rows) * LABELED_FRACTION)))
    for i, row in enumerate(rows):
        if i not in labeled:
            row["__spam"] = None
    return rows


def load_demo(engine: Engine, *, name: str = DEMO_PROJECT) -> ImportResult | None:
    """Create the demo project unless it exists (idempotent); returns None when it was there already.

    This is the Projects page's button: it loads the demo whenever asked. ``loupe run`` uses
    :func:`load_demo_on_first_start`, which leaves a deleted demo deleted.
    """
    with session_scope(engine) as session:
        if find_project(session, name) is not None:
            return None
    payload = json.dumps(demo_rows(), ensure_ascii=False).encode("utf-8")
    return import_file(engine, project=name, data=payload, name="youtube_spam_demo.json", fmt="json")


def load_demo_on_first_start(engine: Engine, *, name: str = DEMO_PROJECT) -> ImportResult | None:
    """Load the demo on the first start of this store only; returns None on every later start.

    The store remembers that it offered the demo (:class:`~core.store.meta.StoreFlag`), so a demo
    the user deleted does not come back. A failed load leaves no flag: the next start tries again.
    """
    from core.store.meta import has_flag, set_flag

    with session_scope(engine) as session:
        if has_flag(session, DEMO_LOADED_FLAG):
            return None
    result = load_demo(engine, name=name)
    with session_scope(engine) as session:
        set_flag(session, DEMO_LOADED_FLAG)
    return result


def demo_ground_truth(data_dir: Path = DATA_DIR) -> list[str]:
    """The dataset's own label of every demo record, in running-id order (for tests and benchmarks)."""
    out = []
    for path in sorted(data_dir.glob("Youtube0*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            out.extend(CLASS_NAMES[row["CLASS"].strip()] for row in csv.DictReader(io.StringIO(handle.read())))
    return out
