"""Project snapshots: a labeled project restored as a new one is identical in every table (ids aside) and
exports the same file; bad snapshots are refused with a clear error and change nothing."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Column, ForeignKey, Integer, LargeBinary, MetaData, String, Table, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from core.errors import ArchiveError
from core.exporters import ExportOptions, export_project
from core.snapshot import (
    FORMAT_VERSION,
    MANIFEST,
    NON_FK_ID_COLUMNS,
    POLYMORPHIC_REFERENCES,
    SnapshotPlan,
    create_snapshot,
    id_columns_without_fk,
    json_references,
    project_selectors,
    read_manifest,
    restore_snapshot,
    snapshot_bytes,
    snapshot_plan,
)
from core.store import make_engine, session_scope
from core.store.heuristics import Heuristic, LookupList, LookupTerm, WeakSupervisionRun
from core.store.models import LabelAssociation, Project
from core.store.projects import get_project
from core.store.tasks import get_task
from tests.fixtures_export import LabeledDemo, labeled_demo

ALL_SOURCES = ("MANUAL", "WEAK_SUPERVISION", "HEURISTIC", "MODEL")


@pytest.fixture()
def demo(engine: Engine) -> LabeledDemo:
    """The labeled demo with heuristics, a lookup list and a weak-supervision run its labels point at."""
    info = labeled_demo(engine)
    with session_scope(engine) as session:
        pid = get_project(session, info.name).id or 0
        spam = get_task(session, pid, "spam").id or 0
        terms = LookupList(project_id=pid, name="spam words")
        session.add(terms)
        session.flush()
        session.add(LookupTerm(project_id=pid, lookup_list_id=terms.id or 0, value="subscribe"))
        heuristic = Heuristic(project_id=pid, task_id=spam, name="has_link", code="def lf(r):\n    return 'spam'\n",
                              lookup_list_id=terms.id, settings={"min_confidence": 0.8})
        run = WeakSupervisionRun(project_id=pid, task_id=spam, model="majority", heuristics=["has_link"])
        session.add_all([heuristic, run])
        session.flush()
        session.execute(update(LabelAssociation)
                        .where(LabelAssociation.project_id == pid, LabelAssociation.source_type == "HEURISTIC")
                        .values(source_id=heuristic.id, heuristic_id=heuristic.id))
        session.execute(update(LabelAssociation)
                        .where(LabelAssociation.project_id == pid, LabelAssociation.source_type == "WEAK_SUPERVISION")
                        .values(source_id=run.id))
    return info


# -- comparing two projects table by table, ids replaced by what they point at ---------------------------------


class Canon:
    """Rows of a project's tables with every id replaced by the (canonical) row it refers to."""

    def __init__(self, session: Session, project: str, plan: SnapshotPlan) -> None:
        self.session = session
        self.pid = get_project(session, project).id or 0
        self.plan = plan
        self.memo: dict[tuple[str, Any], Any] = {}
        selectors = project_selectors(plan, self.pid)
        self.rows = {
            t.name: [dict(r._mapping) for r in session.execute(select(*t.columns).where(selectors[t.name]))]
            for t in plan.owned
        }

    def ref(self, table: str, value: Any) -> Any:
        if value is None:
            return None
        if table == "project":
            return "PROJECT" if value == self.pid else ("OTHER PROJECT", value)
        key = (table, value)
        if key not in self.memo:
            self.memo[key] = "…"  # cycles
            meta = SQLModel.metadata.tables[table]
            row = self.session.execute(select(*meta.columns).where(meta.c.id == value)).first()
            self.memo[key] = self.row(meta, dict(row._mapping)) if row else ("MISSING", table)
        return self.memo[key]

    def row(self, table: Table, row: dict[str, Any]) -> tuple[Any, ...]:
        out = []
        lists = json_references(table)
        for col in sorted(table.columns, key=lambda c: c.name):
            value = row[col.name]
            if col.primary_key and not col.foreign_keys:
                continue
            if col.foreign_keys:
                value = self.ref(next(iter(col.foreign_keys)).column.table.name, value)
            elif (table.name, col.name) in POLYMORPHIC_REFERENCES and value is not None:
                targets = POLYMORPHIC_REFERENCES[(table.name, col.name)](row)
                value = self.ref(targets[0], value) if targets else value
            elif col.name in lists and isinstance(value, list):
                value = tuple(self.ref(lists[col.name], v) for v in value)
            elif isinstance(value, (dict, list)):
                value = json.dumps(value, sort_keys=True)
            elif isinstance(value, datetime):
                value = value.isoformat()
            out.append((col.name, value))
        return tuple(out)

    def tables(self) -> dict[str, Counter[Any]]:
        return {
            t.name: Counter(self.row(t, r) for r in self.rows[t.name]) for t in self.plan.owned
        }


