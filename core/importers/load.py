"""Import a file into a project in one transaction: all rows or nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.errors import DataImportError, LoupeError
from core.importers.infer import convert, converter, infer_type, needs_conversion
from core.importers.labels import ParsedLabels, classify_columns, parse_label_columns
from core.importers.labelstudio import looks_like_labelstudio, parse_labelstudio
from core.importers.readers import (
    FORMATS,
    RawTable,
    format_from_name,
    read_delimited,
    read_json_array,
    read_jsonl,
    read_text_lines,
    read_xlsx,
    unzip_upload,
)
from core.store.engine import session_scope
from core.store.models import (
    Annotator,
    Attribute,
    AttributeType,
    Label,
    LabelAssociation,
    LabelingTask,
    Project,
    Record,
    SourceType,
    TaskKind,
    utcnow,
)
from core.store.projects import bump_revision, create_project, find_project
from core.store.tasks import create_task, find_task, list_attributes, list_labels, list_tasks
from core.tokenize import char_span_to_tokens, ensure_tokens, get_nlp, store_tokens

Progress = Callable[[float, str], None]
# Rows per executemany of new records: bounds the driver's parameter buffers on large files.
INSERT_CHUNK = 20_000


@dataclass
class ImportResult:
    """What an import did, for the CLI's summary line and the page's message."""

    project: str
    file: str
    format: str
    created: int
    updated: int
    attributes_created: list[str] = field(default_factory=list)
    tasks_created: list[str] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"imported {self.created} new record(s)"]
        if self.updated:
            parts.append(f"updated {self.updated}")
        if self.attributes_created:
            parts.append(f"{len(self.attributes_created)} new attribute(s)")
        if self.tasks_created:
            parts.append(f"task(s) {', '.join(self.tasks_created)}")
        if self.labels:
            parts.append(", ".join(f"{n} {source.lower()} label(s)" for source, n in sorted(self.labels.items())))
        return f"{self.file} → {self.project}: " + "; ".join(parts) + f" in {self.seconds:.1f}s"


def read_file(
    data: bytes, *, name: str, fmt: str = "auto", password: str | None = None
) -> tuple[str, RawTable, ParsedLabels]:
    """Parse a file's bytes into records and the labels they carry (no database access).

    A ``.zip`` holding one data file (AES-encrypted with ``password`` or plain) is read as that file.
    """
    if name.lower().endswith(".zip"):
        name, data = unzip_upload(data, name=name, password=password)
    fmt = (fmt or "auto").lower()
    if fmt == "auto":
        fmt = format_from_name(name)
    if fmt not in FORMATS:
        raise DataImportError(f"unknown format {fmt!r}; use one of: auto, {', '.join(FORMATS)}", file=name)
    if fmt in ("csv", "tsv"):
        table = read_delimited(data, file=name, delimiter="," if fmt == "csv" else "\t")
    elif fmt in ("json", "refinery", "labelstudio"):
        table = read_json_array(data, file=name)
        if fmt == "labelstudio" or (fmt == "json" and looks_like_labelstudio(table)):
            fmt = "labelstudio"
    elif fmt == "jsonl":
        table = read_jsonl(data, file=name)
    elif fmt == "xlsx":
        table = read_xlsx(data, file=name)
    else:
        table = read_text_lines(data, file=name)
    if fmt == "labelstudio":
        table, parsed = parse_labelstudio(table)
        return fmt, table, parsed
    attributes, label_columns = classify_columns(table.columns)
    parsed = parse_label_columns(table, label_columns)
    if label_columns and fmt == "json":
        fmt = "refinery"
    table.columns = attributes
    if not attributes:
        raise DataImportError("the file has label columns but no attribute columns", file=name)
    return fmt, table, parsed


def import_file(
    engine: Engine,
    *,
    project: str,
    path: str | Path | None = None,
    data: bytes | None = None,
    name: str | None = None,
    fmt: str = "auto",
    primary_key: str | None = None,
    progress: Progress | None = None,
    password: str | None = None,
) -> ImportResult:
    """Import a file (a path, or ``data`` bytes with a file ``name``) into a project.

    The project is created when missing. Everything happens in one transaction:
    any bad row raises :class:`~core.errors.DataImportError` naming the file and
    line, and the database is left exactly as it was. A ``.zip`` upload is
    opened with ``password`` when it is encrypted.
    """
    started = time.perf_counter()
    report = progress or (lambda _f, _m: None)
    if data is None:
        if path is None:
            raise DataImportError("nothing to import: give a path or the file's bytes")
        file_path = Path(path)
        name = name or file_path.name
        try:
            data = file_path.read_bytes()
        except OSError as e:
            raise DataImportError(f"cannot read the file: {e.strerror}", file=str(path)) from e
    name = name or "upload"
    report(0.02, "reading")
    fmt, table, parsed = read_file(data, name=name, fmt=fmt, password=password)
    report(0.15, f"read {len(table.rows)} rows")
    with session_scope(engine) as session:
        result = _write(session, project_name=project, table=table, parsed=parsed, fmt=fmt,
                        primary_key=primary_key, report=report)
    result.seconds = time.perf_counter() - started
    report(1.0, "done")
    return result


def _write(
    session: Session,
    *,
    project_name: str,
    table: RawTable,
    parsed: ParsedLabels,
    fmt: str,
    primary_key: str | None,
    report: Progress,
) -> ImportResult:
    file = table.file
    project = find_project(session, project_name) or create_project(session, name=project_name)
    pid = project.id or 0
    result = ImportResult(project=project.name, file=file, format=fmt, created=0, updated=0)

    attributes = {a.name: a for a in list_attributes(session, pid)}
    had_records = bool(session.execute(select(func.count()).where(Record.project_id == pid)).scalar_one())
    pk = _resolve_primary_key(attributes, table, primary_key, had_records, project=project.name)
    # Spans need a text to point into: an attribute that an extraction task of the file labels is TEXT,
    # however short its values are.
    span_targets = {s.attribute for s in parsed.tasks.values() if s.kind is TaskKind.EXTRACTION and s.attribute}
    for column in table.columns:
        if column not in attributes:
            values = [row.get(column) for row in table.rows]
            data_type = AttributeType.TEXT if column in span_targets else infer_type(values)
            attr = Attribute(project_id=pid, name=column, data_type=data_type.value,
                             is_primary_key=(column == pk), position=len(attributes))
            session.add(attr)
            attributes[column] = attr
            result.attributes_created.append(column)
        elif column == pk and not attributes[column].is_primary_key:
            attributes[column].is_primary_key = True
    session.flush()
    report(0.25, "converting values")

    # Convert values and compute keys.
    converted: list[dict[str, Any]] = []
    keys: list[str | None] = []
    seen: dict[str, int] = {}
    types = {c: attributes[c].data_type for c in table.columns}
    converters = [(c, converter(types[c])) for c in table.columns]
    if not any(needs_conversion(t, typed=table.typed) for t in types.values()) and all(
        len(row) == len(table.columns) for row in table.rows[:1]
    ):
        # Text from a CSV-like file without label columns: the rows are the values already.
        converted = table.rows
    else:
        for row, line in zip(table.rows, table.lines, strict=True):
            try:
                converted.append({c: conv(row.get(c)) for c, conv in converters})
            except (ValueError, KeyError, TypeError):
                for c in table.columns:  # find the column and raise the error naming it
                    convert(row.get(c), types[c], column=c, file=file, line=line)
                raise
    if pk is None:
        keys = [None] * len(converted)
    else:
        for values, line in zip(converted, table.lines, strict=True):
            key_value = values.get(pk)
            if key_value is None:
                raise DataImportError(f"primary key {pk!r} is empty", file=file, line=line)
            key = str(key_value)
            if key in seen:
                raise DataImportError(f"duplicate primary key {pk}={key!r} (first on line {seen[key]})",
                                      file=file, line=line)
            seen[key] = line
            keys.append(key)

    existing: dict[str, tuple[int, dict[str, Any]]] = {}
    if pk is not None and had_records:
        stmt = select(Record.key, Record.id, Record.data).where(Record.project_id == pid)
        existing = {k: (rid, d) for k, rid, d in session.execute(stmt).all()}
    last_running = next_running = int(
        session.execute(select(func.coalesce(func.max(Record.running_id), 0)).where(Record.project_id == pid))
        .scalar_one()
    )
    now = utcnow()
    new_rows: list[tuple[int, str, dict[str, Any]]] = []  # running id, key, values
    updates: list[dict[str, Any]] = []
    row_record: list[int] = []  # record id of updated rows, minus the running id of new ones (ids come later)
    for values, key in zip(converted, keys, strict=True):
        if key is not None and key in existing:
            rid, old = existing[key]
            updates.append({"rid": rid, "data": {**old, **values}, "updated_at": now})
            row_record.append(rid)
            continue
        next_running += 1
        key = key if key is not None else str(next_running)
        new_rows.append((next_running, key, values))
        row_record.append(-next_running)
    report(0.4, f"writing {len(new_rows)} new records")
    if new_rows:
        _insert_records(session, project_id=pid, rows=new_rows, now=now)
    if updates:
        stmt = (
            update(Record.__table__)  # type: ignore[arg-type]
            .where(Record.__table__.c.id == bindparam("rid"))  # type: ignore[attr-defined]
            .values(data=bindparam("data"), updated_at=bindparam("updated_at"))
        )
        session.execute(stmt, updates)
    result.created, result.updated = len(new_rows), len(updates)
    row_ids: list[int] = []
    if parsed.items or parsed.token_checks or _has_extraction_task(session, pid):
        # Record ids of the file's rows, for labels and tokens: new records are those past the old last running id.
        id_of_running = dict(
            session.execute(
                select(Record.running_id, Record.id).where(Record.project_id == pid, Record.running_id > last_running)
            ).all()
        )
        row_ids = [id_of_running[-r] if r < 0 else r for r in row_record]

    report(0.6, "labeling tasks")
    tasks, labels_of = _resolve_tasks(session, project=project, parsed=parsed, table=table, result=result)
    report(0.7, "tokenizing")
    tokens = _tokenize(session, project=project, attributes=attributes, row_ids=row_ids, table=table,
                       converted=converted, parsed=parsed, report=report)
    report(0.9, "writing labels")
    _write_labels(session, project_id=pid, parsed=parsed, table=table, row_ids=row_ids, tasks=tasks,
                  labels_of=labels_of, tokens=tokens, attributes=attributes,
                  updated_ids={r for r in row_record if r > 0}, result=result)
    bump_revision(session, pid)
    return result


def _insert_records(
    session: Session, *, project_id: int, rows: list[tuple[int, str, dict[str, Any]]], now: datetime
) -> None:
    """Insert new records: ``(running id, key, values)`` rows, one ``executemany`` per chunk.

    The hot path of a large import. The statement is compiled by SQLAlchemy for the session's dialect
    (so it stays portable), and each column's bind processing is applied here: the timestamps once,
    the JSON serializer per row. Going through ``session.execute`` instead costs SQLAlchemy's
    per-row parameter handling, about three times the database's own work.
    """
    connection = session.connection()
    dialect = connection.dialect
    table = Record.__table__  # type: ignore[attr-defined]
    names = ("project_id", "running_id", "key", "data", "created_at", "updated_at")
    compiled = insert(table).values({name: bindparam(name) for name in names}).compile(dialect=dialect)

    def processor(name: str) -> Callable[[Any], Any]:
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        return process or (lambda value: value)

    to_json = processor("data")
    stamp = processor("created_at")(now)
    order = list(compiled.positiontup or ()) if compiled.positional else None
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        if order is None:
            params: list[Any] = [
                {"project_id": project_id, "running_id": running_id, "key": key, "data": to_json(values),
                 "created_at": stamp, "updated_at": stamp}
                for running_id, key, values in chunk
            ]
        else:
            by_name = [(project_id, running_id, key, to_json(values), stamp, stamp)
                       for running_id, key, values in chunk]
            if order != list(names):
                index = [names.index(name) for name in order]
                by_name = [tuple(row[i] for i in index) for row in by_name]
            params = by_name
        connection.exec_driver_sql(compiled.string, params)


def _has_extraction_task(session: Session, project_id: int) -> bool:
    stmt = select(LabelingTask.id).where(
        LabelingTask.project_id == project_id, LabelingTask.kind == TaskKind.EXTRACTION.value
    )
    return session.execute(stmt.limit(1)).first() is not None


def _resolve_primary_key(
    attributes: dict[str, Attribute], table: RawTable, primary_key: str | None, had_records: bool, *, project: str
) -> str | None:
    current = next((a.name for a in attributes.values() if a.is_primary_key), None)
    if primary_key is None:
        if current is not None and current not in table.columns:
            raise DataImportError(f"project {project!r} is keyed on {current!r}, which this file lacks",
                                  file=table.file)
        return current
    if primary_key not in table.columns:
        raise DataImportError(
            f"primary key {primary_key!r} is not a column; columns: {', '.join(table.columns)}", file=table.file
        )
    if current is not None and current != primary_key:
        raise DataImportError(f"project {project!r} is keyed on {current!r}, not {primary_key!r}", file=table.file)
    if current is None and had_records:
        raise DataImportError(
            f"project {project!r} has records without a primary key, so they cannot be matched on "
            f"{primary_key!r}; import into a new project, or without --primary-key",
            file=table.file,
        )
    return primary_key


def _resolve_tasks(
    session: Session, *, project: Project, parsed: ParsedLabels, table: RawTable, result: ImportResult
) -> tuple[dict[str, LabelingTask], dict[str, dict[str, Label]]]:
    tasks: dict[str, LabelingTask] = {}
    labels_of: dict[str, dict[str, Label]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for item in parsed.items:
        first_line.setdefault((item.task, item.label), table.lines[item.row])
    for spec in parsed.tasks.values():
        task = find_task(session, project.id or 0, spec.name)
        if task is None:
            try:
                task = create_task(session, project=project, name=spec.name, kind=spec.kind,
                                   attribute=spec.attribute, labels=spec.labels)
            except LoupeError as e:
                raise DataImportError(f"cannot create task {spec.name!r}: {e}", file=table.file) from e
            result.tasks_created.append(spec.name)
        else:
            target = task.attribute_id and session.get(Attribute, task.attribute_id)
            target_name = target.name if target else None
            if target_name != spec.attribute:
                raise DataImportError(
                    f"task {spec.name!r} labels {target_name or 'the whole record'} in project {project.name!r}, "
                    f"but the file uses it on {spec.attribute or 'the whole record'}",
                    file=table.file,
                )
            compatible = task.kind == spec.kind.value or (
                task.kind == TaskKind.MULTILABEL.value and spec.kind is TaskKind.CLASSIFICATION
            )
            if not compatible:
                raise DataImportError(
                    f"task {spec.name!r} is a {task.kind} task, but the file holds {spec.kind.value} labels for it",
                    file=table.file,
                )
            known = {label.name for label in list_labels(session, task.id or 0)}
            for label in spec.labels:
                if label not in known:
                    raise DataImportError(
                        f"unknown label {label!r} for task {spec.name!r} (labels: {', '.join(sorted(known))}); "
                        "add the label to the task first",
                        file=table.file,
                        line=first_line.get((spec.name, label)),
                    )
        tasks[spec.name] = task
        labels_of[spec.name] = {label.name: label for label in list_labels(session, task.id or 0)}
    return tasks, labels_of


def _tokenize(
    session: Session,
    *,
    project: Project,
    attributes: dict[str, Attribute],
    row_ids: list[int],
    table: RawTable,
    converted: list[dict[str, Any]],
    parsed: ParsedLabels,
    report: Progress,
) -> dict[str, dict[int, list[list[int]]]]:
    """Tokenize the attributes that extraction tasks (old or new) label; check per-token lists."""
    id_to_name = {a.id: a.name for a in attributes.values()}
    targets = {
        id_to_name[t.attribute_id]
        for t in list_tasks(session, project.id or 0)
        if t.kind == TaskKind.EXTRACTION.value and t.attribute_id in id_to_name
    }
    targets |= {c.attribute for c in parsed.token_checks}
    targets |= {parsed.tasks[i.task].attribute or "" for i in parsed.items if i.char_start is not None}
    tokens: dict[str, dict[int, list[list[int]]]] = {}
    if not targets:
        return tokens
    nlp = get_nlp(project.tokenizer)
    for name in sorted(targets):
        attr = attributes[name]
        pairs = [(rid, str(values.get(name) or "")) for rid, values in zip(row_ids, converted, strict=True)
                 if name in values]

        def tick(done: int, total: int, _name: str = name) -> None:
            report(0.7 + 0.2 * done / max(total, 1), f"tokenizing {_name}")

        tokens[name] = store_tokens(session, attribute=attr, records=pairs, nlp=nlp, progress=tick)
        ensure_tokens(session, attribute=attr, nlp=nlp)
    for check in parsed.token_checks:
        n_tokens = len(tokens[check.attribute].get(row_ids[check.row], []))
        if n_tokens != check.n_tags:
            raise DataImportError(
                f"column {check.column!r} has {check.n_tags} tags but {check.attribute!r} has {n_tokens} spaCy "
                "tokens; tags must be one per token",
                file=table.file,
                line=table.lines[check.row],
            )
    return tokens


def _write_labels(
    session: Session,
    *,
    project_id: int,
    parsed: ParsedLabels,
    table: RawTable,
    row_ids: list[int],
    tasks: dict[str, LabelingTask],
    labels_of: dict[str, dict[str, Label]],
    tokens: dict[str, dict[int, list[list[int]]]],
    attributes: dict[str, Attribute],
    updated_ids: set[int],
    result: ImportResult,
) -> None:
    if not parsed.items and not (updated_ids and parsed.carriers):
        return
    annotators = {item.annotator for item in parsed.items if item.annotator}
    annotator_ids = _annotator_ids(session, annotators)
    before: dict[tuple[int, int, int], set[tuple[int, int | None, int | None]]] = {}
    if updated_ids:
        before = _delete_carried_labels(session, parsed=parsed, tasks=tasks, row_ids=row_ids,
                                        updated_ids=updated_ids, annotator_ids=annotator_ids)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    # One label per record, task and source for single-label tasks.
    single: dict[tuple[int, int, str, str | None, str | None], str] = {}
    for item in parsed.items:
        task = tasks[item.task]
        line = table.lines[item.row]
        record_id = row_ids[item.row]
        token_start, token_end = item.token_start, item.token_end
        char_start, char_end = item.char_start, item.char_end
        if task.kind == TaskKind.EXTRACTION.value:
            attribute = parsed.tasks[item.task].attribute or ""
            offsets = tokens.get(attribute, {}).get(record_id, [])
            if token_start is not None and token_end is not None:
                char_start, char_end = offsets[token_start][0], offsets[token_end - 1][1]
            elif char_start is not None and char_end is not None:
                covered = char_span_to_tokens(offsets, char_start, char_end)
                if covered is None:
                    raise DataImportError(
                        f"span [{char_start}, {char_end}) of task {item.task!r} covers no token of {attribute!r}",
                        file=table.file, line=line,
                    )
                token_start, token_end = covered
        elif task.kind == TaskKind.CLASSIFICATION.value:
            who = (record_id, task.id or 0, item.source.value, item.annotator, item.source_name)
            previous = single.setdefault(who, item.label)
            if previous != item.label:
                raise DataImportError(
                    f"two labels ({previous!r}, {item.label!r}) from one source for single-label task "
                    f"{item.task!r}; make it a multi-label task",
                    file=table.file, line=line,
                )
        identity = (record_id, task.id, item.label, item.source.value, item.annotator, item.source_name,
                    token_start, token_end)
        if identity in seen:
            continue
        seen.add(identity)
        rows.append({
            "project_id": project_id, "record_id": record_id, "task_id": task.id,
            "label_id": labels_of[item.task][item.label].id, "source_type": item.source.value,
            "source_name": item.source_name,
            "annotator_id": annotator_ids.get(item.annotator) if item.annotator else None,
            "confidence": item.confidence, "token_start": token_start, "token_end": token_end,
            "char_start": char_start, "char_end": char_end, "is_gold": item.gold,
            "created_at": now, "updated_at": now, "seconds_spent": item.seconds,
        })
        result.labels[item.source.value] = result.labels.get(item.source.value, 0) + 1
    if rows:
        session.execute(insert(LabelAssociation), rows)
    if updated_ids:
        _sync_workflow(session, project_id=project_id, before=before, rows=rows, updated_ids=updated_ids)


Answer = tuple[int, int, int]  # (record id, task id, annotator id)
Parts = set[tuple[int, int | None, int | None]]  # (label id, token start, token end)


def _delete_carried_labels(
    session: Session,
    *,
    parsed: ParsedLabels,
    tasks: dict[str, LabelingTask],
    row_ids: list[int],
    updated_ids: set[int],
    annotator_ids: dict[str, int],
) -> dict[Answer, Parts]:
    """Delete the labels the file replaces on re-imported records; return the manual answers deleted.

    The file is the truth for the sources it carries and nothing else: a label column replaces its
    own source's labels (manual ones of the import's annotator only) on every re-imported row, an
    empty cell included; labels without a column (Label Studio) replace the same annotator's or
    model's labels on the records that carry them. Labels Loupe's annotators made are never touched.
    """
    targets: dict[tuple[str, str, str | None, str | None], set[int]] = {}
    for carrier in parsed.carriers:
        targets[carrier] = set(updated_ids)
    for item in parsed.items:
        carrier = (item.task, item.source.value, item.annotator, item.source_name)
        if carrier not in parsed.carriers and row_ids[item.row] in updated_ids:
            targets.setdefault(carrier, set()).add(row_ids[item.row])
    named = {annotator for _t, _s, annotator, _n in targets if annotator is not None}
    known = {**_existing_annotator_ids(session, named - set(annotator_ids)), **annotator_ids}
    before: dict[Answer, Parts] = {}
    for (task_name, source, annotator, source_name), record_ids in sorted(
        targets.items(), key=lambda kv: tuple(str(x) for x in kv[0])
    ):
        if annotator is not None and annotator not in known:
            continue  # nobody of that name ever labeled: nothing to replace
        where = [LabelAssociation.task_id == tasks[task_name].id, LabelAssociation.source_type == source]
        if source == SourceType.MANUAL.value:
            where.append(LabelAssociation.annotator_id.is_(None) if annotator is None  # type: ignore[union-attr]
                         else LabelAssociation.annotator_id == known[annotator])
        elif source != SourceType.WEAK_SUPERVISION.value:  # a task has one weak supervision result per record
            where.append(LabelAssociation.source_name.is_(None) if source_name is None  # type: ignore[union-attr]
                         else LabelAssociation.source_name == source_name)
        ids = sorted(record_ids)
        for start in range(0, len(ids), 5000):
            chunk = [*where, LabelAssociation.record_id.in_(ids[start : start + 5000])]  # type: ignore[attr-defined]
            if source == SourceType.MANUAL.value:
                stmt = select(LabelAssociation.record_id, LabelAssociation.task_id, LabelAssociation.annotator_id,
                              LabelAssociation.label_id, LabelAssociation.token_start, LabelAssociation.token_end)
                for rid, tid, aid, lid, ts, te in session.execute(stmt.where(*chunk)).all():
                    if aid is not None:
                        before.setdefault((rid, tid, aid), set()).add((lid, ts, te))
            session.execute(delete(LabelAssociation).where(*chunk))
    return before


def _sync_workflow(
    session: Session, *, project_id: int, before: dict[Answer, Parts], rows: list[dict[str, Any]],
    updated_ids: set[int],
) -> None:
    """Keep answers and workflow statuses true to what a re-import changed.

    An imported answer that changed gets a new version (so a review of the old one no longer
    counts) and its record moves back to ``labeled``, as when an annotator changes a label in
    Loupe; a record left without any manual label becomes ``unlabeled``. Unchanged answers keep
    their version and status, so re-importing the same file sends nothing back to review.
    """
    from core.store.workflow import RecordStatus, Status, bump_answer, set_status

    after: dict[Answer, Parts] = {}
    for row in rows:
        if row["source_type"] == SourceType.MANUAL.value and row["record_id"] in updated_ids and row["annotator_id"]:
            key = (row["record_id"], row["task_id"], row["annotator_id"])
            after.setdefault(key, set()).add((row["label_id"], row["token_start"], row["token_end"]))
    changed = sorted(key for key in before.keys() | after.keys() if before.get(key, set()) != after.get(key, set()))
    if not changed:
        return
    for record_id, task_id, annotator_id in changed:
        bump_answer(session, project_id=project_id, record_id=record_id, task_id=task_id, annotator_id=annotator_id)
    pairs = sorted({(rid, tid) for rid, tid, _ in changed})
    by_pair = {(rid, tid): aid for rid, tid, aid in changed}
    stored = {
        (rid, tid): Status(status)
        for rid, tid, status in session.execute(
            select(RecordStatus.record_id, RecordStatus.task_id, RecordStatus.status).where(
                RecordStatus.record_id.in_([rid for rid, _ in pairs]),  # type: ignore[attr-defined]
                RecordStatus.task_id.in_(sorted({tid for _, tid in pairs})),  # type: ignore[attr-defined]
            )
        ).all()
    }
    labeled = {
        (rid, tid)
        for rid, tid in session.execute(
            select(LabelAssociation.record_id, LabelAssociation.task_id).where(
                LabelAssociation.source_type == SourceType.MANUAL.value,
                LabelAssociation.record_id.in_([rid for rid, _ in pairs]),  # type: ignore[attr-defined]
                LabelAssociation.task_id.in_(sorted({tid for _, tid in pairs})),  # type: ignore[attr-defined]
            ).distinct()
        ).all()
    }
    for pair in pairs:
        current = stored.get(pair)
        if current is None:
            continue  # no stored status: it is derived from the labels, which are right
        target = Status.LABELED if pair in labeled else Status.UNLABELED
        set_status(session, project_id=project_id, record_id=pair[0], task_id=pair[1], to=target,
                   by=by_pair[pair], note="changed by a re-import", current=current)


def _existing_annotator_ids(session: Session, names: set[str]) -> dict[str, int]:
    if not names:
        return {}
    stmt = select(Annotator.name, Annotator.id).where(Annotator.name.in_(sorted(names)))  # type: ignore[attr-defined]
    return dict(session.execute(stmt).all())  # type: ignore[arg-type]


def _annotator_ids(session: Session, names: set[str]) -> dict[str, int]:
    if not names:
        return {}
    stmt = select(Annotator.name, Annotator.id).where(Annotator.name.in_(sorted(names)))  # type: ignore[attr-defined]
    ids = dict(session.execute(stmt).all())
    for name in sorted(names - set(ids)):
        annotator = Annotator(name=name)
        session.add(annotator)
        session.flush()
        ids[name] = annotator.id
    return ids  # type: ignore[return-value]


__all__ = ["ImportResult", "SourceType", "import_file", "read_file"]
