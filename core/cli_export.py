"""``loupe export``, ``loupe snapshot`` and ``loupe restore``.

Hooked into :func:`core.cli.build_parser` by :func:`register`; like every
command, each prints one result line and reports bad input as ``error: …``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from core.exporters.options import DEFAULT_SOURCES, FORMATS, LabelboxParams

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

LABELBOX_BLOCKS = tuple(LabelboxParams.__dataclass_fields__)


def _split(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _engine() -> Engine:
    from core.store import get_engine

    return get_engine()


def cmd_export(args: argparse.Namespace) -> int:
    from core.cli_browse import parse_filter
    from core.errors import ValidationError
    from core.exporters import ExportOptions, LabelboxFilters, export_project, labelstudio_config, parse_range
    from core.exporters.options import parse_rows

    rows = parse_rows(args.rows or ("filter" if args.filter else "all"))
    filter_json = None
    if args.filter:
        if rows.kind != "filter":
            raise ValidationError(f"--filter chooses the rows to export, so it cannot go with --rows {args.rows}; "
                                  "leave --rows out (or use --rows filter).")
        filter_json = parse_filter(args.filter).to_json()
    elif rows.kind == "filter":
        raise ValidationError("--rows filter exports the records matching a filter: pass it as --filter JSON, "
                              'e.g. --filter \'[{"kind": "attribute", "attribute": "channel", "op": "equals", '
                              '"values": ["ads"]}]\' (the same JSON as loupe browse --filter).')
    params = LabelboxParams(**{block: block not in (args.exclude_block or []) for block in LABELBOX_BLOCKS})
    filters = LabelboxFilters(
        last_activity_at=parse_range(*args.last_activity_at) if args.last_activity_at else None,
        label_created_at=parse_range(*args.label_created_at) if args.label_created_at else None,
        workflow_status=args.workflow_status,
    )
    options = ExportOptions(
        format=args.format,
        attributes=_split(args.attributes),
        tasks=_split(args.tasks),
        sources=_split(args.sources) or DEFAULT_SOURCES,
        confidence=not args.no_confidence,
        rows=rows,
        filter_json=filter_json,
        password=args.password or None,
        labelbox_params=params,
        labelbox_filters=filters,
    )
    engine = _engine()
    result = export_project(engine, project=args.project, options=options, out=args.out)
    print(result.summary())
    if args.labelstudio_config:
        Path(args.labelstudio_config).write_text(
            labelstudio_config(engine, project=args.project, options=options), encoding="utf-8"
        )
        print(f"wrote the Label Studio labeling config to {args.labelstudio_config}")
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from core.snapshot import create_snapshot

    info = create_snapshot(_engine(), project=args.project, out=args.out, with_embeddings=args.with_embeddings,
                           password=args.password or None)
    print(info.summary())
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from core.snapshot import restore_snapshot

    result = restore_snapshot(_engine(), Path(args.path), name=args.project, password=args.password or None)
    print(result.summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``export``, ``snapshot`` and ``restore`` to the ``loupe`` command."""
    exp = sub.add_parser("export", help="export records and labels (refinery, Label Studio, Labelbox, CoNLL, spaCy)")
    exp.add_argument("--project", required=True)
    exp.add_argument("--format", required=True, choices=list(FORMATS))
    exp.add_argument("--out", required=True, help="file to write (a zip when --password is given)")
    exp.add_argument("--rows", default=None,
                     help="all, labeled, gold, slice:NAME, min-confidence:0.8 or filter (with --filter); "
                          "default: all, or filter when --filter is given")
    exp.add_argument("--filter", metavar="JSON",
                     help="export the records matching this filter: a list of conditions, the same JSON as "
                          "'loupe browse --filter' (see core/filters.py)")
    exp.add_argument("--password", help="put the file in an AES-256 zip protected by this password")
    exp.add_argument("--attributes", help="comma-separated attributes to include (default: all)")
    exp.add_argument("--tasks", help="comma-separated tasks to include (default: all)")
    exp.add_argument("--sources", help="comma-separated: MANUAL, WEAK_SUPERVISION, HEURISTIC[:name], MODEL[:name] "
                                       "(default: MANUAL,WEAK_SUPERVISION)")
    exp.add_argument("--no-confidence", action="store_true", help="leave out confidence columns")
    exp.add_argument("--labelstudio-config", metavar="XML", help="also write the Label Studio labeling config here")
    exp.add_argument("--exclude-block", action="append", choices=LABELBOX_BLOCKS,
                     help="Labelbox: leave out an optional block (repeatable)")
    exp.add_argument("--last-activity-at", nargs=2, metavar=("START", "END"),
                     help="Labelbox: data rows active in this range ('' leaves an end open)")
    exp.add_argument("--label-created-at", nargs=2, metavar=("START", "END"),
                     help="Labelbox: data rows with a label created in this range")
    exp.add_argument("--workflow-status", choices=["TO_LABEL", "IN_REVIEW", "IN_REWORK", "DONE"],
                     help="Labelbox: data rows in this workflow status")
    exp.set_defaults(handler=cmd_export)

    snap = sub.add_parser("snapshot", help="save a whole project to a zip that 'loupe restore' reads")
    snap.add_argument("--project", required=True)
    snap.add_argument("--out", required=True)
    snap.add_argument("--with-embeddings", action="store_true", help="include embeddings (bigger, no recompute)")
    snap.add_argument("--password", help="encrypt the snapshot (AES-256)")
    snap.set_defaults(handler=cmd_snapshot)

    restore = sub.add_parser("restore", help="restore a snapshot as a new project")
    restore.add_argument("path")
    restore.add_argument("--project", help="name of the new project (default: the snapshot's, suffixed when taken)")
    restore.add_argument("--password", help="the snapshot's password")
    restore.set_defaults(handler=cmd_restore)
