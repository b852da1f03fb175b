"""Project snapshots: the whole project in one zip, restorable as a new project.

A snapshot is generic over the schema: it walks ``SQLModel.metadata`` and so
covers tables that modules add later (heuristics, lookup lists, slices,
comments, weak-supervision runs, workflow, embeddings) with no change here.

The rule that makes this work
-----------------------------
**Every column that holds the id of another row must be a declared foreign
key** (``Field(foreign_key="table.id")``). Snapshots find a project's rows and
remap their ids only through declared foreign keys; an undeclared reference
would be copied verbatim and point at the wrong row (or another project's) after
a restore. ``tests/test_snapshot.py`` fails for any ``*_id`` column that is not
a foreign key, except the documented :data:`NON_FK_ID_COLUMNS`. Ids kept inside
JSON values are invisible too: store such lists in a link table with foreign
keys.

Which rows belong to a project
------------------------------
- the ``project`` row itself;
- rows of a table with a foreign key to ``project`` (``project_id``);
- rows of a table with a foreign key to a table whose rows belong to the
  project (e.g. ``label`` via ``task_id``), recursively.

Tables that project rows reference but that do not belong to a project
(``annotator``) are *global*: the referenced rows are saved too, and on
restore they are matched by their unique column (an annotator by name) and
created only when missing.

Tables marked ``__table_args__ = {"info": {"snapshot": "embeddings"}}``, or
defined in ``core.store.embeddings``, hold embeddings: they (and tables that
need them through a non-nullable foreign key) are left out unless
``with_embeddings``. ``{"info": {"snapshot": "skip"}}`` leaves a derived table
out always (it must be rebuildable).

Archive layout
--------------
``manifest.json`` (format and version, Loupe version, creation time, project
name, row counts, and for every part its table, row count, size and SHA-256),
``project.json`` and one JSON-lines part per table (``tables/{name}.jsonl``,
``globals/{name}.jsonl``). Values keep their JSON form; datetimes are ISO
8601, binary values base64.

Restoring checks everything before it writes: the password, the zip's
integrity, unsafe paths, the inflated size, the format version, that every part
is present, listed and unaltered (checksums), and that tables and columns are
known. It then inserts everything in one transaction, parents before children,
with new ids; any failure rolls back and leaves the database as it was.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, BinaryIO

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Select,
    Table,
    Time,
    TypeDecorator,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.util import sort_tables
from sqlmodel import Session, SQLModel

from core import __version__
from core.archive import DEFAULT_MAX_BYTES, SafeZip, open_zip, zip_writer
from core.errors import ArchiveError
from core.store.engine import _register_tables, session_scope
from core.store.models import SourceType
from core.store.projects import MAX_NAME_LENGTH, find_project, get_project, validate_project_name

FORMAT = "loupe-snapshot"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PROJECT_PART = "project.json"
PROJECT_TABLE = "project"
BATCH = 1000
MANIFEST_MAX_BYTES = 16 * 1024 * 1024
EMBEDDINGS_MODULE = "core.store.embeddings"

# Columns named *_id that are not foreign keys, and why. Keep this list short: see the module docstring.
NON_FK_ID_COLUMNS: dict[tuple[str, str], str] = {
    ("record", "running_id"): "a per-project counter shown to users, not a row id",
    ("labelassociation", "source_id"): (
        "polymorphic (a heuristic or a weak-supervision run, by source_type); remapped by "
        "POLYMORPHIC_REFERENCES below"
    ),
}
# Tables a heuristic's or a weak-supervision run's labels point at through labelassociation.source_id.
HEURISTIC_TABLES = ("heuristic",)
WS_RUN_TABLES = ("weaksupervisionrun", "wsrun", "weak_supervision_run", "labelmodelrun")


def _label_source_target(row: dict[str, Any]) -> tuple[str, ...]:
    if row.get("source_type") == SourceType.HEURISTIC.value:
        return HEURISTIC_TABLES
    if row.get("source_type") == SourceType.WEAK_SUPERVISION.value:
        return WS_RUN_TABLES
    return ()


# (table, column) → the candidate tables a row's value refers to; unresolvable values become NULL.
POLYMORPHIC_REFERENCES: dict[tuple[str, str], Callable[[dict[str, Any]], tuple[str, ...]]] = {
    ("labelassociation", "source_id"): _label_source_target,
}


# JSON columns that hold lists of row ids (the exception to the rule above; prefer a link table). A column
# can also declare it: ``Column(JSON, info={"references": "record.id"})``.
JSON_ID_REFERENCES: dict[tuple[str, str], str] = {
    ("dataslice", "record_ids"): "record",
}
# Lists kept position by position beside a JSON id list: entries of ids that no longer exist are dropped
# from both (an outlier slice's scores beside its record ids).
JSON_ALIGNED: dict[tuple[str, str], tuple[str, ...]] = {
    ("dataslice", "record_ids"): ("scores",),
}


def json_references(table: Table) -> dict[str, str]:
    """Column → referenced table for the JSON id-list columns of a table."""
    out = {c: t for (name, c), t in JSON_ID_REFERENCES.items() if name == table.name and c in table.c}
    for col in table.columns:
        ref = col.info.get("references")
        if isinstance(ref, str):
            out[col.name] = ref.split(".", 1)[0]
    return out


def _embedding_vectors(project_id: int) -> Select[Any] | None:
    """The shared vectors (``embeddingvector``) the project's embedding spaces use, matched by model and hash."""
    tables = SQLModel.metadata.tables
    vec, space, rec = (tables.get(n) for n in ("embeddingvector", "projectembedding", "recordembedding"))
    if vec is None or space is None or rec is None:
        return None
    return (
        select(*vec.columns)
        .join(rec, rec.c.text_hash == vec.c.text_hash)
        .join(space, (space.c.id == rec.c.embedding_id) & (space.c.model == vec.c.model))
        .where(space.c.project_id == project_id)
        .distinct()
    )


