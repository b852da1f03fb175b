"""What every exporter reads: the project's schema and its records in chunks.

:class:`ProjectView` resolves the options once (attributes, tasks, sources,
rows) and then reads the records chunk by chunk, so an export holds one chunk
in memory, never the whole project. A chunk comes in one of two shapes:

- :meth:`ProjectView.chunks`: a :class:`RecordView` per record with its label
  associations (every field, times on request) and tokens, for Label Studio,
  Labelbox, CoNLL and spaCy;
- :meth:`ProjectView.label_chunks`: a :class:`LabelChunk`, the attribute values
  and the labels of a chunk in lookups by record id, with no object per record
  or label, for the refinery columns (an export of 100,000 records spends its
  time there).

Valid manual labels come from :func:`core.valid_labels.valid_manual_labels`,
the one definition of them, read per chunk.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import groupby, repeat
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, false, func, literal_column, or_, select
from sqlmodel import Session, col

from core.errors import NotFoundError, ValidationError
from core.exporters.options import HEURISTIC, MANUAL, MODEL, WEAK_SUPERVISION, ExportOptions
from core.filters import Filter, compile_filter
from core.slices import slice_record_ids
from core.store.heuristics import Heuristic
from core.store.models import (
    Annotator,
    Attribute,
    AttributeType,
    LabelAssociation,
    LabelingTask,
    Project,
    Record,
    SourceType,
    TaskKind,
)
from core.store.projects import get_project
from core.store.records import attribute_expr
from core.store.tasks import list_attributes, list_labels, list_tasks
from core.tokenize import load_tokens
from core.valid_labels import Answer, single_row_answers, valid_manual_labels

CHUNK_SIZE = 2000

SourceKey = tuple[str, str | None]  # (MANUAL | WEAK_SUPERVISION | HEURISTIC | MODEL, name)
# A machine label in a LabelChunk: label name, confidence, token start, token end.
MachineLabel = tuple[str, float | None, int | None, int | None]

_ASSOC_COLUMNS = (
    LabelAssociation.id, LabelAssociation.record_id, LabelAssociation.task_id, LabelAssociation.label_id,
    LabelAssociation.source_type, LabelAssociation.heuristic_id, LabelAssociation.source_name,
    LabelAssociation.annotator_id, LabelAssociation.confidence, LabelAssociation.token_start,
    LabelAssociation.token_end, LabelAssociation.char_start, LabelAssociation.char_end, LabelAssociation.is_gold,
    # Read only when an export asks for times (the last three):
    LabelAssociation.created_at, LabelAssociation.updated_at, LabelAssociation.seconds_spent,
)  # fmt: skip


@dataclass(slots=True)
class Assoc:
    """One label association as exporters read it, with its source resolved to a name.

    ``created_at``, ``updated_at`` and ``seconds_spent`` are None when the
    export did not ask for times (CoNLL, spaCy).
    """

    id: int
    record_id: int
    task_id: int
    label_id: int
    label: str
    source: SourceKey
    annotator_id: int | None
    confidence: float | None
    token_start: int | None
    token_end: int | None
    char_start: int | None
    char_end: int | None
    is_gold: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None
    seconds_spent: float | None = None


@dataclass(slots=True)
class RecordView:
    """One record: attribute values, labels in the exported tasks, valid manual answers, tokens.

    ``valid`` maps task id → the valid manual answer (:mod:`core.valid_labels`),
    filled when MANUAL labels were read; ``tokens`` maps attribute id → offsets.
    """

    id: int
    running_id: int
    key: str
    data: dict[str, Any]
    created_at: datetime | None = None
    updated_at: datetime | None = None
    labels: list[Assoc] = field(default_factory=list)
    groups: dict[tuple[int, SourceKey], list[Assoc]] = field(default_factory=dict)
    valid: dict[int, Answer] = field(default_factory=dict)
    tokens: dict[int, list[list[int]]] = field(default_factory=dict)

    def by(self, task_id: int, source: SourceKey) -> list[Assoc]:
        """This record's labels of one task from one source."""
        return self.groups.get((task_id, source), [])


@dataclass(slots=True)
class LabelChunk:
    """A chunk of records as column-shaped exports read it.

    ``ids`` are record ids in export order and ``values`` their attribute
    values column by column: one sequence per attribute asked for, in record
    order. The rest are lookups by record id: ``valid`` task id → record id →
    valid manual answer; ``machine`` (task id, source) → record id → that
    source's labels in the order they were written; ``tokens`` attribute id →
    record id → token offsets. A source that gave each record of the chunk one
    label of a classification or multi-label task (weak supervision mostly
    does) is in ``columns`` instead of ``machine``: (task id, source) → its
    label names and their confidences, in record order.

    ``texts``, when set, are the records' stored JSON objects themselves, in
    record order: set when each holds exactly the attributes asked for, in
    their order, with values of their types that read back as they were
    written (:func:`verbatim_texts`), so a JSON export can copy them.
    """

    ids: list[int]
    values: list[Sequence[Any]]
    texts: list[str] | None = None
    valid: dict[int, dict[int, Answer]] = field(default_factory=dict)
    machine: dict[tuple[int, SourceKey], dict[int, tuple[MachineLabel, ...]]] = field(default_factory=dict)
    columns: dict[tuple[int, SourceKey], tuple[list[str], list[float | None]]] = field(default_factory=dict)
    tokens: dict[int, dict[int, list[list[int]]]] = field(default_factory=dict)


