"""What every exporter reads: the project's schema and its records in chunks.

:class:`ProjectView` resolves the options once (attributes, tasks, sources,
rows) and then yields records chunk by chunk with their label associations and
tokens, so an export holds one chunk in memory, never the whole project.
Valid manual labels come from :func:`core.valid_labels.valid_manual_labels`,
the one definition of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

from sqlalchemy import Table, and_, func, select
from sqlmodel import Session, SQLModel, col

from core.errors import NotFoundError, ValidationError
from core.exporters.options import HEURISTIC, MANUAL, MODEL, WEAK_SUPERVISION, ExportOptions
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
from core.valid_labels import Answer, resolve_answers, valid_manual_labels

CHUNK_SIZE = 2000
CLASSIFICATION = TaskKind.CLASSIFICATION.value
HEURISTIC_TABLE = "heuristic"

SourceKey = tuple[str, str | None]  # (MANUAL | WEAK_SUPERVISION | HEURISTIC | MODEL, name)

def source_id_expr() -> Any:
    """The id of a label's heuristic or run: ``heuristic_id`` (a foreign key) where the schema has it, else
    ``source_id``."""
    heuristic_id = getattr(LabelAssociation, "heuristic_id", None)
    if heuristic_id is None:
        return col(LabelAssociation.source_id)
    return func.coalesce(heuristic_id, col(LabelAssociation.source_id))


_ASSOC_COLUMNS = (
    LabelAssociation.id, LabelAssociation.record_id, LabelAssociation.task_id, LabelAssociation.label_id,
    LabelAssociation.source_type, source_id_expr(), LabelAssociation.source_name,
    LabelAssociation.annotator_id, LabelAssociation.confidence, LabelAssociation.token_start,
    LabelAssociation.token_end, LabelAssociation.char_start, LabelAssociation.char_end, LabelAssociation.is_gold,
    # Read only when an export asks for times (the last three):
    LabelAssociation.created_at, LabelAssociation.updated_at, LabelAssociation.seconds_spent,
)  # fmt: skip


@dataclass(slots=True)
class Assoc:
    """One label association as exporters read it, with its source resolved to a name.

    ``created_at``, ``updated_at`` and ``seconds_spent`` are None when the
    export did not ask for times (refinery, CoNLL, spaCy).
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


def valid_answer(kind: str, assocs: list[Assoc]) -> Answer | None:
    """The valid manual answer among one record's MANUAL labels of one task.

    The same rule as :func:`core.valid_labels.valid_manual_labels` (which reads
    a whole task at once), applied to labels an export has already read.
    """
    parts: dict[int | None, list[Any]] = {}
    gold: list[Any] = []
    extraction = kind == TaskKind.EXTRACTION.value
    for a in assocs:
        part = (a.label, a.token_start, a.token_end, a.char_start, a.char_end) if extraction else a.label
        parts.setdefault(a.annotator_id, []).append(part)
        if a.is_gold:
            gold.append(part)
    answers = {k: _answer(kind, v) for k, v in parts.items()}
    return resolve_answers(answers, _answer(kind, gold) if gold else None)


def _answer(kind: str, parts: list[Any]) -> Answer:
    if kind == TaskKind.CLASSIFICATION.value:
        return str(parts[-1])
    if kind == TaskKind.MULTILABEL.value:
        return frozenset(parts)
    return tuple(sorted(set(parts), key=lambda s: (s[1] if s[1] is not None else -1, s[0])))


def workflow_module() -> ModuleType | None:
    """``core.store.workflow`` when this build has it (statuses, history, reviews), else None."""
    try:
        return importlib.import_module("core.store.workflow")
    except ImportError:
        return None


def heuristic_table() -> Table | None:
    """The heuristics table, once the heuristics module defines one."""
    return SQLModel.metadata.tables.get(HEURISTIC_TABLE)


def heuristic_names(session: Session, project_id: int) -> dict[int, str]:
    """Heuristic id → name, for labels whose ``source_id`` points at a heuristic."""
    table = heuristic_table()
    if table is None or "name" not in table.c or "id" not in table.c:
        return {}
    stmt = select(table.c.id, table.c.name)
    if "project_id" in table.c:
        stmt = stmt.where(table.c.project_id == project_id)
    return {int(i): str(n) for i, n in session.execute(stmt).all()}


def source_of(source_type: str, source_id: int | None, source_name: str | None, names: dict[int, str]) -> SourceKey:
    """The ``(kind, name)`` a label association's source is exported under."""
    if source_type == SourceType.HEURISTIC.value:
        name = names.get(source_id) if source_id is not None else None
        return HEURISTIC, name or source_name or f"heuristic_{source_id}"
    if source_type == SourceType.MODEL.value:
        return MODEL, source_name or "model"
    return source_type, None


