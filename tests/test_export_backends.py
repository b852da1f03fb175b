"""Exports and snapshots on SQLite and on PostgreSQL: the same bytes from the same project."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from core.exporters import ExportOptions, export_project, parse_rows
from core.snapshot import restore_snapshot, snapshot_bytes
from tests.fixtures_export import labeled_demo
from tests.fixtures_pg import db_engine, db_url, pg_cluster, pg_url  # noqa: F401

SOURCES = ("MANUAL", "WEAK_SUPERVISION", "HEURISTIC", "MODEL")


def export(engine: Engine, project: str, path: Path, fmt: str, rows: str = "all") -> str:
    export_project(engine, project=project, out=path, options=ExportOptions(format=fmt, sources=SOURCES,
                                                                             rows=parse_rows(rows)))
    return path.read_text(encoding="utf-8")


def test_exports_and_snapshots_on_each_backend(db_engine: Engine, tmp_path: Path) -> None:  # noqa: F811
    demo = labeled_demo(db_engine)
    refinery = export(db_engine, demo.name, tmp_path / "a.json", "refinery")
    assert refinery.count("\n") == 1956 + 2
    assert '"__spam__MANUAL": "spam"' in refinery
    labeled = export(db_engine, demo.name, tmp_path / "l.json", "refinery", "slice:first five")
    assert labeled.count("\n") == 5 + 2
    export(db_engine, demo.name, tmp_path / "ls.json", "labelstudio")
    export(db_engine, demo.name, tmp_path / "lb.ndjson", "labelbox")
    restored = restore_snapshot(db_engine, snapshot_bytes(db_engine, project=demo.name), name="copy").project
    assert export(db_engine, restored, tmp_path / "b.json", "refinery") == refinery