def heuristic_names(session: Session, project_id: int) -> dict[int, str]:
    """Heuristic id → name, for labels whose ``heuristic_id`` points at a heuristic."""
    stmt = select(col(Heuristic.id), col(Heuristic.name)).where(col(Heuristic.project_id) == project_id)
    return {int(i): str(n) for i, n in session.execute(stmt).all()}


def source_of(source_type: str, heuristic_id: int | None, source_name: str | None, names: dict[int, str]) -> SourceKey:
    """The ``(kind, name)`` a label association's source is exported under.

    A heuristic's labels carry its id and name; imported ones (no heuristic
    here) only the name they were imported with.
    """
    if source_type == SourceType.HEURISTIC.value:
        name = names.get(heuristic_id) if heuristic_id is not None else None
        return HEURISTIC, name or source_name or f"heuristic_{heuristic_id}"
    if source_type == SourceType.MODEL.value:
        return MODEL, source_name or "model"
    return source_type, None


def available_sources(session: Session, project_id: int) -> list[str]:
    """Every source the project has labels from, as ``ExportOptions.sources`` names them."""
    names = heuristic_names(session, project_id)
    # Only heuristics and models have names to list (an index lookup; manual and weak supervision labels,
    # most of the rows, are not read).
    stmt = (
        select(col(LabelAssociation.source_type), col(LabelAssociation.heuristic_id),
               col(LabelAssociation.source_name))
        .where(col(LabelAssociation.project_id) == project_id,
               col(LabelAssociation.source_type).in_([SourceType.HEURISTIC.value, SourceType.MODEL.value]))
        .distinct()
    )
    found = {source_of(t, i, n, names) for t, i, n in session.execute(stmt).all()}
    out = [MANUAL, WEAK_SUPERVISION]
    for kind in (HEURISTIC, MODEL):
        out += sorted(f"{kind}:{name}" for k, name in found if k == kind)
    return out