def available_sources(session: Session, project_id: int) -> list[str]:
    """Every source the project has labels from, as ``ExportOptions.sources`` names them."""
    names = heuristic_names(session, project_id)
    stmt = (
        select(col(LabelAssociation.source_type), source_id_expr(), col(LabelAssociation.source_name))
        .where(col(LabelAssociation.project_id) == project_id)
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
            return slice_record_ids(self.session, project_id=pid, name=str(rows.value))
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

    def _record_columns(self, with_times: bool) -> tuple[list[Any], bool]:
        # Attribute values are extracted in SQL (json_extract / ->>): much faster than decoding each record's
        # JSON in Python. Names with quotes or backslashes cannot be JSON paths everywhere: decode those.
        extract = all('"' not in a.name and "\\" not in a.name for a in self.all_attributes)
        cols: list[Any] = [col(Record.id), col(Record.running_id), col(Record.key)]
        cols += [attribute_expr(a) for a in self.all_attributes] if extract else [col(Record.data)]
        if with_times:
            cols += [col(Record.created_at), col(Record.updated_at)]
        return cols, extract

    def chunks(
        self, *, sources: list[SourceKey] | None = None, chunk_size: int = CHUNK_SIZE, with_times: bool = True
    ) -> Iterator[list[RecordView]]:
        """The exported records, ``chunk_size`` at a time, with labels from ``sources`` (default: the options').

        ``with_times`` reads creation and update times of records and labels (Label Studio, Labelbox).
        """
        wanted = set(self.sources if sources is None else sources)
        kinds = sorted({kind if kind in (MANUAL, WEAK_SUPERVISION) else _db_kind(kind) for kind, _ in wanted})
        task_ids = [t.id or 0 for t in self.tasks]
        kind_of = {t.id or 0: t.kind for t in self.tasks}
        token_attrs = self.token_attribute_ids()
        names = [a.name for a in self.all_attributes]
        n_names = len(names)
        booleans = [a.name for a in self.all_attributes if a.data_type == AttributeType.BOOLEAN.value]
        cols, extract = self._record_columns(with_times)
        conn = self.session.connection()
        pid = self.project.id or 0
        filtered = self.row_filter()
        ordered = self.record_ids(filtered) if filtered is not None else None
        last_running = 0
        start = 0
        while True:
            stmt = select(*cols)
            if ordered is None:
                stmt = (stmt.where(col(Record.project_id) == pid, col(Record.running_id) > last_running)
                        .order_by(col(Record.running_id)).limit(chunk_size))
            else:
                chunk = ordered[start : start + chunk_size]
                start += chunk_size
                if not chunk:
                    return
                stmt = stmt.where(col(Record.id).in_(chunk)).order_by(col(Record.running_id))
            rows = fetch_rows(conn, stmt, raw=extract and not with_times)
            if not rows:
                return
            views = []
            for row in rows:
                if extract:
                    data = dict(zip(names, row[3 : 3 + n_names], strict=True))
                    for name in booleans:
                        if data[name] is not None:
                            data[name] = bool(data[name])
                else:
                    data = row[3] or {}
                times = row[-2:] if with_times else (None, None)
                views.append(RecordView(row[0], row[1], row[2], data, times[0], times[1]))
            last_running = views[-1].running_id
            by_id = {v.id: v for v in views}
            chunk_ids = list(by_id)
            if task_ids and kinds:
                self._load_labels(conn, by_id, chunk_ids, task_ids, kinds, wanted, with_times)
                if (MANUAL, None) in wanted:
                    for view in views:
                        for tid in task_ids:
                            assocs = view.groups.get((tid, (MANUAL, None)))
                            if not assocs:
                                continue
                            kind = kind_of[tid]
                            if len(assocs) == 1 and kind == CLASSIFICATION:
                                view.valid[tid] = assocs[0].label  # one annotator, one label: the common case
                                continue
                            answer = valid_answer(kind, assocs)
                            if answer is not None:
                                view.valid[tid] = answer
            for attr_id in token_attrs:
                for rid, offsets in load_tokens(self.session, attribute_id=attr_id, record_ids=chunk_ids).items():
                    by_id[rid].tokens[attr_id] = offsets
            yield views

    def _load_labels(
        self, conn: Any, by_id: dict[int, RecordView], chunk_ids: list[int], task_ids: list[int], kinds: list[str],
        wanted: set[SourceKey], with_times: bool,
    ) -> None:
        columns = _ASSOC_COLUMNS if with_times else _ASSOC_COLUMNS[:-3]
        low, high = min(chunk_ids), max(chunk_ids)
        # Records imported together have consecutive ids: a range scan of the (task, source, record) index
        # beats thousands of lookups. Rows of records outside the chunk are skipped below.
        records = (col(LabelAssociation.record_id).between(low, high) if high - low < 2 * len(chunk_ids)
                   else col(LabelAssociation.record_id).in_(chunk_ids))
        stmt = (
            select(*columns)
            .where(
                and_(
                    col(LabelAssociation.task_id).in_(task_ids),
                    col(LabelAssociation.source_type).in_(kinds),
                    records,
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


def _db_kind(kind: str) -> str:
    return SourceType.HEURISTIC.value if kind == HEURISTIC else SourceType.MODEL.value


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


def slice_record_ids(session: Session, *, project_id: int, name: str) -> set[int]:
    """Record ids of a saved slice (a dynamic slice is evaluated now).

    Raises
    ------
    NotFoundError
        When no slice has that name (or this build has no slices).
    """
    try:
        slices = importlib.import_module("core.slices")
    except ImportError as e:
        raise NotFoundError(f"No data slice named {name!r}: this build of Loupe has no saved slices.") from e
    return {int(i) for i in slices.slice_record_ids(session, project_id=project_id, name=name)}


def filter_record_ids(session: Session, *, project_id: int, filter_json: str) -> set[int]:
    """Record ids matching a data-browser filter (:class:`core.filters.Filter` as JSON)."""
    from core.filters import Filter, compile_filter

    where = compile_filter(session, project_id=project_id, flt=Filter.from_json(filter_json), style="in")
    return {int(i) for i in session.execute(select(col(Record.id)).where(where)).scalars()}