# Global tables whose rows a project uses without a foreign key (shared caches), and how to find them.
# They are restored like other global rows: matched by their unique columns, inserted when missing.
COMPANIONS: dict[str, Callable[[int], Select[Any] | None]] = {
    "embeddingvector": _embedding_vectors,
}


# -- the plan ---------------------------------------------------------------------------------------------


@dataclass
class SnapshotPlan:
    """Which tables a snapshot holds and how their rows are found.

    Attributes
    ----------
    owned : list of Table
        Tables whose rows belong to a project, parents before children.
    owners : dict
        Table name → the foreign-key columns through which its rows belong to the project.
    globals : list of Table
        Tables referenced by owned rows that belong to no project (matched by natural key).
    excluded : list of str
        Project tables left out (embeddings without ``with_embeddings``, ``skip`` tables).
    """

    owned: list[Table] = field(default_factory=list)
    owners: dict[str, list[Column[Any]]] = field(default_factory=dict)
    globals: list[Table] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)


def _table_modules() -> dict[str, str]:
    return {m.local_table.name: m.class_.__module__ for m in SQLModel._sa_registry.mappers}  # type: ignore[attr-defined]


def is_embeddings_table(table: Table, modules: dict[str, str] | None = None) -> bool:
    """True for tables that hold embeddings (left out of snapshots unless asked for)."""
    if table.info.get("snapshot") == "embeddings":
        return True
    modules = _table_modules() if modules is None else modules
    return modules.get(table.name) == EMBEDDINGS_MODULE


def _single_fks(table: Table) -> list[tuple[Column[Any], ForeignKey]]:
    out = []
    for fk in table.foreign_keys:
        if fk.constraint is not None and len(fk.constraint.columns) != 1:
            raise ArchiveError(f"table {table.name!r} has a composite foreign key; snapshots need single-column ones")
        out.append((fk.parent, fk))
    return out