class ProjectView:
    """The project as one export sees it; build with :meth:`open`."""

    def __init__(self, session: Session, project: Project, options: ExportOptions) -> None:
        self.session = session
        self.project = project
        self.options = options
        pid = project.id or 0
        self.all_attributes = list_attributes(session, pid)
        self.attributes = _pick(self.all_attributes, options.attributes, what="attribute")
        self.attribute_by_id = {a.id or 0: a for a in self.all_attributes}
        self.tasks = _pick(list_tasks(session, pid), options.tasks, what="task")
        self.labels = {t.id or 0: list_labels(session, t.id or 0) for t in self.tasks}
        self.label_name = {label.id or 0: label.name for labels in self.labels.values() for label in labels}
        self.label_position = {label.id or 0: i for labels in self.labels.values() for i, label in enumerate(labels)}
        self.heuristic_names = heuristic_names(session, pid)
        self.annotators: dict[int | None, str] = {
            i: n for i, n in session.execute(select(col(Annotator.id), col(Annotator.name))).all()
        }
        self.sources = self._resolve_sources(options.sources)
        self._valid: dict[int, dict[int, Answer]] = {}
        # Selects run chunk after chunk (_chunk_rows), built and compiled once.
        self._statements: dict[tuple[Any, ...], Any] = {}
        self._prepared: dict[tuple[Any, ...], PreparedSelect] = {}

    @classmethod
    def open(cls, session: Session, *, project: str, options: ExportOptions) -> ProjectView:
        """Resolve the project by name and the options against it."""
        return cls(session, get_project(session, project), options)

    # -- schema -------------------------------------------------------------------------------------------

    def target(self, task: LabelingTask) -> Attribute | None:
        """The attribute a task labels, None for whole-record tasks."""
        return self.attribute_by_id.get(task.attribute_id) if task.attribute_id else None

    def is_extraction(self, task: LabelingTask) -> bool:
        return task.kind == TaskKind.EXTRACTION.value

    def token_attribute_ids(self) -> list[int]:
        """Attributes whose tokens the exported extraction tasks need."""
        return sorted({t.attribute_id for t in self.tasks if self.is_extraction(t) and t.attribute_id})

    def label_order(self, label_names: list[str], task_id: int) -> list[str]:
        """Label names in the task's label order (for multi-label answers)."""
        position = {label.name: i for i, label in enumerate(self.labels.get(task_id, []))}
        return sorted(label_names, key=lambda n: (position.get(n, len(position)), n))

    def valid(self, task_id: int) -> dict[int, Answer]:
        """Record id → valid manual answer of a task (computed once per export)."""
        if task_id not in self._valid:
            self._valid[task_id] = valid_manual_labels(self.session, task_id=task_id)
        return self._valid[task_id]

    def _resolve_sources(self, requested: tuple[str, ...]) -> list[SourceKey]:
        available = available_sources(self.session, self.project.id or 0)
        out: list[SourceKey] = []
        for source in requested:
            kind, _, name = source.partition(":")
            if kind in (MANUAL, WEAK_SUPERVISION):
                keys: list[SourceKey] = [(kind, None)]
            elif name:
                if f"{kind}:{name}" not in available:
                    known = ", ".join(s for s in available if s.startswith(kind + ":")) or "none"
                    raise NotFoundError(f"No labels from {kind.lower()} {name!r} in this project. Known: {known}.")
                keys = [(kind, name)]
            else:
                keys = [(kind, s.partition(":")[2]) for s in available if s.startswith(kind + ":")]
            out += [k for k in keys if k not in out]
        return out

    # -- rows ---------------------------------------------------------------------------------------------

    def record_ids(self, wanted: set[int] | None = None) -> list[int]:
        """Ids of the exported records (or of ``wanted``), in running-id order."""
        pid = self.project.id or 0
        stmt = select(col(Record.id)).where(col(Record.project_id) == pid).order_by(col(Record.running_id))
        ordered = [int(i) for i in self.session.execute(stmt).scalars()]
        wanted = self.row_filter() if wanted is None else wanted
        return ordered if wanted is None else [i for i in ordered if i in wanted]

    def row_filter(self) -> set[int] | None:
        """Ids of the records the rows option keeps; None keeps all."""
        rows = self.options.rows
        task_ids = [t.id or 0 for t in self.tasks]
        pid = self.project.id or 0
        if rows.kind == "all":
            return None
        if rows.kind == "labeled":
            return {rid for tid in task_ids for rid in self.valid(tid)}
        if rows.kind == "gold":
            stmt = select(col(LabelAssociation.record_id)).where(
                col(LabelAssociation.project_id) == pid,
                col(LabelAssociation.task_id).in_(task_ids),
                col(LabelAssociation.source_type) == SourceType.MANUAL.value,
                col(LabelAssociation.is_gold).is_(True),
            )
            return set(self.session.execute(stmt).scalars())
        if rows.kind == "min-confidence":
            stmt = select(col(LabelAssociation.record_id)).where(
                col(LabelAssociation.project_id) == pid,
                col(LabelAssociation.task_id).in_(task_ids),
                col(LabelAssociation.source_type) == SourceType.WEAK_SUPERVISION.value,
                col(LabelAssociation.confidence) >= float(rows.value or 0.0),
            )
            return set(self.session.execute(stmt).scalars())
        if rows.kind == "filter":
            if self.options.filter_json is not None:
                return filter_record_ids(self.session, project_id=pid, filter_json=self.options.filter_json)
            return self._ids_of_keys(self.options.record_keys or ())
        if rows.kind == "slice":
            return set(slice_record_ids(self.session, project_id=pid, name=str(rows.value)))
        raise ValidationError(f"Unknown rows {rows.kind!r}.")

    def _ids_of_keys(self, keys: tuple[str, ...]) -> set[int]:
        out: set[int] = set()
        keys_list = [str(k) for k in keys]
        for start in range(0, len(keys_list), 5000):
            chunk = keys_list[start : start + 5000]
            stmt = select(col(Record.id)).where(
                col(Record.project_id) == (self.project.id or 0),
                col(Record.key).in_(chunk),
            )
            out.update(self.session.execute(stmt).scalars())
        return out

    # -- records ------------------------------------------------------------------------------------------

    def _record_columns(self, attributes: list[Attribute], with_times: bool) -> tuple[list[Any], bool]:
        """Columns id, running id, key, then the values of ``attributes`` (or ``data``), then the times.

        The second item tells whether the values were extracted in SQL.
        """
        # Attribute values are extracted in SQL (json_extract / ->>): much faster than decoding each record's
        # JSON in Python. Names with quotes or backslashes cannot be JSON paths everywhere: decode those.
        extract = all('"' not in a.name and "\\" not in a.name for a in attributes)
        cols: list[Any] = [col(Record.id), col(Record.running_id), col(Record.key)]
        cols += [attribute_expr(a) for a in attributes] if extract else [col(Record.data)]
        if with_times:
            cols += [col(Record.created_at), col(Record.updated_at)]
        return cols, extract

    def _pages(self, cols: list[Any], *, raw: bool, chunk_size: int) -> Iterator[list[Any]]:
        """Rows of ``cols`` (id and running id first) of the exported records, a chunk at a time, in running-id
        order: keyset pages on the running id for all rows, pages of the id list otherwise."""
        conn = self.session.connection()
        filtered = self.row_filter()
        if filtered is None:
            pid = self.project.id or 0
            last_running = 0
            page = (select(*cols).where(col(Record.project_id) == pid, col(Record.running_id) > bindparam("after"))
                    .order_by(col(Record.running_id)).limit(chunk_size))
            prepared = PreparedSelect(conn, page) if raw else None
            while True:
                rows = (prepared.rows(after=last_running) if prepared is not None else
                        list(conn.execute(page, {"after": last_running}).all()))
                if not rows:
                    return
                yield rows
                last_running = rows[-1][1]
        ordered = self.record_ids(filtered)
        for start in range(0, len(ordered), chunk_size):
            stmt = (select(*cols).where(col(Record.id).in_(ordered[start : start + chunk_size]))
                    .order_by(col(Record.running_id)))
            rows = fetch_rows(conn, stmt, raw=raw)
            if rows:
                yield rows

    def _data_pages(self, chunk_size: int) -> Iterator[tuple[list[int], list[Any]]]:
        """Ids and stored data (JSON text, or objects the driver decoded) of the exported records, a chunk at a
        time, in running-id order.

        On SQLite, with all rows exported, a page comes as three strings SQLite joins: the ids, the running ids
        and the data texts, one per line. Split in Python they cost a third of the time of 2,000 rows of
        tuples. The store writes data with every line break escaped; a page whose texts hold one anyway (written
        by something else) is read as rows.
        """
        cols = [col(Record.id), col(Record.running_id), col(Record.data)]
        conn = self.session.connection()
        if conn.dialect.name != "sqlite" or self.options.rows.kind != "all":
            for rows in self._pages(cols, raw=True, chunk_size=chunk_size):
                yield list(map(itemgetter(0), rows)), list(map(itemgetter(2), rows))
            return
        page = (select(*cols).where(col(Record.project_id) == (self.project.id or 0),
                                    col(Record.running_id) > bindparam("after"))
                .order_by(col(Record.running_id)).limit(chunk_size))
        inner = page.subquery()
        joined = PreparedSelect(conn, select(func.group_concat(inner.c.id), func.group_concat(inner.c.running_id),
                                             func.group_concat(inner.c.data, literal_column("char(10)")),
                                             func.count()))
        last_running = 0
        while True:
            ids_text, running_text, data_text, n = joined.rows(after=last_running)[0]
            if not n:
                return
            ids, running = orjson.loads(f"[{ids_text}]"), orjson.loads(f"[{running_text}]")
            data: list[Any] = data_text.split("\n")
            if not len(ids) == len(running) == len(data) == n:  # a line break in a text
                rows = PreparedSelect(conn, page).rows(after=last_running)
                ids, running, data = (list(column) for column in zip(*rows, strict=True))
            else:
                ids, running, data = in_running_order(ids, running, data)
            yield ids, data
            last_running = running[-1]

    def _valid_in(
        self, conn: Any, task_ids: list[int], record_ids: list[int], bounds: tuple[int, int] | None = None
    ) -> dict[int, dict[int, Answer]]:
        """Task id → record id → valid manual answer, for a chunk of records (lowest and highest id ``bounds``).

        One query reads the chunk's manual label rows of all tasks. A record with one row in a task has that
        row's answer (:func:`core.valid_labels.single_row_answers`); the few with several rows (several
        annotators) go through :func:`core.valid_labels.valid_manual_labels`, the one definition of the rule.
        """
        kinds = {t.id or 0: t.kind for t in self.tasks}
        spans: list[Any] = []
        if any(kinds[tid] == TaskKind.EXTRACTION.value for tid in task_ids):
            spans = [col(LabelAssociation.token_start), col(LabelAssociation.token_end),
                     col(LabelAssociation.char_start), col(LabelAssociation.char_end)]
        label_ids = sorted({label.id or 0 for tid in task_ids for label in self.labels.get(tid, [])})

        def statement() -> Any:
            # Naming the tasks' labels (every manual label is one of them) lets the database read (task, source,
            # label, record) index entries alone, not the table's rows: about a third faster.
            return select(col(LabelAssociation.record_id), col(LabelAssociation.label_id), *spans,
                          col(LabelAssociation.task_id)).where(
                _any_of(col(LabelAssociation.task_id), task_ids),
                col(LabelAssociation.source_type) == SourceType.MANUAL.value,
                _any_of(col(LabelAssociation.label_id), label_ids),
            )

        rows = self._chunk_rows(conn, ("valid", tuple(task_ids), bool(spans)), statement, record_ids, record_at=0,
                                bounds=bounds, integers=not spans)
        by_task: dict[int, list[Any]] = {task_ids[0]: rows} if len(task_ids) == 1 else {}
        if len(task_ids) > 1:
            for row in rows:
                by_task.setdefault(row[-1], []).append(row)
        out: dict[int, dict[int, Answer]] = {}
        for tid in task_ids:
            task_rows = by_task.get(tid, [])
            answers = single_row_answers(kinds[tid], task_rows, self.label_name)
            if len(answers) < len(task_rows):
                several = [rid for rid, n in Counter(row[0] for row in task_rows).items() if n > 1]
                for rid in several:
                    del answers[rid]
                answers.update(valid_manual_labels(self.session, task_id=tid, record_ids=several))
            out[tid] = answers
        return out

    def _tokens_in(self, record_ids: list[int]) -> dict[int, dict[int, list[list[int]]]]:
        """Attribute id → record id → token offsets of a chunk, for the attributes extraction tasks label."""
        return {attr_id: load_tokens(self.session, attribute_id=attr_id, record_ids=record_ids)
                for attr_id in self.token_attribute_ids()}

    def chunks(
        self, *, sources: list[SourceKey] | None = None, chunk_size: int = CHUNK_SIZE, with_times: bool = True
    ) -> Iterator[list[RecordView]]:
        """The exported records, ``chunk_size`` at a time, with labels from ``sources`` (default: the options').

        ``with_times`` reads creation and update times of records and labels (Label Studio, Labelbox).
        """
        wanted = set(self.sources if sources is None else sources)
        kinds = sorted({kind for kind, _ in wanted})  # the options' source kinds are SourceType values
        task_ids = [t.id or 0 for t in self.tasks]
        names = [a.name for a in self.all_attributes]
        booleans = [a.name for a in self.all_attributes if a.data_type == AttributeType.BOOLEAN.value]
        cols, extract = self._record_columns(self.all_attributes, with_times)
        conn = self.session.connection()
        for rows in self._pages(cols, raw=extract and not with_times, chunk_size=chunk_size):
            views = []
            for row in rows:
                if extract:
                    data = dict(zip(names, row[3 : 3 + len(names)], strict=True))
                    for name in booleans:
                        if data[name] is not None:
                            data[name] = bool(data[name])
                else:
                    data = row[3] or {}
                times = row[-2:] if with_times else (None, None)
                views.append(RecordView(row[0], row[1], row[2], data, times[0], times[1]))
            by_id = {v.id: v for v in views}
            chunk_ids = list(by_id)
            if task_ids and kinds:
                self._load_labels(conn, by_id, chunk_ids, task_ids, kinds, wanted, with_times)
            if task_ids and (MANUAL, None) in wanted:
                for tid, valid in self._valid_in(conn, task_ids, chunk_ids).items():
                    for rid, answer in valid.items():
                        by_id[rid].valid[tid] = answer
            for attr_id, tokens in self._tokens_in(chunk_ids).items():
                for rid, offsets in tokens.items():
                    by_id[rid].tokens[attr_id] = offsets
            yield views

    def label_chunks(
        self, *, attributes: list[Attribute] | None = None, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[LabelChunk]:
        """The exported records, ``chunk_size`` at a time, as :class:`LabelChunk` objects.

        Each holds the values of ``attributes`` (default: the exported ones),
        the valid manual answers when MANUAL is exported, the labels of the
        other exported sources and the tokens extraction tasks need. Per chunk
        this is one query for the records, one or two per task for the valid
        manual answers (:func:`core.valid_labels.valid_manual_labels`) and one
        per kind of machine source.
        """
        attributes = self.attributes if attributes is None else attributes
        task_ids = [t.id or 0 for t in self.tasks]
        machine = {s for s in self.sources if s != (MANUAL, None)}
        kinds = sorted({kind for kind, _ in machine})
        _, extract = self._record_columns(attributes, False)
        conn = self.session.connection()
        for ids, data in self._data_pages(chunk_size):
            # Values decoded in Python (several times faster than extracting them in SQL), unless one would
            # differ from what the SQL extraction gives (a value not of its attribute's type): then extracted.
            objects, exact = _decode_all(data) if extract else (None, False)
            values = decoded_values(data, attributes, cast=extract, objects=objects)
            texts = None
            if values is None:
                values = self._extracted_values(conn, ids, attributes)
            elif exact:
                texts = verbatim_texts(data, objects or [], attributes, values)
            chunk = LabelChunk(ids, values, texts)
            bounds = (min(ids), max(ids))  # once per chunk: each label select needs them
            if task_ids and (MANUAL, None) in self.sources:
                chunk.valid = self._valid_in(conn, task_ids, ids, bounds)
            if task_ids and kinds:
                self._machine_labels(conn, chunk, task_ids, kinds, machine, bounds)
            chunk.tokens = self._tokens_in(ids)
            yield chunk

    def _extracted_values(self, conn: Any, ids: list[int], attributes: list[Attribute]) -> list[Sequence[Any]]:
        """The values of ``attributes`` of records ``ids`` (in running-id order), extracted in SQL, one sequence
        per attribute."""
        cols, _ = self._record_columns(attributes, False)
        rows = fetch_rows(conn, select(*cols).where(col(Record.id).in_(ids)).order_by(col(Record.running_id)),
                          raw=True)
        columns: list[Sequence[Any]] = [column for column in zip(*rows, strict=True)]
        values = columns[3:] if rows else [[] for _ in attributes]
        for i, a in enumerate(attributes):
            if a.data_type == AttributeType.BOOLEAN.value:  # SQL gives 0 and 1
                values[i] = [None if v is None else bool(v) for v in values[i]]
        return values

    def _machine_labels(
        self, conn: Any, chunk: LabelChunk, task_ids: list[int], kinds: list[str], wanted: set[SourceKey],
        bounds: tuple[int, int],
    ) -> None:
        """Fill ``chunk.machine`` and ``chunk.columns`` with the labels of the chunk's records from ``wanted``.

        One query per source kind (:func:`_machine_statement`).
        """
        spans = any(self.is_extraction(t) for t in self.tasks)
        ids = chunk.ids
        for kind in kinds:
            named = kind != WEAK_SUPERVISION
            statement = partial(_machine_statement, kind, task_ids, spans=spans, named=named)
            rows = self._chunk_rows(conn, ("machine", kind, tuple(task_ids), spans), statement, ids, record_at=1,
                                    bounds=bounds)
            self._group_labels(rows, kind, wanted, spans=spans, named=named, chunk=chunk)

    def _chunk_rows(
        self, conn: Any, key: tuple[Any, ...], statement: Callable[[], Any], ids: list[int], *, record_at: int,
        bounds: tuple[int, int] | None = None, integers: bool = False,
    ) -> list[Any]:
        """Raw rows of a select of label associations (made by ``statement``) of the records ``ids`` only.

        The select is made once per export (as ``key``): building one costs as much as reading a chunk's
        labels. Records imported together have nearly consecutive ids: then a range of record ids
        (:func:`_nearly_consecutive`), which scans the (task, source, record) index, with the select compiled
        once too; rows of records in the range but not among ``ids`` (their record id is column ``record_at``)
        are dropped here. Otherwise the list of ids, compiled for the chunk. ``bounds`` are the lowest and highest
        of ``ids``, when the caller has them. ``integers`` tells that every column is an integer that cannot be
        null: SQLite then joins each column into one string (:func:`_joined`), read several times faster than
        rows.
        """
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = statement()
        joined = integers and conn.dialect.name == "sqlite"
        record_id = col(LabelAssociation.record_id)
        low, high = (min(ids), max(ids)) if bounds is None else bounds
        if not _nearly_consecutive(ids, low, high):
            chunk_stmt = stmt.where(record_id.in_(ids))
            return _split_joined(fetch_rows(conn, _joined(chunk_stmt), raw=True)) if joined else \
                fetch_rows(conn, chunk_stmt, raw=True)
        prepared = self._prepared.get(key)
        if prepared is None:
            in_range = stmt.where(record_id.between(bindparam("low"), bindparam("high")))
            prepared = PreparedSelect(conn, _joined(in_range) if joined else in_range)
            self._prepared[key] = prepared
        rows = prepared.rows(low=low, high=high)
        if joined:
            rows = _split_joined(rows)
        if high - low + 1 > len(ids):  # the range holds records of other chunks
            in_chunk = set(ids)
            rows = [row for row in rows if row[record_at] in in_chunk]
        return rows

    def _group_labels(
        self, rows: list[Any], kind: str, wanted: set[SourceKey], *, spans: bool, named: bool, chunk: LabelChunk,
    ) -> None:
        """Put rows ``(task id, record id, label id, confidence[, token start, end][, heuristic id, source
        name])`` of one source kind, all of the chunk's records, into ``chunk``, leaving out sources not
        wanted."""
        label_name = self.label_name
        out = chunk.machine
        if not named:  # one source (weak supervision): the rows of a task at once
            source: SourceKey | None = (kind, None)
            if source not in wanted:
                return
            spans_of = {t.id or 0 for t in self.tasks if self.is_extraction(t)}
            for task_id, same_task in groupby(rows, key=itemgetter(0)):  # rows come task by task
                task_rows = list(same_task)
                if task_id not in spans_of and list(map(itemgetter(1), task_rows)) == chunk.ids:  # one per record
                    names = list(map(label_name.__getitem__, map(itemgetter(2), task_rows)))
                    chunk.columns[(task_id, source)] = (names, list(map(itemgetter(3), task_rows)))
                else:
                    out[(task_id, source)] = _labels_by_record(task_rows, label_name, spans=spans)
            return
        resolved: dict[tuple[int | None, str | None], SourceKey | None] = {}
        fixed: SourceKey | None = (kind, None) if (kind, None) in wanted else None
        last_task: int | None = None
        last_source: SourceKey | None = None
        by_record: dict[int, tuple[MachineLabel, ...]] = {}
        for row in rows:
            rid = row[1]
            source = fixed
            if named:
                origin = (row[-2], row[-1])
                if origin in resolved:
                    source = resolved[origin]
                else:
                    found = source_of(kind, origin[0], origin[1], self.heuristic_names)
                    source = resolved[origin] = found if found in wanted else None
            if source is None:
                continue
            if row[0] != last_task or source is not last_source:  # rows come task by task
                last_task, last_source = row[0], source
                by_record = out.setdefault((row[0], source), {})
            label: MachineLabel = (label_name[row[2]], row[3], row[4], row[5]) if spans else \
                (label_name[row[2]], row[3], None, None)
            # Tuples, not lists: the garbage collector stops tracking tuples of plain values, so a chunk's
            # labels do not pile up in the collector's oldest generation (full collections cost time).
            group = by_record.get(rid)
            by_record[rid] = (label,) if group is None else (*group, label)

    def _load_labels(
        self, conn: Any, by_id: dict[int, RecordView], chunk_ids: list[int], task_ids: list[int], kinds: list[str],
        wanted: set[SourceKey], with_times: bool,
    ) -> None:
        columns = _ASSOC_COLUMNS if with_times else _ASSOC_COLUMNS[:-3]
        stmt = (
            select(*columns)
            .where(
                and_(
                    col(LabelAssociation.task_id).in_(task_ids),
                    col(LabelAssociation.source_type).in_(kinds),
                    _records_in(chunk_ids),
                )
            )
            .order_by(col(LabelAssociation.id))
        )
        sources: dict[tuple[str, int | None, str | None], SourceKey | None] = {}
        label_name = self.label_name
        names = self.heuristic_names
        for row in fetch_rows(conn, stmt, raw=not with_times):
            view = by_id.get(row[1])
            if view is None:
                continue
            origin = (row[4], row[5], row[6])
            if origin in sources:
                source = sources[origin]
            else:
                found = source_of(row[4], row[5], row[6], names)
                source = sources[origin] = found if found in wanted else None
            if source is None:
                continue
            assoc = Assoc(row[0], row[1], row[2], row[3], label_name.get(row[3]) or str(row[3]), source, row[7],
                          row[8], row[9], row[10], row[11], row[12], bool(row[13]))
            if with_times:
                assoc.created_at, assoc.updated_at, assoc.seconds_spent = row[14], row[15], row[16]
            view.labels.append(assoc)
            group = view.groups.get((row[2], source))
            if group is None:
                view.groups[(row[2], source)] = [assoc]
            else:
                group.append(assoc)


# Per attribute type, the Python types whose values SQL extraction (attribute_expr) gives unchanged, or as the
# same JSON (a BOOLEAN's 1 is written true).
_EXACT_TYPES: dict[str, frozenset[type]] = {
    AttributeType.TEXT.value: frozenset({str, type(None)}),
    AttributeType.CATEGORY.value: frozenset({str, type(None)}),
    AttributeType.INTEGER.value: frozenset({int, type(None)}),
    AttributeType.FLOAT.value: frozenset({float, type(None)}),
    AttributeType.BOOLEAN.value: frozenset({bool, type(None)}),
}
_INT64 = (-(2**63), 2**63 - 1)


def decoded_values(
    data: list[Any], attributes: list[Attribute], *, cast: bool, objects: list[Any] | None = None
) -> list[Sequence[Any]] | None:
    """The values of ``attributes`` in records' ``data`` (JSON text, or objects the driver decoded), one list per
    attribute; missing values are None.

    With ``cast``, the values must be what extracting them in SQL as their attribute's type gives
    (:func:`core.store.records.attribute_expr`): strings for TEXT and CATEGORY, 64-bit integers, floats,
    booleans, or null. Else this returns None, for the caller to extract them in SQL. The texts are then decoded
    by orjson, which reads strings and floats as the json module does; what it reads otherwise (integers beyond
    64 bits become floats) fails those checks. Without ``cast`` the values are taken as the json module reads
    them, as SQLAlchemy decodes the column. ``objects`` are ``data`` decoded already (by :func:`_decode_all`).
    """
    if objects is None:
        objects = _decode_all(data)[0] if cast else [json.loads(d) if isinstance(d, str | bytes) else d for d in data]
    names = [a.name for a in attributes]  # read once: attributes of ORM objects are slow to read
    try:
        values: list[Sequence[Any]] = [list(map(dict.get, objects, repeat(name))) for name in names]
    except TypeError:  # a record's data is not a JSON object
        return None if cast else [[o.get(name) if isinstance(o, dict) else None for o in objects] for name in names]
    if not cast:
        return values
    for column, kind in zip(values, [a.data_type for a in attributes], strict=True):
        types = set(map(type, column))
        if not _EXACT_TYPES.get(kind, frozenset()).issuperset(types):
            return None
        if kind == AttributeType.INTEGER.value and int in types:
            numbers: Sequence[Any] = [v for v in column if v is not None] if type(None) in types else column
            if min(numbers) < _INT64[0] or max(numbers) > _INT64[1]:
                return None
    return values


def _decode_all(data: list[Any]) -> tuple[list[Any], bool]:
    """JSON texts decoded by orjson (objects the driver decoded kept); by the json module when orjson cannot
    read one (NaN, Infinity). The flag tells whether all of ``data`` were texts on one line each (as the store
    writes them) and orjson read them all."""
    try:
        try:
            # One call for the chunk: joined by commas, JSON documents are the items of a JSON array.
            joined = "[" + ",".join(data) + "]"
            objects = orjson.loads(joined)
        except TypeError:  # not all texts (objects the driver decoded, bytes)
            return [orjson.loads(d) if isinstance(d, str | bytes) else d for d in data], False
        if len(objects) == len(data):  # else some text is not one document: decoded one by one, it fails
            return list(objects), "\n" not in joined
        return [orjson.loads(d) for d in data], False
    except orjson.JSONDecodeError:
        return [json.loads(d) if isinstance(d, str | bytes) else d for d in data], False


def verbatim_texts(
    data: list[str], objects: list[Any], attributes: list[Attribute], values: list[Sequence[Any]]
) -> list[str] | None:
    """``data`` itself when each text is an object of exactly ``attributes``, in their order, that a JSON export
    may copy instead of encoding its values again; else None.

    ``objects`` are the texts as orjson read them (each on one line) and ``values`` their values per attribute,
    checked to be of their attributes' types (:func:`decoded_values` with ``cast``). The store writes record data
    with the encoder exports use (``ensure_ascii=False``, default separators), so a copied text is the very bytes
    the export would write, but for a float column: orjson reads an integer beyond 64 bits as a float, which the
    export writes as a float, not as the digits stored. Such a chunk is encoded. A text some other program wrote
    into the store is copied as it is: the same JSON, perhaps spaced or escaped otherwise.
    """
    if not attributes:
        return None
    names = tuple(a.name for a in attributes)
    if not all(map(names.__eq__, map(tuple, objects))):
        return None
    for column, attribute in zip(values, attributes, strict=True):
        if attribute.data_type == AttributeType.FLOAT.value:
            numbers = [v for v in column if v is not None]
            if numbers and max(map(abs, numbers)) >= 2.0**63:
                return None
    return data


def _labels_by_record(
    rows: list[Any], label_name: dict[int, str], *, spans: bool
) -> dict[int, tuple[MachineLabel, ...]]:
    """Record id → labels, in row order, of rows ``(task id, record id, label id, confidence[, token start,
    end])`` of one task and source."""
    record_ids = [row[1] for row in rows]
    names = [label_name[row[2]] for row in rows]
    confidences = [row[3] for row in rows]
    starts: Iterable[Any] = [row[4] for row in rows] if spans else repeat(None)
    ends: Iterable[Any] = [row[5] for row in rows] if spans else repeat(None)
    labels = list(zip(names, confidences, starts, ends, strict=False))  # starts and ends may repeat None
    # Mostly one label per record: each a tuple of one label (what zip of one sequence gives), built in C.
    by_record: dict[int, tuple[MachineLabel, ...]] = dict(zip(record_ids, zip(labels), strict=True))
    if len(by_record) < len(rows):  # some records have several labels: gather them in order
        by_record = {}
        for record_id, label in zip(record_ids, labels, strict=True):
            group = by_record.get(record_id)
            by_record[record_id] = (label,) if group is None else (*group, label)
    return by_record


def _records_in(ids: list[int]) -> Any:
    """Label associations of these records: a range when the ids are nearly consecutive, else a list.

    Records imported together have consecutive ids: a range scan of the (task, source, record) index beats
    thousands of lookups. Rows of records outside the chunk must then be skipped by the caller.
    """
    low, high = min(ids), max(ids)
    if _nearly_consecutive(ids, low, high):
        return col(LabelAssociation.record_id).between(low, high)
    return col(LabelAssociation.record_id).in_(ids)


def _nearly_consecutive(ids: list[int], low: int, high: int) -> bool:
    """Whether a range scan over ``ids`` (lowest ``low``, highest ``high``) reads at most about twice as many
    records as there are ids."""
    return high - low < 2 * len(ids)


def _machine_statement(kind: str, task_ids: list[int], *, spans: bool, named: bool) -> Any:
    """The select of machine labels of one source kind, with only the columns it needs: weak supervision has
    one source, so its rows carry no provenance; token columns only when an extraction task is exported."""
    cols: list[Any] = [col(LabelAssociation.task_id), col(LabelAssociation.record_id),
                       col(LabelAssociation.label_id), col(LabelAssociation.confidence)]
    if spans:
        cols += [col(LabelAssociation.token_start), col(LabelAssociation.token_end)]
    if named:
        cols += [col(LabelAssociation.heuristic_id), col(LabelAssociation.source_name)]
    # The order of the (task, source, record) index, and within a record the order of writing.
    return (
        select(*cols)
        .where(_any_of(col(LabelAssociation.task_id), task_ids), col(LabelAssociation.source_type) == kind)
        .order_by(col(LabelAssociation.task_id), col(LabelAssociation.record_id), col(LabelAssociation.id))
    )


def in_running_order(ids: list[int], running: list[int], data: list[Any]) -> tuple[list[int], list[int], list[Any]]:
    """Records' ids, running ids and data as given, or sorted by running id if they are not.

    SQLite joins a page's rows in the order its select reads them, which is the running-id order; its
    documentation promises no order, so it is checked (and this sorts, should it ever differ).
    """
    if running == sorted(running):  # running ids are unique in a project
        return ids, running, data
    ordered = sorted(zip(ids, running, data, strict=True), key=itemgetter(1))
    return [row[0] for row in ordered], [row[1] for row in ordered], [row[2] for row in ordered]


def _joined(stmt: Any) -> Any:
    """A select of one row: each column of ``stmt`` (integers, none null) joined by commas into one string, in the
    order SQLite reads the rows, then the count of rows. SQLite only (``group_concat``)."""
    inner = stmt.subquery()
    return select(*(func.group_concat(column) for column in inner.c), func.count())


def _split_joined(joined: list[Any]) -> list[tuple[int, ...]]:
    """The rows of a :func:`_joined` select from its one row."""
    *texts, n = joined[0]
    if not n:
        return []
    columns = [orjson.loads(f"[{text}]") for text in texts]
    if any(len(column) != n for column in columns):
        raise ValueError("A joined column held a null; only integer columns that cannot be null can be joined.")
    return list(zip(*columns, strict=True))


def _any_of(column: Any, values: list[int]) -> Any:
    """``column IN (values)`` as equalities: an IN list would be expanded at run time, which PreparedSelect
    skips (both databases plan the two alike)."""
    if not values:
        return false()
    return column == values[0] if len(values) == 1 else or_(*(column == v for v in values))


class PreparedSelect:
    """A select compiled once, then run on the DB-API cursor with new values for its named parameters.

    For the selects an export runs chunk after chunk: compiling one costs about as much as reading a chunk's
    labels. Parameters go through their types' bind processing (JSON paths need it); as :func:`fetch_rows`
    with ``raw``, the columns must need no result processing (integers, strings, floats).
    """

    def __init__(self, conn: Any, stmt: Any) -> None:
        self.conn = conn
        self.compiled = stmt.compile(dialect=conn.dialect)
        dialect = conn.dialect
        processors = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                      for bind, name in self.compiled.bind_names.items()}
        self.processors = {name: p for name, p in processors.items() if p is not None}

    def rows(self, **values: Any) -> list[Any]:
        compiled = self.compiled
        params = compiled.construct_params(values)
        for name, process in self.processors.items():
            params[name] = process(params[name])
        args = tuple(params[name] for name in compiled.positiontup or ()) if compiled.positional else params
        cursor = self.conn.connection.cursor()
        try:
            cursor.execute(compiled.string, args)
            return list(cursor.fetchall())
        finally:
            cursor.close()


