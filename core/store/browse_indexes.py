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
  :class:`~core.store.models.Record`, ``(project_id, random_key)`` holds a
  fixed pseudo-random permutation of the records (:func:`random_key`), which
  the seeded random order reads from a seed-chosen starting point.
- Expression indexes on one attribute's value, per attribute name:
  ``(project_id, json_extract(data, '$."name"'))`` on SQLite,
  ``(project_id, CAST(data -> 'name' AS JSONB))`` on PostgreSQL (both support
  expression indexes; the JSONB cast orders numbers as numbers and text as
  text, as SQLite's ``json_extract`` does). Attributes differ per project, so
  these cannot be declared statically: :func:`ensure_attribute_indexes`
  creates them (a few seconds per attribute on a million records), and
  :func:`sort_expression` gives the exact expression that the index serves.
  The path is written into the SQL as a literal (a bound parameter would not
  match the index), so only names made of letters, digits, spaces, ``_``,
  ``-`` and ``.`` get one; others sort without an index.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, Index, cast, func, literal_column, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
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


def random_start(seed: int) -> int:
    """Where the seeded random order starts in the :func:`random_key` permutation."""
    return (int(seed) % _P * _A + _C) % _P


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


def ensure_browse_indexes(engine: Engine) -> list[str]:
    """Create the browser's indexes where missing (a few seconds per million records); returns those created."""
    created = []
    existing = index_names(engine)
    for index in BROWSE_INDEXES:
        if index.name not in existing:
            index.create(engine)
            created.append(str(index.name))
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