def snapshot_plan(*, with_embeddings: bool = False, metadata: MetaData | None = None) -> SnapshotPlan:
    """Classify every table of the schema (``SQLModel.metadata`` by default) for a snapshot.

    See the module docstring for the rules.
    """
    if metadata is None:
        _register_tables()
        metadata = SQLModel.metadata
    modules = _table_modules()
    plan = SnapshotPlan()
    owned: set[str] = {PROJECT_TABLE}
    skipped: set[str] = set()
    for table in metadata.sorted_tables:
        if table.name == PROJECT_TABLE:
            continue
        fks = _single_fks(table)
        owners = [col for col, fk in fks if fk.column.table.name in owned]
        touches_project = owners or any(fk.column.table.name in skipped for _, fk in fks)
        if not touches_project:
            continue
        needs_skipped = any(fk.column.table.name in skipped and not col.nullable for col, fk in fks)
        marked = table.info.get("snapshot") == "skip" or (
            is_embeddings_table(table, modules) and not with_embeddings
        )
        if marked or needs_skipped or not owners:
            skipped.add(table.name)
            plan.excluded.append(table.name)
            continue
        owned.add(table.name)
        plan.owned.append(table)
        project_fk = [col for col in owners if any(fk.column.table.name == PROJECT_TABLE for fk in col.foreign_keys)]
        plan.owners[table.name] = project_fk or owners
    referenced = {
        fk.column.table.name
        for table in plan.owned
        for _, fk in _single_fks(table)
        if fk.column.table.name not in owned and fk.column.table.name not in skipped
    }
    for name in COMPANIONS:
        companion = metadata.tables.get(name)
        if companion is None or name in owned:
            continue
        if companion.info.get("snapshot") == "skip" or (
            is_embeddings_table(companion, modules) and not with_embeddings
        ):
            plan.excluded.append(name)
        else:
            referenced.add(name)
    plan.globals = [t for t in metadata.sorted_tables if t.name in referenced]
    return plan


def id_columns_without_fk() -> list[str]:
    """``table.column`` of every ``*_id`` column that is not a foreign key, and every ``*_ids`` column that is
    not a declared JSON id list, outside :data:`NON_FK_ID_COLUMNS` (a test keeps this list empty)."""
    _register_tables()
    bad = []
    for table in SQLModel.metadata.sorted_tables:
        lists = json_references(table)
        for col in table.columns:
            if (table.name, col.name) in NON_FK_ID_COLUMNS or col.foreign_keys or col.name in lists:
                continue
            if col.name.endswith(("_id", "_ids")):
                bad.append(f"{table.name}.{col.name}")
    return bad


def project_selectors(plan: SnapshotPlan, project_id: int) -> dict[str, ColumnElement[bool]]:
    """Per owned table, the SQL condition selecting the project's rows."""
    conditions: dict[str, ColumnElement[bool]] = {}
    for table in plan.owned:
        parts = []
        for col in plan.owners[table.name]:
            fk = next(iter(col.foreign_keys))
            parent = fk.column.table
            if parent.name == PROJECT_TABLE:
                parts.append(col == project_id)
            else:
                parts.append(col.in_(select(fk.column).where(conditions[parent.name])))
        conditions[table.name] = or_(*parts) if len(parts) > 1 else parts[0]
    return conditions


def _pk(table: Table) -> Column[Any] | None:
    """The single generated integer primary key, which restores renumber; None otherwise."""
    cols = list(table.primary_key.columns)
    if len(cols) == 1 and isinstance(cols[0].type, Integer) and not cols[0].foreign_keys:
        return cols[0]
    return None


def natural_key(table: Table) -> list[str]:
    """Columns that identify a global row across databases: its first single-column unique constraint."""
    for col in table.columns:
        if col.unique and not col.primary_key:
            return [col.name]
    for index in sorted(table.indexes, key=lambda i: i.name or ""):
        if index.unique:
            return [c.name for c in index.columns]
    for constraint in table.constraints:
        columns = getattr(constraint, "columns", None)
        if constraint.__class__.__name__ == "UniqueConstraint" and columns is not None:
            return [c.name for c in columns]
    return []


# -- values -----------------------------------------------------------------------------------------------