def fetch_rows(conn: Any, stmt: Any, *, raw: bool) -> list[Any]:
    """Rows of a select; ``raw`` runs it on the DB-API cursor and skips SQLAlchemy's row processing.

    Raw rows are about twice as fast to read, which matters for exports of 100,000 records. Only
    for selects whose columns need no result processing (integers, strings, floats; no datetimes,
    no JSON): values are rendered into the SQL as literals, so they must be plain numbers and strings.
    """
    if not raw:
        return list(conn.execute(stmt).all())
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _pick(items: list[Any], names: tuple[str, ...] | None, *, what: str) -> list[Any]:
    if names is None:
        return items
    by_name = {item.name: item for item in items}
    missing = [n for n in names if n not in by_name]
    if missing:
        known = ", ".join(repr(n) for n in by_name) or "none"
        raise NotFoundError(f"No {what} named {', '.join(map(repr, missing))} in this project. Known: {known}.")
    chosen = set(names)
    return [item for item in items if item.name in chosen]


def filter_record_ids(session: Session, *, project_id: int, filter_json: str) -> set[int]:
    """Record ids matching a data-browser filter (:class:`core.filters.Filter` as JSON)."""
    where = compile_filter(session, project_id=project_id, flt=Filter.from_json(filter_json), style="in")
    return {int(i) for i in session.execute(select(col(Record.id)).where(where)).scalars()}