def project_row(session: Session, name: str) -> dict[str, Any]:
    row = session.execute(select(Project).where(Project.name == name)).scalar_one()
    return {k: v for k, v in row.model_dump().items() if k not in ("id", "name")}


def counts(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return {t.name: int(session.execute(select(func.count()).select_from(t)).scalar_one())
                for t in SQLModel.metadata.sorted_tables}


def export_text(engine: Engine, project: str, tmp_path: Path, fmt: str = "refinery") -> str:
    out = tmp_path / f"{project}.{fmt}"
    export_project(engine, project=project, out=out, options=ExportOptions(format=fmt, sources=ALL_SOURCES))
    return out.read_text(encoding="utf-8")


# -- round trip ----------------------------------------------------------------------------------------------------


def test_restored_project_is_identical_in_every_table_and_export(engine: Engine, demo: LabeledDemo,
                                                                  tmp_path: Path) -> None:
    path = tmp_path / "demo.zip"
    info = create_snapshot(engine, project=demo.name, out=path, password="pw")
    result = restore_snapshot(engine, path, password="pw")
    assert result.project == f"{demo.name} (2)"
    plan = snapshot_plan()
    with session_scope(engine) as session:
        original = Canon(session, demo.name, plan).tables()
        restored = Canon(session, result.project, plan).tables()
        assert project_row(session, result.project) == project_row(session, demo.name)
    for table in {"record", "labelassociation", "heuristic", "lookupterm", "weaksupervisionrun", "recordstatus",
                  "statuschange", "labelreview", "comment", "dataslice", "recordtokens"}:
        assert original[table], f"the fixture should fill {table}"
    assert restored == original
    assert {t: n for t, n in result.tables.items() if t != "annotator"} == info.tables
    assert export_text(engine, result.project, tmp_path) == export_text(engine, demo.name, tmp_path)
    # Labelbox/LS exports name rows by ids, which change; their content does not.
    ls = [json.loads(export_text(engine, p, tmp_path, "labelstudio")) for p in (demo.name, result.project)]
    assert [t["annotations"][0]["result"] if t["annotations"] else [] for t in ls[0]] == \
        [t["annotations"][0]["result"] if t["annotations"] else [] for t in ls[1]]


def test_restore_into_another_store_and_names(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    data = snapshot_bytes(engine, project=demo.name)
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert restore_snapshot(other, data).project == demo.name  # free there: no suffix
        assert restore_snapshot(other, data, name="Copy").project == "Copy"
        assert restore_snapshot(other, data, name="Copy").project == "Copy (2)"
        with session_scope(other) as session:
            restored = Canon(session, "Copy", snapshot_plan()).tables()
        with session_scope(engine) as session:
            assert restored == Canon(session, demo.name, snapshot_plan()).tables()
        assert export_text(other, "Copy", tmp_path) == export_text(engine, demo.name, tmp_path)
    finally:
        other.dispose()


def test_manifest(engine: Engine, demo: LabeledDemo) -> None:
    data = snapshot_bytes(engine, project=demo.name)
    manifest = read_manifest(data)
    assert manifest["format"] == "loupe-snapshot" and manifest["format_version"] == FORMAT_VERSION
    assert manifest["loupe_version"]
    assert manifest["project"] == {"name": demo.name}
    assert manifest["counts"]["record"] == 1956
    assert manifest["with_embeddings"] is False
    assert {"projectembedding", "recordembedding", "embeddingvector"} <= set(manifest["excluded_tables"])
    part = manifest["parts"]["tables/labelassociation.jsonl"]
    assert set(part) == {"table", "role", "rows", "bytes", "sha256"} and len(part["sha256"]) == 64
    assert manifest["parts"]["globals/annotator.jsonl"]["role"] == "global"


def test_embeddings_only_when_asked(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    from core.store.embeddings import (
        EmbeddingVector,
        ProjectEmbedding,
        RecordEmbedding,
        get_or_create_space,
        to_bytes,
    )

    with session_scope(engine) as session:
        pid = get_project(session, demo.name).id or 0
        content = session.execute(select(func.min(LabelAssociation.record_id))).scalar_one()
        attribute_id = get_task(session, pid, "entities").attribute_id or 0
        space = get_or_create_space(session, project_id=pid, attribute_id=attribute_id, model="tiny")
        session.add(EmbeddingVector(model="tiny", text_hash="h1", dim=3, vector=to_bytes(np.array([1.0, 0, 0]))))
        session.add(RecordEmbedding(embedding_id=space.id or 0, record_id=content, project_id=pid, text_hash="h1"))
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        restore_snapshot(other, snapshot_bytes(engine, project=demo.name), name="without")
        restore_snapshot(other, snapshot_bytes(engine, project=demo.name, with_embeddings=True), name="with")
        with session_scope(other) as session:
            spaces = {get_project(session, n).id: n for n in ("without", "with")}
            found = session.execute(select(ProjectEmbedding.project_id, ProjectEmbedding.model)).all()
            assert [(spaces[p], m) for p, m in found] == [("with", "tiny")]
            assert session.execute(select(RecordEmbedding.text_hash)).scalars().all() == ["h1"]
            vector = session.execute(select(EmbeddingVector.vector)).scalar_one()
            assert np.frombuffer(vector, dtype=np.float32).tolist() == [1.0, 0.0, 0.0]
        # A second restore matches the shared vector by (model, hash) instead of copying it again.
        restore_snapshot(other, snapshot_bytes(engine, project=demo.name, with_embeddings=True), name="again")
        with session_scope(other) as session:
            assert session.execute(select(func.count()).select_from(EmbeddingVector)).scalar_one() == 1
    finally:
        other.dispose()


# -- the rule that keeps snapshots generic ------------------------------------------------------------------------


def test_every_id_column_is_a_declared_foreign_key() -> None:
    # A table added later is covered by snapshots only if its references are foreign keys (core/snapshot.py).
    assert id_columns_without_fk() == [], (
        "Declare these as Field(foreign_key=...) or, if they truly are not row ids, add them with a reason to "
        "core.snapshot.NON_FK_ID_COLUMNS"
    )
    assert set(NON_FK_ID_COLUMNS) == {("record", "running_id"), ("labelassociation", "source_id")}


def test_plan_is_generic_over_tables() -> None:
    metadata = MetaData()
    Table("project", metadata, Column("id", Integer, primary_key=True))
    Table("annotator", metadata, Column("id", Integer, primary_key=True), Column("name", String, unique=True))
    Table("thing", metadata, Column("id", Integer, primary_key=True), Column("project_id", ForeignKey("project.id")))
    Table("part", metadata, Column("id", Integer, primary_key=True), Column("thing_id", ForeignKey("thing.id")),
          Column("by", ForeignKey("annotator.id")))
    Table("tensor", metadata, Column("id", Integer, primary_key=True), Column("thing_id", ForeignKey("thing.id")),
          Column("data", LargeBinary), info={"snapshot": "embeddings"})
    Table("tensor_part", metadata, Column("id", Integer, primary_key=True),
          Column("tensor_id", ForeignKey("tensor.id"), nullable=False))
    Table("cache", metadata, Column("id", Integer, primary_key=True), Column("project_id", ForeignKey("project.id")),
          info={"snapshot": "skip"})
    Table("unrelated", metadata, Column("id", Integer, primary_key=True))
    plan = snapshot_plan(metadata=metadata)
    assert [t.name for t in plan.owned] == ["thing", "part"]
    assert [t.name for t in plan.globals] == ["annotator"]
    assert sorted(plan.excluded) == ["cache", "tensor", "tensor_part"]
    with_tensors = snapshot_plan(metadata=metadata, with_embeddings=True)
    assert [t.name for t in with_tensors.owned] == ["thing", "part", "tensor", "tensor_part"]


# -- bad snapshots -------------------------------------------------------------------------------------------------


def rezip(data: bytes, *, drop: str | None = None, replace: dict[str, bytes] | None = None,
          add: dict[str, bytes] | None = None) -> bytes:
    """A plain copy of a snapshot with a member dropped, replaced or added."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename == drop:
                continue
            content = (replace or {}).get(info.filename, src.read(info.filename))
            dst.writestr(info.filename, content)
        for name, content in (add or {}).items():
            dst.writestr(name, content)
    return out.getvalue()


@pytest.fixture()
def plain(engine: Engine, demo: LabeledDemo) -> bytes:
    return snapshot_bytes(engine, project=demo.name)


def _manifest(data: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return dict(json.loads(zf.read(MANIFEST)))


def bad_cases(plain: bytes, protected: bytes) -> dict[str, tuple[bytes, dict[str, Any], str]]:
    manifest = _manifest(plain)
    newer = json.dumps({**manifest, "format_version": FORMAT_VERSION + 1, "loupe_version": "9.0"}).encode()
    with zipfile.ZipFile(io.BytesIO(plain)) as zf:
        records = zf.read("tables/record.jsonl")
    tampered = records.replace(b"Huh, anyway", b"Hah, anyway", 1)
    unknown = {**manifest, "parts": {**manifest["parts"], "tables/mystery.jsonl": {
        "table": "mystery", "role": "project", "rows": 0, "bytes": 0,
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}}
    bomb = rezip(plain, add={"padding.bin": b"\0" * 3_000_000})
    return {
        "wrong password": (protected, {"password": "guess"}, "wrong password"),
        "missing password": (protected, {}, "password-protected"),
        "not a zip": (b"this is not a zip file at all", {}, "not a zip archive"),
        "truncated": (plain[: len(plain) // 2], {}, "not a zip archive|damaged"),
        "missing part": (rezip(plain, drop="tables/labelassociation.jsonl"), {}, "missing"),
        "tampered part": (rezip(plain, replace={"tables/record.jsonl": tampered}), {}, "checksum"),
        "extra member": (rezip(plain, add={"tables/extra.jsonl": b"{}\n"}), {}, "unexpected member"),
        "newer format": (rezip(plain, replace={MANIFEST: newer}), {}, "newer Loupe"),
        "unknown table": (rezip(plain, replace={MANIFEST: json.dumps(unknown).encode()},
                                add={"tables/mystery.jsonl": b""}), {}, "does not know"),
        "not a snapshot": (rezip(plain, drop=MANIFEST), {}, "not a Loupe snapshot"),
        "zip slip": (rezip(plain, add={"../../etc/evil.jsonl": b"{}"}), {}, "unsafe path"),
        "absolute path": (rezip(plain, add={"/tmp/evil.jsonl": b"{}"}), {}, "unsafe path"),
        "zip bomb": (bomb, {"max_bytes": 2_000_000}, "zip bomb"),
    }


def test_bad_snapshots_are_refused_and_change_nothing(engine: Engine, demo: LabeledDemo, plain: bytes) -> None:
    protected = snapshot_bytes(engine, project=demo.name, password="right")
    before = counts(engine)
    for case, (data, kwargs, message) in bad_cases(plain, protected).items():
        with pytest.raises(ArchiveError, match=message):
            restore_snapshot(engine, data, **kwargs)
        assert counts(engine) == before, case
    assert restore_snapshot(engine, protected, password="right").project == f"{demo.name} (2)"


def test_a_lying_size_in_the_zip_directory_does_not_beat_the_limit(engine: Engine, plain: bytes) -> None:
    # Inflated bytes are counted while reading, whatever sizes the directory claims.
    from core.archive import open_zip

    with open_zip(plain, max_bytes=10**9) as archive, pytest.raises(ArchiveError, match="zip bomb"):
        archive.max_bytes = 1000
        archive.sha256("tables/record.jsonl")


def test_a_failure_halfway_rolls_everything_back(engine: Engine, plain: bytes) -> None:
    # A record row pointing at a project table row the snapshot lacks: caught after earlier tables were written.
    manifest = _manifest(plain)
    with zipfile.ZipFile(io.BytesIO(plain)) as zf:
        assoc = zf.read("tables/labelassociation.jsonl").splitlines()
    first = json.loads(assoc[0])
    first["record_id"] = 10**9
    changed = b"\n".join([json.dumps(first).encode(), *assoc[1:]]) + b"\n"
    import hashlib

    part = manifest["parts"]["tables/labelassociation.jsonl"]
    part["sha256"] = hashlib.sha256(changed).hexdigest()
    data = rezip(plain, replace={"tables/labelassociation.jsonl": changed, MANIFEST: json.dumps(manifest).encode()})
    before = counts(engine)
    with pytest.raises(ArchiveError, match="record id 1000000000"):
        restore_snapshot(engine, data)
    assert counts(engine) == before