def encode_value(col: Column[Any], value: Any) -> Any:
    """A column value in its JSON form."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date,)) or isinstance(col.type, Time):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    return value


def decode_value(col: Column[Any], value: Any) -> Any:
    """A column value back from its JSON form."""
    if value is None:
        return None
    kind: Any = col.type.impl if isinstance(col.type, TypeDecorator) else col.type
    try:
        if isinstance(kind, DateTime):
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None and not kind.timezone:
                parsed = parsed.astimezone(UTC).replace(tzinfo=None)
            return parsed
        if isinstance(kind, Date):
            return date.fromisoformat(value)
        if isinstance(kind, Time):
            from datetime import time as time_type

            return time_type.fromisoformat(value)
        if isinstance(kind, LargeBinary):
            return base64.b64decode(value)
        if isinstance(kind, Numeric) and isinstance(value, str):
            return Decimal(value)
    except (TypeError, ValueError) as e:
        raise ArchiveError(f"column {col.table.name}.{col.name} holds {str(value)[:40]!r}, not a valid value") from e
    return value


def _encode_row(table: Table, row: Any) -> dict[str, Any]:
    mapping = row._mapping
    return {col.name: encode_value(col, mapping[col]) for col in table.columns}


# -- writing ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot holds."""

    project: str
    path: Path | None
    tables: dict[str, int]
    with_embeddings: bool
    seconds: float

    def summary(self) -> str:
        rows = sum(self.tables.values())
        where = f" to {self.path}" if self.path else ""
        return (f"snapshot of {self.project!r}{where}: {len(self.tables)} table(s), {rows} row(s) "
                f"in {self.seconds:.1f}s")


class _HashingWriter:
    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()
        self.size = 0
        self.rows = 0

    def line(self, obj: Any) -> None:
        data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
        self.digest.update(data)
        self.size += len(data)
        self.rows += 1
        self.sink.write(data)


def create_snapshot(
    engine: Engine,
    *,
    project: str,
    out: str | Path | BinaryIO,
    with_embeddings: bool = False,
    password: str | None = None,
) -> SnapshotInfo:
    """Write a snapshot of a project to ``out`` (a path or a binary stream).

    Parameters
    ----------
    engine
        The store.
    project
        The project's name.
    out
        Where the zip goes.
    with_embeddings
        Include embeddings tables (bigger file, no recomputation after restoring).
    password
        AES-256 encrypt every part with it.
    """
    started = time.perf_counter()
    plan = snapshot_plan(with_embeddings=with_embeddings)
    counts: dict[str, int] = {}
    parts: dict[str, dict[str, Any]] = {}
    with session_scope(engine) as session, zip_writer(out, password=password) as zf:
        proj = get_project(session, project)
        pid = proj.id or 0
        project_table = SQLModel.metadata.tables[PROJECT_TABLE]
        project_row = session.execute(select(*project_table.columns).where(project_table.c.id == pid)).one()
        with zf.open(PROJECT_PART, "w") as sink:
            writer = _HashingWriter(sink)
            writer.line(_encode_row(project_table, project_row))
        parts[PROJECT_PART] = _part(PROJECT_TABLE, writer)
        selectors = project_selectors(plan, pid)
        referenced: dict[str, set[Any]] = defaultdict(set)
        global_names = {t.name for t in plan.globals}
        for table in plan.owned:
            fk_globals = [(col, fk) for col, fk in _single_fks(table) if fk.column.table.name in global_names]
            name = f"tables/{table.name}.jsonl"
            order = list(table.primary_key.columns)
            stmt = select(*table.columns).where(selectors[table.name]).order_by(*order)
            with zf.open(name, "w") as sink:
                writer = _HashingWriter(sink)
                for row in session.execute(stmt, execution_options={"yield_per": BATCH}):
                    writer.line(_encode_row(table, row))
                    mapping = row._mapping
                    for col, fk in fk_globals:
                        if mapping[col] is not None:
                            referenced[fk.column.table.name].add(mapping[col])
            parts[name] = _part(table.name, writer)
            counts[table.name] = writer.rows
        for table in plan.globals:
            pk = _pk(table)
            ids = sorted(referenced.get(table.name, set()))
            name = f"globals/{table.name}.jsonl"
            with zf.open(name, "w") as sink:
                writer = _HashingWriter(sink)
                companion = COMPANIONS[table.name](pid) if table.name in COMPANIONS else None
                if companion is not None:
                    for row in session.execute(companion, execution_options={"yield_per": BATCH}):
                        writer.line(_encode_row(table, row))
                for start in range(0, len(ids) if pk is not None else 0, BATCH):
                    chunk = ids[start : start + BATCH]
                    for row in session.execute(select(*table.columns).where(pk.in_(chunk)).order_by(pk)):  # type: ignore[union-attr]
                        writer.line(_encode_row(table, row))
            parts[name] = _part(table.name, writer, role="global")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "loupe_version": __version__,
            "created_at": datetime.now(UTC).isoformat(),
            "project": {"name": proj.name},
            "with_embeddings": with_embeddings,
            "excluded_tables": plan.excluded,
            "counts": counts,
            "parts": parts,
        }
        zf.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2))
    path = Path(out) if isinstance(out, (str, Path)) else None
    return SnapshotInfo(project=proj.name, path=path, tables=counts, with_embeddings=with_embeddings,
                        seconds=time.perf_counter() - started)


