"""Indexes that keep the data browser fast on large projects (a million records and more).

Two kinds:

- Indexes declared here as :class:`sqlalchemy.Index` objects on existing
  tables, so ``create_all`` makes them for new databases;
  :func:`ensure_browse_indexes` adds them to databases created before this
  module existed. On :class:`~core.store.models.LabelAssociation`,
  ``(task_id, source_type, label_id, record_id)`` answers "weak supervision
  says spam" from the index alone and ``(task_id, source_type, confidence,
  record_id)`` serves confidence ranges and reads records in confidence order,
  so a page sorted by confidence stops after its rows. On
  :class:`~core.store.models.Record`, ``(project_id, random_key)`` spreads
  the records over a fixed pseudo-random key (:func:`random_key`). The seeded
  random order (:class:`SeededOrder`) cuts that key range into
  ``RANDOM_BUCKETS`` buckets, visits the buckets in an order drawn from the
  seed and, inside a bucket, orders records by a seeded hash of their id: a
  different seed gives a different permutation (not a rotation of one), and
  a page reads one or a few buckets (about a thousand records each on a
  million) along the index.
- Expression indexes on one attribute's value, per attribute name:
  ``(project_id, json_extract(data, '$."name"'))`` on SQLite,
  ``(project_id, CAST(data -> 'name' AS JSONB))`` on PostgreSQL (both support
  expression indexes; the JSONB cast orders numbers as numbers and text as
  text, as SQLite's ``json_extract`` does). Attributes differ per project, so
  these cannot be declared statically: the data browser creates one the
  first time a sort by that attribute is used (:func:`ensure_sort_index`;
  :func:`ensure_attribute_indexes` makes several at once), a few seconds per
  attribute on a million records, and
  :func:`sort_expression` gives the exact expression that the index serves.
  The path is written into the SQL as a literal (a bound parameter would not
  match the index), so only names made of letters, digits, spaces, ``_``,
  ``-`` and ``.`` get one; others sort without an index.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, Index, cast, func, literal_column, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from core.store.models import Attribute, AttributeType
from core.store.tables import ASSOC, RECORD

# A prime modulus and multipliers below 2**31: every product stays within 64-bit integers.
_P, _A, _B, _C = 2_147_483_647, 1_103_515_245, 48_271, 12_345


def random_key() -> ColumnElement[int]:
    """A fixed pseudo-random rank of each record, in portable integer arithmetic.

    Two affine steps modulo a prime with a squaring between them, so the order
    shows no visible pattern in the ids. The constants are written into the
    SQL (bound parameters would not match the expression index).
    """
    p: ColumnElement[Any] = literal_column(str(_P))
    x = cast(RECORD.c.id, BigInteger) % p * literal_column(str(_A)) % p
    x = x * x % p
    return (x * literal_column(str(_B)) + literal_column(str(_C))) % p


# The key lies in [0, 2**31): 2**21 wide buckets make 1024 of them.
RANDOM_BUCKET_BITS = 21


def random_bucket(bits: int | None = None) -> ColumnElement[int]:
    """The bucket of :func:`random_key` a record falls in: ``random_key // 2**bits`` (integer division)."""
    width = literal_column(str(1 << (RANDOM_BUCKET_BITS if bits is None else bits)), BigInteger)
    return random_key() // width


def _mix_py(x: int, s1: int, s2: int) -> int:
    x = (x * _A + s1) % _P
    x = x * x % _P
    x = (x * _B + s2) % _P
    return x * x % _P


def _mix_sql(x: ColumnElement[Any], s1: int, s2: int) -> ColumnElement[Any]:
    p: ColumnElement[Any] = literal_column(str(_P), BigInteger)
    x = (x * literal_column(str(_A), BigInteger) + literal_column(str(s1), BigInteger)) % p
    x = x * x % p
    x = (x * literal_column(str(_B), BigInteger) + literal_column(str(s2), BigInteger)) % p
    return x * x % p