def _part(table: str, writer: _HashingWriter, *, role: str = "project") -> dict[str, Any]:
    return {"table": table, "role": role, "rows": writer.rows, "bytes": writer.size,
            "sha256": writer.digest.hexdigest()}


def snapshot_bytes(engine: Engine, *, project: str, with_embeddings: bool = False,
                   password: str | None = None) -> bytes:
    """A snapshot as bytes (for a download button)."""
    buffer = io.BytesIO()
    create_snapshot(engine, project=project, out=buffer, with_embeddings=with_embeddings, password=password)
    return buffer.getvalue()


def snapshot_filename(project: str, *, password: str | None = None) -> str:
    """``{project}_snapshot_{date}.zip``."""
    import re

    safe = re.sub(r"[^\w.-]+", "_", project).strip("_.") or "project"
    return f"{safe}_snapshot_{datetime.now(UTC):%Y%m%d}.zip"


# -- reading ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    """What a restore created."""

    project: str
    tables: dict[str, int]
    seconds: float

    def summary(self) -> str:
        return (f"restored project {self.project!r}: {sum(self.tables.values())} row(s) in "
                f"{len(self.tables)} table(s) in {self.seconds:.1f}s")


def _check_manifest(archive: SafeZip) -> dict[str, Any]:
    label = archive.label
    if MANIFEST not in archive.names():
        raise ArchiveError(f"{label}: not a Loupe snapshot (no {MANIFEST})")
    if archive.size(MANIFEST) > MANIFEST_MAX_BYTES:
        raise ArchiveError(f"{label}: the manifest is implausibly large; the snapshot is damaged")
    try:
        manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArchiveError(f"{label}: the manifest is not valid JSON ({e}); the snapshot is damaged") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"{label}: not a Loupe snapshot (manifest format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ArchiveError(f"{label}: the manifest has no valid format_version; the snapshot is damaged")
    if version > FORMAT_VERSION:
        raise ArchiveError(
            f"{label}: snapshot format version {version} was written by a newer Loupe "
            f"({manifest.get('loupe_version', '?')}); this Loupe ({__version__}) reads up to version "
            f"{FORMAT_VERSION}. Upgrade Loupe to restore it."
        )
    parts = manifest.get("parts")
    if not isinstance(parts, dict) or PROJECT_PART not in parts:
        raise ArchiveError(f"{label}: the manifest lists no project part; the snapshot is damaged")
    return manifest


def _verify_parts(archive: SafeZip, manifest: dict[str, Any]) -> None:
    label = archive.label
    parts: dict[str, Any] = manifest["parts"]
    names = set(archive.names())
    missing = sorted(set(parts) - names)
    if missing:
        raise ArchiveError(f"{label}: part(s) {', '.join(missing)} listed in the manifest are missing")
    extra = sorted(names - set(parts) - {MANIFEST})
    if extra:
        raise ArchiveError(f"{label}: unexpected member(s) {', '.join(extra[:5])}; the snapshot was altered")
    tables = SQLModel.metadata.tables
    for name, meta in parts.items():
        if not isinstance(meta, dict) or meta.get("table") not in tables:
            table = meta.get("table") if isinstance(meta, dict) else None
            raise ArchiveError(
                f"{label}: part {name!r} holds table {table!r}, which this Loupe ({__version__}) does not know; "
                "restore it with the Loupe version that wrote it"
            )
        if archive.sha256(name) != meta.get("sha256"):
            raise ArchiveError(f"{label}: part {name!r} does not match its checksum; the snapshot was altered "
                               "or damaged")


def read_manifest(source: str | Path | bytes | BinaryIO, *, password: str | None = None,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """The manifest of a snapshot (checked for format and version, parts not verified)."""
    with open_zip(source, password=password, max_bytes=max_bytes) as archive:
        return _check_manifest(archive)


def _rows(archive: SafeZip, name: str) -> Iterator[dict[str, Any]]:
    with archive.open(name) as stream:
        for number, line in enumerate(io.TextIOWrapper(stream, encoding="utf-8"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ArchiveError(f"{archive.label}: {name} line {number} is not valid JSON") from e
            if not isinstance(row, dict):
                raise ArchiveError(f"{archive.label}: {name} line {number} is not an object")
            yield row


def _free_name(session: Session, wanted: str) -> str:
    name = validate_project_name(wanted)
    if find_project(session, name) is None:
        return name
    for n in range(2, 10_000):
        suffix = f" ({n})"
        candidate = name[: MAX_NAME_LENGTH - len(suffix)] + suffix
        if find_project(session, candidate) is None:
            return candidate
    raise ArchiveError(f"no free project name for {name!r}; pass a new name")


class _Restorer:
    def __init__(self, session: Session, archive: SafeZip, manifest: dict[str, Any]) -> None:
        self.session = session
        self.archive = archive
        self.manifest = manifest
        self.maps: dict[str, dict[Any, Any]] = defaultdict(dict)
        self.counts: dict[str, int] = {}
        self.skipped = set(manifest.get("excluded_tables") or [])

    def decode(self, table: Table, raw: dict[str, Any], part: str) -> dict[str, Any]:
        unknown = set(raw) - set(table.c.keys())
        if unknown:
            raise ArchiveError(
                f"{self.archive.label}: {part} has column(s) {', '.join(sorted(unknown))} that table "
                f"{table.name!r} lacks in this Loupe ({__version__}); restore it with the Loupe version that wrote it"
            )
        return {k: decode_value(table.c[k], v) for k, v in raw.items()}

    def remap(self, table: Table, row: dict[str, Any], *, self_refs: list[str]) -> dict[str, Any]:
        for col, fk in _single_fks(table):
            value = row.get(col.name)
            if value is None or col.name in self_refs:
                continue
            target = fk.column.table.name
            mapped = self.maps[target].get(value) if _pk(fk.column.table) is not None else value
            if mapped is None:
                if target in self.skipped and col.nullable:
                    row[col.name] = None
                    continue
                raise ArchiveError(
                    f"{self.archive.label}: a {table.name} row references {target} id {value}, which the snapshot "
                    "does not hold; the snapshot is inconsistent"
                )
            row[col.name] = mapped
        for cname, target in json_references(table).items():
            values = row.get(cname)
            if isinstance(values, list):
                # Ids of rows deleted since (a slice keeps its frozen ids) have nothing to map to: drop them.
                ids = self.maps[target]
                keep = [i for i, v in enumerate(values) if v in ids]
                row[cname] = [ids[values[i]] for i in keep]
                for sibling in JSON_ALIGNED.get((table.name, cname), ()):
                    aligned = row.get(sibling)
                    if isinstance(aligned, list) and len(aligned) == len(values):
                        row[sibling] = [aligned[i] for i in keep]
        for (tname, cname), targets in POLYMORPHIC_REFERENCES.items():
            if tname == table.name and row.get(cname) is not None:
                found = next((self.maps[t][row[cname]] for t in targets(row) if row[cname] in self.maps.get(t, {})),
                             None)
                row[cname] = found
        return row

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        pk = _pk(table)
        if pk is None:
            self.session.execute(insert(table), rows)
            return
        old_ids = [r.pop(pk.name, None) for r in rows]
        stmt = insert(table).returning(pk, sort_by_parameter_order=True)
        new_ids = self.session.execute(stmt, rows).scalars().all()
        self.maps[table.name].update(zip(old_ids, new_ids, strict=True))

    def restore_table(self, table: Table, part: str) -> None:
        self_refs = [col.name for col, fk in _single_fks(table) if fk.column.table is table]
        pending: list[tuple[Any, dict[str, Any]]] = []  # (old id, self references) fixed after insert
        batch: list[dict[str, Any]] = []
        n = 0
        pk = _pk(table)
        for raw in _rows(self.archive, part):
            row = self.remap(table, self.decode(table, raw, part), self_refs=self_refs)
            if self_refs and pk is not None:
                pending.append((row.get(pk.name), {c: row[c] for c in self_refs if row.get(c) is not None}))
                for c in self_refs:
                    row[c] = None
            batch.append(row)
            n += 1
            if len(batch) >= BATCH:
                self.insert(table, batch)
                batch = []
        self.insert(table, batch)
        if pk is not None:
            ids = self.maps[table.name]
            for old, refs in pending:
                if refs:
                    values = {c: ids.get(v) for c, v in refs.items()}
                    self.session.execute(update(table).where(pk == ids[old]).values(**values))
        self.counts[table.name] = n

    def restore_global(self, table: Table, part: str) -> None:
        key = natural_key(table)
        pk = _pk(table)
        n = 0
        for raw in _rows(self.archive, part):
            row = self.remap(table, self.decode(table, raw, part), self_refs=[])
            existing = None
            if pk is not None and key and all(row.get(k) is not None for k in key):
                cond = [table.c[k] == row[k] for k in key]
                existing = self.session.execute(select(pk).where(*cond)).scalar()
            if pk is not None and existing is not None:
                self.maps[table.name][row[pk.name]] = existing
            else:
                self.insert(table, [row])
            n += 1
        self.counts[table.name] = n


def restore_order(tables: list[Table]) -> list[Table]:
    """Tables parents first, counting JSON id lists as dependencies too."""
    names = {t.name for t in tables}
    extra = [
        (SQLModel.metadata.tables[target], table)
        for table in tables
        for target in json_references(table).values()
        if target in names
    ]
    return list(sort_tables(tables, extra_dependencies=extra))


def restore_snapshot(
    engine: Engine,
    source: str | Path | bytes | BinaryIO,
    *,
    name: str | None = None,
    password: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> RestoreResult:
    """Restore a snapshot as a new project, with new ids.

    Parameters
    ----------
    engine
        The store.
    source
        The snapshot: a path, its bytes or a binary stream.
    name
        The new project's name; default the snapshot's, with `` (2)``, `` (3)``, … when taken.
    password
        The snapshot's password, when it has one.
    max_bytes
        Most bytes the archive may inflate to.

    Raises
    ------
    ArchiveError
        For a wrong password, a damaged or unsafe archive, one that is too big,
        a newer format, missing, unexpected or altered parts, unknown tables or
        columns. Nothing is written then.
    """
    started = time.perf_counter()
    _register_tables()
    with open_zip(source, password=password, max_bytes=max_bytes) as archive:
        manifest = _check_manifest(archive)
        _verify_parts(archive, manifest)
        parts: dict[str, dict[str, Any]] = manifest["parts"]
        tables = SQLModel.metadata.tables
        by_table = {meta["table"]: part for part, meta in parts.items() if part != PROJECT_PART}
        try:
            with session_scope(engine) as session:
                restorer = _Restorer(session, archive, manifest)
                project_table = tables[PROJECT_TABLE]
                project_rows = list(_rows(archive, PROJECT_PART))
                if len(project_rows) != 1:
                    raise ArchiveError(f"{archive.label}: {PROJECT_PART} must hold one project")
                project = restorer.decode(project_table, project_rows[0], PROJECT_PART)
                project["name"] = _free_name(session, name or str(project.get("name") or "restored project"))
                restorer.insert(project_table, [project])
                new_name = project["name"]
                for table in restore_order([tables[name] for name in by_table]):
                    part = by_table[table.name]
                    if parts[part].get("role") == "global":
                        restorer.restore_global(table, part)
                    else:
                        restorer.restore_table(table, part)
        except SQLAlchemyError as e:
            raise ArchiveError(f"{archive.label}: the snapshot does not fit this database ({e.__class__.__name__}: "
                               f"{str(e).splitlines()[0][:200]}); nothing was restored") from e
    return RestoreResult(project=new_name, tables=restorer.counts, seconds=time.perf_counter() - started)