class SeededOrder:
    """The seeded random order of records, in portable integer SQL and the same arithmetic in Python.

    Records are ordered by ``(bucket_rank, bucket, rank, id)``: ``bucket`` is
    :func:`random_bucket`, ``bucket_rank`` a seeded hash of the bucket number
    and ``rank`` a seeded hash of the record id, both a few multiplications
    modulo a prime below ``2**31`` (every product stays within 64-bit integers,
    so SQLite and PostgreSQL compute the same values). Pairs of records change
    their relative order from seed to seed, in the same bucket or not.

    Parameters
    ----------
    seed
        Any integer; the same seed always gives the same order.
    bits
        Bucket width as a power of two (``RANDOM_BUCKET_BITS`` by default;
        tests use wider buckets to put many records in one).
    """

    def __init__(self, seed: int, *, bits: int | None = None) -> None:
        base = int(seed) % _P
        self.bits = RANDOM_BUCKET_BITS if bits is None else bits
        self.s1 = (base * _A + _C) % _P
        self.s2 = (base * _B + _C + 1) % _P

    @property
    def n_buckets(self) -> int:
        return -(-_P // (1 << self.bits))

    def bucket_of(self, key: int) -> int:
        """The bucket of a :func:`random_key` value (as :meth:`bucket_sql` computes it)."""
        return int(key) >> self.bits

    def key_range(self, bucket: int) -> tuple[int, int]:
        """``[low, high)`` of :func:`random_key` values in ``bucket``."""
        return bucket << self.bits, (bucket + 1) << self.bits

    def buckets(self) -> list[int]:
        """Every bucket, in the order this seed visits them."""
        return sorted(range(self.n_buckets), key=lambda b: (_mix_py(b + 1, self.s1, self.s2), b))

    def bucket_sql(self) -> ColumnElement[int]:
        return random_bucket(self.bits)

    def bucket_rank_sql(self) -> ColumnElement[int]:
        return _mix_sql(self.bucket_sql() + literal_column("1", BigInteger), self.s1, self.s2)

    def rank_sql(self) -> ColumnElement[int]:
        """The seeded hash of the record id that orders records within a bucket."""
        return _mix_sql(cast(RECORD.c.id, BigInteger) % literal_column(str(_P), BigInteger), self.s2, self.s1)

    def rank_of(self, record_id: int) -> int:
        return _mix_py(int(record_id) % _P, self.s2, self.s1)

    def order_by(self) -> list[ColumnElement[Any]]:
        """ORDER BY terms of the whole order (one sort of the filtered set)."""
        return [self.bucket_rank_sql(), self.bucket_sql(), self.rank_sql(), RECORD.c.id]

    def arrange(self, ids: Sequence[int], keys: Sequence[int], *, from_position: int = 0) -> list[int]:
        """``ids`` (with their :func:`random_key` values) in this order, the same as :meth:`order_by` gives.

        Vectorised (NumPy int64, every product below ``2**62``): a million ids
        take a fraction of a second. ``from_position`` leaves out the records
        of the first buckets in this seed's order (those a page walk has read).
        """
        if not ids:
            return []
        rid = np.asarray(ids, dtype=np.int64)
        bucket = np.asarray(keys, dtype=np.int64) >> self.bits
        position = np.empty(self.n_buckets, dtype=np.int64)
        position[np.asarray(self.buckets(), dtype=np.int64)] = np.arange(self.n_buckets, dtype=np.int64)
        where = position[bucket]
        if from_position:
            keep = where >= from_position
            rid, where = rid[keep], where[keep]
        x = (rid % _P * _A + self.s2) % _P
        x = x * x % _P
        x = (x * _B + self.s1) % _P
        rank = x * x % _P
        return [int(i) for i in rid[np.lexsort((rid, rank, where))]]


BROWSE_INDEXES = (
    Index("ix_browse_assoc_label", ASSOC.c.task_id, ASSOC.c.source_type, ASSOC.c.label_id, ASSOC.c.record_id),
    Index("ix_browse_assoc_confidence", ASSOC.c.task_id, ASSOC.c.source_type, ASSOC.c.confidence,
          ASSOC.c.record_id),
    Index("ix_browse_record_random", RECORD.c.project_id, random_key()),
)
_SAFE_NAME = re.compile(r"^[\w .\-]{1,100}$")
# Long free text makes large indexes and is rarely sorted on: indexed only when asked for by name.
DEFAULT_INDEXED_TYPES = {AttributeType.CATEGORY.value, AttributeType.INTEGER.value, AttributeType.FLOAT.value,
                         AttributeType.BOOLEAN.value}


# Indexes older stores have that a wider declared index now serves (its prefix): dropped once the wider one exists.
RETIRED_INDEXES = {"ix_assoc_task_source_record": "ix_assoc_task_source_record_label"}


def ensure_browse_indexes(engine: Engine) -> list[str]:
    """Create the browser's indexes, and the store's declared ones, where missing (a few seconds per million
    records), and drop retired ones; returns the names of those created."""
    created = []
    existing = index_names(engine)
    declared = [i for table in (ASSOC, RECORD) for i in sorted(table.indexes, key=lambda i: str(i.name))]
    for index in {str(i.name): i for i in (*BROWSE_INDEXES, *declared)}.values():
        if index.name not in existing:
            index.create(engine)
            created.append(str(index.name))
    retired = [old for old, new in RETIRED_INDEXES.items() if old in existing and (new in existing or new in created)]
    if retired:
        with engine.begin() as conn:
            for name in retired:
                conn.execute(text(f"DROP INDEX {name}"))
    _analyze(engine, [n for n in created if "assoc" in n], table=ASSOC.name)
    _analyze(engine, [n for n in created if "record" in n], table=RECORD.name)
    return created


def index_names(engine: Engine) -> set[str]:
    """Names of the indexes in the database, read from the catalog.

    SQLAlchemy's reflection skips expression indexes on SQLite, so the catalog is read directly.
    """
    if engine.dialect.name == "postgresql":
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'index'"
    with engine.connect() as conn:
        return {str(name) for (name,) in conn.execute(text(sql)).all()}


def _analyze(engine: Engine, indexes: list[str], *, table: str) -> None:
    """Give new indexes planner statistics where the database keeps them.

    On SQLite an index without statistics next to analyzed ones misleads the
    planner badly (a page sorted by confidence took 0.7 s instead of 20 ms);
    a database that was never analyzed is left alone, as the planner's
    defaults treat all indexes alike.
    """
    if not indexes:
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"ANALYZE {table}"))
            return
        analyzed = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
        if analyzed is not None:
            for name in indexes:
                conn.execute(text(f"ANALYZE {name}"))


def indexable(name: str) -> bool:
    """Whether an attribute of this name can have an expression index (see module notes)."""
    return bool(_SAFE_NAME.match(name))


def sort_expression(attribute: Attribute, dialect: str) -> ColumnElement[Any]:
    """The value of ``attribute`` as the attribute indexes store it; sort on this to use them."""
    if not indexable(attribute.name):
        from core.store.records import attribute_expr

        return attribute_expr(attribute)
    if dialect == "postgresql":
        return cast(RECORD.c.data.op("->")(literal_column(f"'{attribute.name}'")), JSONB)
    return func.json_extract(RECORD.c.data, literal_column(f"'$.\"{attribute.name}\"'"))


def attribute_index_name(name: str) -> str:
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]
    return f"ix_record_attr_{digest}"


def _ddl(name: str, dialect: str) -> str:
    index = attribute_index_name(name)
    if dialect == "postgresql":
        return f"CREATE INDEX IF NOT EXISTS {index} ON record (project_id, (CAST(data -> '{name}' AS JSONB)))"
    return f"CREATE INDEX IF NOT EXISTS {index} ON record (project_id, json_extract(data, '$.\"{name}\"'))"


def attribute_indexes(engine: Engine) -> set[str]:
    """Names of the attribute indexes present in the database."""
    return {name for name in index_names(engine) if name.startswith("ix_record_attr_")}


def has_attribute_index(engine: Engine, name: str) -> bool:
    return attribute_index_name(name) in attribute_indexes(engine)


def ensure_sort_index(engine: Engine, attribute: Attribute, *, wait_seconds: float = 2.0) -> bool:
    """Make sure the sort index of ``attribute`` exists, creating it now if missing; whether it exists after.

    The data browser calls this the first time an attribute sort is used, so
    the first sort of a large project pays the index build once (a few seconds
    per million records) and every later page reads the index. Cheap when the
    index exists: one catalog query. TEXT attributes and names that cannot be
    written into an index (see the module notes) get none and sort without.

    The index is built on a connection of its own that waits at most
    ``wait_seconds`` for a lock: when another writer (or the caller's own
    unfinished write transaction) holds the table, the sort runs without the
    index this time and the next sort tries again.
    """
    if not indexable(attribute.name) or attribute.data_type not in DEFAULT_INDEXED_TYPES:
        return False
    if has_attribute_index(engine, attribute.name):
        return True
    dialect = engine.dialect.name
    try:
        with engine.begin() as conn:
            if dialect == "postgresql":
                conn.execute(text(f"SET LOCAL lock_timeout = '{int(wait_seconds * 1000)}ms'"))
                conn.execute(text(_ddl(attribute.name, dialect)))
            else:
                previous = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_seconds * 1000)}")
                try:
                    conn.execute(text(_ddl(attribute.name, dialect)))
                finally:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous or 0)}")
    except OperationalError:
        return False  # locked: sort without the index now, build it on a later sort
    _analyze(engine, [attribute_index_name(attribute.name)], table=RECORD.name)
    return True


def ensure_attribute_indexes(
    engine: Engine, attributes: Iterable[Attribute], *, include_text: bool = False
) -> list[str]:
    """Create the sort indexes of ``attributes`` where missing; returns the attribute names indexed now.

    Parameters
    ----------
    engine
        The store's engine (DDL runs in its own transaction).
    attributes
        Attributes of one project (names are shared: the index covers every
        project's attribute of that name).
    include_text
        Index TEXT attributes too; off by default, as long texts make large
        indexes and are seldom a sort key.
    """
    dialect = engine.dialect.name
    present = attribute_indexes(engine)
    done: list[str] = []
    for attribute in attributes:
        if not indexable(attribute.name) or attribute_index_name(attribute.name) in present:
            continue
        if attribute.data_type not in DEFAULT_INDEXED_TYPES and not include_text:
            continue
        with engine.begin() as conn:
            conn.execute(text(_ddl(attribute.name, dialect)))
        present.add(attribute_index_name(attribute.name))
        done.append(attribute.name)
    _analyze(engine, [attribute_index_name(name) for name in done], table=RECORD.name)
    return done
