"""Heuristics of a labeling task: add, edit, enable, delete, run, and store their votes.

Three kinds (:class:`core.store.heuristics.HeuristicKind`):

- **labeling functions**: Python typed in the app or loaded from a ``.py`` file. Every
  top-level function not starting with ``_`` is one heuristic named after it, stored with
  the file's imports, constants and private helpers. They run in worker processes
  (:mod:`core.sandbox`), never in the app's process, with the project's lookup lists
  available by name.
- **lookup-list heuristics**: label records (classification) or spans (extraction)
  containing a list's terms (:func:`core.lookup.find_term_spans`); no user code, run here.
- **external**: votes written by other code (an active learner, zero-shot) or imported
  from a refinery file, stored with :func:`store_external_votes`.

Votes are label associations with ``source_type = HEURISTIC``, ``heuristic_id`` and
``source_id`` = the heuristic's id and ``source_name`` = its name. A run replaces the
heuristic's previous votes in one transaction; a failed run (an exception on any record,
a timeout, too much memory) keeps no votes and reports the error with the record's key.
Label names the task does not define are reported on the heuristic and not stored.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core import sandbox
from core.errors import ConflictError, NotFoundError, ValidationError
from core.lookup import find_term_spans, get_list, list_terms, lookup_terms_for_code, tokenize_terms
from core.store import session_scope
from core.store.heuristics import Heuristic, HeuristicKind, LookupList, RunState
from core.store.models import (
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
from core.store.projects import bump_revision
from core.store.tasks import find_attribute, list_attributes, list_labels
from core.tokenize import ensure_tokens, get_nlp, load_tokens, tokenize_texts

#: Key of the target attribute's token texts in the record an extraction function receives.
TOKENS_KEY = "__tokens__"
DEFAULT_TIME_LIMIT_S = 60.0
DEFAULT_MEMORY_LIMIT_MB = 1024
PREVIEW_TIME_LIMIT_S = 10.0
MAX_NAME_LENGTH = 100
_INSERT_BATCH = 5000

Progress = Callable[[int, int], None]

__all__ = [
    "TOKENS_KEY",
    "PreviewResult",
    "RunOutcome",
    "add_from_file",
    "add_labeling_functions",
    "add_lookup_heuristic",
    "adopt_imported_heuristics",
    "delete_heuristic",
    "get_heuristic",
    "heuristics_frame",
    "list_heuristics",
    "preview_code",
    "run_heuristics",
    "split_functions",
    "store_external_votes",
    "update_heuristic",
]


@dataclass(frozen=True)
class RunOutcome:
    """What one heuristic's run did (also stored on the heuristic as its last run)."""

    heuristic_id: int
    name: str
    state: str
    hits: int
    duration_s: float
    error: str | None = None
    failed_record: str | None = None
    invalid_labels: tuple[str, ...] = ()
    invalid_spans: int = 0

    def summary(self) -> str:
        if self.state == RunState.FINISHED:
            text = f"{self.name}: {self.hits} vote(s) in {self.duration_s:.1f} s"
        else:
            text = f"{self.name}: {self.state} — {self.error}"
        if self.invalid_labels:
            text += f"; undefined label(s) not stored: {', '.join(self.invalid_labels)}"
        if self.invalid_spans:
            text += f"; {self.invalid_spans} span(s) outside the text not stored"
        return text


@dataclass(frozen=True)
class PreviewResult:
    """One function's output on one record ("run on this record")."""

    name: str
    state: str
    # A label name or None (classification); spans ``(label, start, end, text)`` (extraction).
    output: Any = None
    error: str | None = None
    logs: str = ""
    invalid_labels: tuple[str, ...] = ()


# --- reading --------------------------------------------------------------------------------------


def list_heuristics(session: Session, *, project_id: int, task_id: int | None = None) -> list[Heuristic]:
    """The project's heuristics (of one task when given), by task and creation order."""
    stmt = select(Heuristic).where(Heuristic.project_id == project_id)
    if task_id is not None:
        stmt = stmt.where(Heuristic.task_id == task_id)
    return list(session.execute(stmt.order_by(col(Heuristic.task_id), col(Heuristic.id))).scalars().all())


def get_heuristic(session: Session, *, project_id: int, task_id: int, name: str) -> Heuristic:
    """The task's heuristic of that name; the error lists those that exist."""
    stmt = select(Heuristic).where(Heuristic.task_id == task_id, Heuristic.name == name)
    found = session.execute(stmt).scalars().first()
    if found is None or found.project_id != project_id:
        names = [h.name for h in list_heuristics(session, project_id=project_id, task_id=task_id)]
        known = ", ".join(map(repr, names)) or "none yet"
        raise NotFoundError(f"No heuristic named {name!r} in this task. Heuristics: {known}.")
    return found


def _by_id(session: Session, heuristic_id: int) -> Heuristic:
    found = session.get(Heuristic, heuristic_id)
    if found is None:
        raise NotFoundError(f"No heuristic with id {heuristic_id}; it may have been deleted.")
    return found


def _task(session: Session, project_id: int, task_id: int) -> LabelingTask:
    task = session.get(LabelingTask, task_id)
    if task is None or task.project_id != project_id:
        raise NotFoundError(f"No labeling task with id {task_id} in this project.")
    return task


def is_stale(heuristic: Heuristic, *, list_updated_at: Any = None) -> bool:
    """True when the stored votes come from an older version (or an older state of its lookup list)."""
    if heuristic.last_run_state is None:
        return False
    if heuristic.last_run_version != heuristic.version:
        return True
    return bool(list_updated_at and heuristic.last_run_at and _aware(list_updated_at) > _aware(heuristic.last_run_at))


def _aware(moment: Any) -> Any:
    # SQLite returns naive datetimes for what was written as UTC.
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def heuristics_frame(session: Session, *, project_id: int, task_id: int) -> pd.DataFrame:
    """One row per heuristic of the task, for a grid: settings and last run."""
    lists = {x.id: x for x in session.execute(select(LookupList).where(LookupList.project_id == project_id)).scalars()}
    rows = []
    for h in list_heuristics(session, project_id=project_id, task_id=task_id):
        source = lists.get(h.lookup_list_id)
        state = h.last_run_state or "never run"
        if is_stale(h, list_updated_at=source.updated_at if source else None):
            state += " (outdated)"
        rows.append({
            "id": h.id, "name": h.name, "kind": h.kind, "enabled": h.enabled, "version": h.version,
            "description": h.description, "state": state, "hits": h.last_run_hits if h.last_run_state else None,
            "duration_s": h.last_run_duration_s, "last_run": h.last_run_at,
            "error": h.last_run_error or "", "undefined_labels": ", ".join(h.last_run_invalid_labels or []),
        })
    columns = ["id", "name", "kind", "enabled", "version", "description", "state", "hits", "duration_s",
               "last_run", "error", "undefined_labels"]
    return pd.DataFrame(rows, columns=columns)


# --- adding and editing ---------------------------------------------------------------------------


def _identifiers(nodes: Sequence[ast.AST]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                found.add(sub.id)
            elif isinstance(sub, ast.Attribute):
                found.add(sub.attr)
            elif isinstance(sub, ast.alias):
                found.update({sub.name.split(".")[0], sub.asname or sub.name})
    return found


def split_functions(source: str) -> dict[str, str]:
    """One self-contained source per labeling function of a file.

    Each keeps the file's imports, constants, private helpers and comments, its own
    function, and the other public functions only when something it keeps refers to them.

    Raises
    ------
    ValidationError
        As :func:`core.sandbox.discover_functions`.
    """
    names = sandbox.discover_functions(source)
    tree = ast.parse(source)
    public = {
        node.name: node for node in tree.body if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    }
    shared = [node for node in tree.body if not (isinstance(node, ast.FunctionDef) and node.name in public)]
    lines = source.splitlines(keepends=True)
    out: dict[str, str] = {}
    for name in names:
        keep = {name}
        while True:
            used = _identifiers([*shared, *(public[k] for k in keep)])
            grown = keep | (used & set(public))
            if grown == keep:
                break
            keep = grown
        drop: set[int] = set()
        for other, node in public.items():
            if other not in keep:
                first = min([d.lineno for d in node.decorator_list] + [node.lineno])
                drop.update(range(first - 1, node.end_lineno or node.lineno))
        text = "".join(line for i, line in enumerate(lines) if i not in drop)
        out[name] = re.sub(r"\n{3,}", "\n\n\n", text).strip("\n") + "\n"
    return out


def _docstring(code: str, name: str) -> str:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            doc = ast.get_docstring(node) or ""
            return doc.strip().splitlines()[0] if doc.strip() else ""
    return ""


def _check_name(name: str) -> str:
    cleaned = (name or "").strip()
    if not cleaned:
        raise ValidationError("A heuristic needs a name; got an empty one.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValidationError(f"Heuristic names have at most {MAX_NAME_LENGTH} characters; got {len(cleaned)}.")
    if "__" in cleaned.strip("_"):
        raise ValidationError(f"Heuristic name {cleaned!r} contains '__', which export column names reserve.")
    return cleaned


def _names_in_task(session: Session, task_id: int) -> dict[str, Heuristic]:
    return {h.name: h for h in session.execute(select(Heuristic).where(Heuristic.task_id == task_id)).scalars()}


def add_labeling_functions(
    session: Session,
    *,
    project_id: int,
    task_id: int,
    source: str,
    description: str = "",
    enabled: bool = True,
    replace: bool = False,
) -> list[Heuristic]:
    """Add one heuristic per labeling function in ``source``.

    Parameters
    ----------
    source
        Python code; every top-level ``def`` not starting with ``_`` becomes a heuristic
        named after it.
    description
        Used for every function without a docstring (the docstring's first line otherwise).
    enabled
        Whether the new heuristics take part in weak supervision.
    replace
        Update the code of heuristics of the same name instead of refusing.

    Raises
    ------
    ValidationError
        On a syntax error, duplicate functions or a bad signature (nothing is added).
    ConflictError
        When a name is taken in the task and ``replace`` is False.
    """
    task = _task(session, project_id, task_id)
    parts = split_functions(source)
    existing = _names_in_task(session, task_id)
    taken = [n for n in parts if n in existing]
    if taken and not replace:
        raise ConflictError(
            f"Task {task.name!r} has heuristic(s) named {', '.join(map(repr, taken))} already; rename the "
            "function(s), or replace their code (--replace in the CLI)."
        )
    for name in parts:
        _check_name(name)
        if name in existing and existing[name].kind != HeuristicKind.LABELING_FUNCTION:
            raise ConflictError(
                f"Heuristic {name!r} is a {existing[name].kind} heuristic; a function cannot replace it."
            )
    out = []
    for name, code in parts.items():
        text = _docstring(code, name) or description.strip()
        current = existing.get(name)
        if current is not None:
            if current.code != code:
                current.code = code
                current.version += 1
            if text:
                current.description = text
            current.updated_at = utcnow()
            session.add(current)
            out.append(current)
            continue
        created = Heuristic(project_id=project_id, task_id=task_id, name=name, description=text,
                            kind=HeuristicKind.LABELING_FUNCTION.value, code=code, enabled=enabled)
        session.add(created)
        out.append(created)
    session.flush()
    bump_revision(session, project_id)
    return out


def add_from_file(
    session: Session, *, project_id: int, task_id: int, path: str | Path, enabled: bool = True, replace: bool = False
) -> list[Heuristic]:
    """Add the labeling functions of a ``.py`` file (see :func:`add_labeling_functions`)."""
    file = Path(path)
    _check_py_name(file.name)
    try:
        data = file.read_bytes()
    except FileNotFoundError as e:
        raise NotFoundError(f"{file}: no such file.") from e
    except OSError as e:
        raise ValidationError(f"{file.name}: cannot be read: {e.strerror or e}.") from e
    return add_from_bytes(session, project_id=project_id, task_id=task_id, filename=file.name, data=data,
                          enabled=enabled, replace=replace)


def add_from_bytes(
    session: Session, *, project_id: int, task_id: int, filename: str, data: bytes, enabled: bool = True,
    replace: bool = False,
) -> list[Heuristic]:
    """Add the labeling functions of an uploaded ``.py`` file's content; as :func:`add_from_file`.

    Every top-level function not starting with ``_`` becomes one heuristic named after it;
    errors name the file.
    """
    _check_py_name(filename)
    try:
        source = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValidationError(f"{filename}: cannot be read as UTF-8 text: {e}.") from e
    try:
        return add_labeling_functions(session, project_id=project_id, task_id=task_id, source=source,
                                      enabled=enabled, replace=replace)
    except ValidationError as e:
        raise ValidationError(f"{filename}: {e}") from e


def _check_py_name(filename: str) -> None:
    suffix = Path(filename).suffix
    if suffix != ".py":
        raise ValidationError(
            f"{filename}: labeling functions are loaded from a .py file; got {suffix or 'no extension'!r}."
        )


def _label_by_name(session: Session, task: LabelingTask, name: str) -> Label:
    labels = list_labels(session, task.id or 0)
    for label in labels:
        if label.name == name:
            return label
    known = ", ".join(repr(x.name) for x in labels) or "none"
    raise NotFoundError(f"Task {task.name!r} has no label {name!r}. Labels: {known}.")


def _lookup_attribute(session: Session, task: LabelingTask, attribute: str | None) -> Attribute:
    if attribute:
        found = find_attribute(session, task.project_id, attribute)
        if found is None:
            raise NotFoundError(f"No attribute {attribute!r} in this project.")
        if task.kind == TaskKind.EXTRACTION and found.id != task.attribute_id:
            raise ValidationError(f"Task {task.name!r} labels spans of its own attribute, not of {attribute!r}.")
        return found
    if task.attribute_id is not None:
        found = session.get(Attribute, task.attribute_id)
        if found is not None:
            return found
    texts = [a for a in list_attributes(session, task.project_id) if a.data_type == AttributeType.TEXT]
    if not texts:
        raise ValidationError("A lookup-list heuristic searches a text attribute; this project has none. Name one.")
    return texts[0]


def add_lookup_heuristic(
    session: Session,
    *,
    project_id: int,
    task_id: int,
    lookup_list: str,
    label: str,
    attribute: str | None = None,
    name: str | None = None,
    description: str = "",
    case_sensitive: bool = False,
    whole_tokens: bool = True,
    enabled: bool = True,
) -> Heuristic:
    """A heuristic giving ``label`` to records (classification) or spans (extraction) with a list's terms.

    Parameters
    ----------
    attribute
        The text searched; by default the task's attribute, else the first TEXT attribute.
    case_sensitive, whole_tokens
        Matching options (see :func:`core.lookup.find_term_spans`); by default case is
        ignored and terms match whole tokens only.
    """
    task = _task(session, project_id, task_id)
    source = get_list(session, project_id=project_id, name=lookup_list)
    target = _label_by_name(session, task, label)
    attr = _lookup_attribute(session, task, attribute)
    heuristic_name = _check_name(name or f"{source.name}_lookup")
    if heuristic_name in _names_in_task(session, task_id):
        raise ConflictError(
            f"Task {task.name!r} has a heuristic named {heuristic_name!r} already; choose another name."
        )
    created = Heuristic(
        project_id=project_id, task_id=task_id, name=heuristic_name, kind=HeuristicKind.LOOKUP_LIST.value,
        description=description.strip() or f"Terms of lookup list {source.name!r} in {attr.name!r} → {target.name}",
        lookup_list_id=source.id, label_id=target.id, attribute_id=attr.id, enabled=enabled,
        settings={"case_sensitive": bool(case_sensitive), "whole_tokens": bool(whole_tokens)},
    )
    session.add(created)
    session.flush()
    bump_revision(session, project_id)
    return created


def update_heuristic(
    session: Session,
    *,
    heuristic_id: int,
    name: str | None = None,
    description: str | None = None,
    code: str | None = None,
    enabled: bool | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Heuristic:
    """Change a heuristic; a new code or new settings bump its version (its votes become outdated).

    A labeling function is named after its function: new code must define a function of the
    heuristic's name, or exactly one public function, which then names the heuristic.
    """
    h = _by_id(session, heuristic_id)
    old_name = h.name
    if code is not None and h.kind == HeuristicKind.LABELING_FUNCTION:
        names = sandbox.discover_functions(code)
        wanted = name.strip() if name else h.name
        if wanted not in names:
            if len(names) != 1 or name:
                raise ValidationError(
                    f"The code defines {', '.join(names)}, but heuristic {wanted!r} is the function named "
                    f"{wanted!r}: rename it in the code, and start helper names with `_`."
                )
            wanted = names[0]
        name = wanted
        if code != h.code:
            h.code = code
            h.version += 1
    elif name is not None and h.kind == HeuristicKind.LABELING_FUNCTION and name.strip() != h.name:
        raise ValidationError("A labeling function is named after its function: rename it in the code.")
    if name is not None and name.strip() != h.name:
        new_name = _check_name(name)
        if new_name in _names_in_task(session, h.task_id):
            raise ConflictError(f"This task has a heuristic named {new_name!r} already; choose another name.")
        h.name = new_name
    if description is not None:
        h.description = description.strip()
    if enabled is not None:
        h.enabled = bool(enabled)
    if settings is not None:
        merged = {**(h.settings or {}), **{k: bool(v) for k, v in settings.items()}}
        if merged != h.settings:
            h.settings = merged
            h.version += 1
    h.updated_at = utcnow()
    session.add(h)
    if h.name != old_name:
        session.execute(
            update(LabelAssociation).where(LabelAssociation.heuristic_id == h.id).values(source_name=h.name)  # type: ignore[arg-type]
        )
    session.flush()
    bump_revision(session, h.project_id)
    return h


def delete_heuristic(session: Session, *, heuristic_id: int) -> None:
    """Delete a heuristic and its votes (weak-supervision results stay until the next run)."""
    h = _by_id(session, heuristic_id)
    session.execute(delete(LabelAssociation).where(LabelAssociation.heuristic_id == h.id))  # type: ignore[arg-type]
    project_id = h.project_id
    session.delete(h)
    session.flush()
    bump_revision(session, project_id)


# --- external votes -------------------------------------------------------------------------------


def store_external_votes(
    session: Session,
    *,
    project_id: int,
    task_id: int,
    name: str,
    votes: Mapping[int, Any],
    confidences: Mapping[int, float] | None = None,
    description: str = "",
    duration_s: float = 0.0,
) -> Heuristic:
    """Store the votes of a heuristic computed elsewhere (active learner, zero-shot), replacing earlier ones.

    Parameters
    ----------
    name
        The heuristic, created as an ``external`` heuristic when missing.
    votes
        Record id → a label name (classification), a label name or a list of them
        (multi-label), or a list of ``(label, start, end)`` token spans (extraction);
        None or ``[]`` for no vote.
    confidences
        Record id → the vote's confidence in [0, 1] (the weight weak supervision gives it).
    """
    task = _task(session, project_id, task_id)
    existing = _names_in_task(session, task_id).get(name)
    if existing is not None and existing.kind != HeuristicKind.EXTERNAL:
        raise ConflictError(f"Heuristic {name!r} is a {existing.kind} heuristic; store these votes under another name.")
    h = existing or Heuristic(project_id=project_id, task_id=task_id, name=_check_name(name),
                              kind=HeuristicKind.EXTERNAL.value, description=description.strip())
    if description:
        h.description = description.strip()
    session.add(h)
    session.flush()
    ctx = _context(session, task, record_ids=list(votes))
    run = sandbox.HeuristicRun(name=h.name, state="finished", votes=[votes[r] for r in ctx.record_ids],
                               duration_s=duration_s)
    conf = [None if confidences is None else confidences.get(r) for r in ctx.record_ids]
    for value in conf:
        if value is not None and not 0.0 <= float(value) <= 1.0:
            raise ValidationError(f"Confidences must be between 0 and 1; got {value}.")
    _store_run(session, h, run, ctx, confidences=conf)
    return h


def adopt_imported_heuristics(session: Session, *, project_id: int) -> int:
    """Give heuristic labels imported from a file (refinery's INFORMATION_SOURCE) a heuristic of their own.

    Creates one ``external`` heuristic per task and source name and links the labels to it;
    returns how many were created.
    """
    stmt = (
        select(LabelAssociation.task_id, LabelAssociation.source_name)
        .where(LabelAssociation.project_id == project_id, LabelAssociation.source_type == SourceType.HEURISTIC.value,
               LabelAssociation.heuristic_id.is_(None))  # type: ignore[union-attr]
        .distinct()
    )
    created = 0
    for task_id, source_name in session.execute(stmt).all():
        names = _names_in_task(session, task_id)
        base = _check_name(str(source_name or "imported")[:MAX_NAME_LENGTH - 12])
        name = base if base not in names else f"{base}_imported"
        h = Heuristic(project_id=project_id, task_id=task_id, name=name, kind=HeuristicKind.EXTERNAL.value,
                      description="Labels imported from a file", last_run_state=RunState.FINISHED.value,
                      last_run_at=utcnow(), last_run_version=1)
        session.add(h)
        session.flush()
        where = [LabelAssociation.task_id == task_id, LabelAssociation.source_type == SourceType.HEURISTIC.value,
                 LabelAssociation.heuristic_id.is_(None)]  # type: ignore[union-attr]
        where.append(LabelAssociation.source_name.is_(None) if source_name is None  # type: ignore[union-attr]
                     else LabelAssociation.source_name == source_name)
        session.execute(
            update(LabelAssociation).where(*where).values(heuristic_id=h.id, source_id=h.id, source_name=name)
        )
        h.last_run_hits = int(session.execute(
            select(func.count()).select_from(LabelAssociation).where(LabelAssociation.heuristic_id == h.id)
        ).scalar_one())
        created += 1
    if created:
        bump_revision(session, project_id)
    return created


# --- running --------------------------------------------------------------------------------------


@dataclass
class _Context:
    """What a run needs from the store, read once: records in running-id order, labels, tokens."""

    project_id: int
    task_id: int
    kind: str
    labels: dict[str, int]
    record_ids: list[int]
    keys: list[str]
    data: list[dict[str, Any]]
    offsets: list[list[list[int]]] | None = None  # extraction: tokens of the task's attribute
    tokenizer: str = "blank:en"
    target: str = ""  # extraction: the task's attribute

    @property
    def sandbox_kind(self) -> sandbox.HeuristicKind:
        if self.kind == TaskKind.EXTRACTION:
            return "extraction"
        return "multilabel" if self.kind == TaskKind.MULTILABEL else "classification"

    def sandbox_records(self) -> list[dict[str, Any]]:
        if self.offsets is None:
            return self.data
        return [
            {**row, TOKENS_KEY: [_text(row.get(self.target))[s:e] for s, e in offs]}
            for row, offs in zip(self.data, self.offsets, strict=True)
        ]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _context(session: Session, task: LabelingTask, *, record_ids: Sequence[int] | None = None) -> _Context:
    project = session.get(Project, task.project_id)
    tokenizer = project.tokenizer if project else "blank:en"
    stmt = select(Record.id, Record.key, Record.data).where(Record.project_id == task.project_id)
    if record_ids is not None:
        stmt = stmt.where(Record.id.in_(list(record_ids)))  # type: ignore[union-attr]
    rows = session.execute(stmt.order_by(col(Record.running_id))).all()
    if record_ids is not None and len(rows) != len(set(record_ids)):
        missing = sorted(set(record_ids) - {int(r[0]) for r in rows})[:5]
        raise NotFoundError(f"Record id(s) {missing} are not in the task's project.")
    ctx = _Context(
        project_id=task.project_id, task_id=task.id or 0, kind=task.kind,
        labels={label.name: label.id or 0 for label in list_labels(session, task.id or 0)},
        record_ids=[int(r[0]) for r in rows], keys=[str(r[1]) for r in rows], data=[dict(r[2]) for r in rows],
        tokenizer=tokenizer,
    )
    if task.kind == TaskKind.EXTRACTION:
        attribute = session.get(Attribute, task.attribute_id) if task.attribute_id else None
        if attribute is None:
            raise ValidationError(f"Extraction task {task.name!r} has no attribute to take spans from.")
        ensure_tokens(session, attribute=attribute, nlp=get_nlp(tokenizer))
        stored = load_tokens(session, attribute_id=attribute.id or 0, record_ids=ctx.record_ids)
        ctx.offsets = [stored.get(r, []) for r in ctx.record_ids]
        ctx.target = attribute.name
    return ctx


def _record_tokens(session: Session, ctx: _Context, attribute: Attribute) -> list[list[list[int]]]:
    """Tokens of an attribute for every record: stored ones where present, others computed (not stored)."""
    stored = load_tokens(session, attribute_id=attribute.id or 0, record_ids=ctx.record_ids)
    missing = [i for i, r in enumerate(ctx.record_ids) if r not in stored]
    computed = tokenize_texts([_text(ctx.data[i].get(attribute.name)) for i in missing], nlp=get_nlp(ctx.tokenizer))
    fresh = dict(zip(missing, computed, strict=True))
    return [stored[r] if r in stored else fresh[i] for i, r in enumerate(ctx.record_ids)]


@dataclass
class _Job:
    heuristic_id: int
    name: str
    kind: str
    version: int
    code: str = ""
    lists: dict[str, list[str]] = field(default_factory=dict)
    # lookup-list heuristics
    label: str = ""
    attribute: str = ""
    terms: list[str] = field(default_factory=list)
    term_tokens: list[list[str]] = field(default_factory=list)
    offsets: list[list[list[int]]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def _lists_for_code(code: str, function_names: Sequence[str], lists: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The lookup lists a function's code refers to (all of them if it cannot be parsed)."""
    try:
        used = _identifiers([ast.parse(code)])
    except (SyntaxError, ValueError):
        used = set(lists)
    return {name: terms for name, terms in lists.items() if name in used and name not in function_names}


def _prepare(session: Session, ctx: _Context, heuristics: Sequence[Heuristic]) -> list[_Job]:
    lists = lookup_terms_for_code(session, project_id=ctx.project_id)
    labels_by_id = {v: k for k, v in ctx.labels.items()}
    jobs = []
    for h in heuristics:
        job = _Job(heuristic_id=h.id or 0, name=h.name, kind=h.kind, version=h.version, settings=dict(h.settings or {}))
        if h.kind == HeuristicKind.LABELING_FUNCTION:
            job.code = h.code
            try:
                names = sandbox.discover_functions(h.code)
            except ValidationError:
                names = [h.name]
            job.lists = _lists_for_code(h.code, names, lists)
        else:
            attribute = session.get(Attribute, h.attribute_id) if h.attribute_id else None
            if attribute is None or h.lookup_list_id is None or h.label_id not in labels_by_id:
                job.label = ""  # reported as a failure below
            else:
                job.label = labels_by_id[h.label_id]
                job.attribute = attribute.name
                job.terms = [t.value for t in list_terms(session, lookup_list_id=h.lookup_list_id,
                                                         include_blacklisted=False)]
                if job.settings.get("whole_tokens", True):
                    job.term_tokens = tokenize_terms(job.terms, nlp=get_nlp(ctx.tokenizer))
                if ctx.offsets is not None and ctx.target == attribute.name:
                    job.offsets = ctx.offsets
                else:
                    job.offsets = _record_tokens(session, ctx, attribute)
        jobs.append(job)
    return jobs


def _run_lookup(job: _Job, ctx: _Context) -> sandbox.HeuristicRun:
    started = time.monotonic()
    if not job.label:
        return sandbox.HeuristicRun(name=job.name, state="failed", error=(
            "the heuristic's lookup list, label or attribute no longer exists; delete it and add it again"))
    whole = bool(job.settings.get("whole_tokens", True))
    terms: Sequence[Any] = job.term_tokens if whole else job.terms
    votes: list[Any] = []
    for row, offsets in zip(ctx.data, job.offsets, strict=True):
        spans = find_term_spans(_text(row.get(job.attribute)), offsets, terms=terms,
                                case_sensitive=bool(job.settings.get("case_sensitive", False)), whole_tokens=whole)
        if ctx.kind == TaskKind.EXTRACTION:
            votes.append([(job.label, s, e) for s, e in spans])
        else:
            votes.append(job.label if spans else None)
    return sandbox.HeuristicRun(name=job.name, state="finished", votes=votes, duration_s=time.monotonic() - started)


def _store_run(
    session: Session,
    h: Heuristic,
    run: sandbox.HeuristicRun,
    ctx: _Context,
    *,
    confidences: Sequence[float | None] | None = None,
    version: int | None = None,
) -> RunOutcome:
    """Replace the heuristic's votes with the run's (none when it failed) and record the run on it."""
    session.execute(delete(LabelAssociation).where(LabelAssociation.heuristic_id == h.id))  # type: ignore[arg-type]
    rows: list[dict[str, Any]] = []
    invalid = set(run.invalid_labels)
    if run.state == RunState.FINISHED:
        now = utcnow()
        base = {"project_id": ctx.project_id, "task_id": ctx.task_id, "source_type": SourceType.HEURISTIC.value,
                "source_id": h.id, "heuristic_id": h.id, "source_name": h.name, "annotator_id": None,
                "is_gold": False, "created_at": now, "updated_at": now, "seconds_spent": None}
        for i, vote in enumerate(run.votes):
            conf = None if confidences is None else confidences[i]
            if ctx.kind == TaskKind.EXTRACTION:
                offsets = ctx.offsets[i] if ctx.offsets is not None else []
                for label, start, end in vote or ():
                    if label not in ctx.labels:
                        invalid.add(str(label))
                        continue
                    if not 0 <= start < end <= len(offsets):
                        continue
                    rows.append({**base, "record_id": ctx.record_ids[i], "label_id": ctx.labels[label],
                                 "confidence": conf, "token_start": start, "token_end": end,
                                 "char_start": offsets[start][0], "char_end": offsets[end - 1][1]})
            elif vote is not None:
                # multi-label: a list of label names; classification: one name
                for label in [vote] if isinstance(vote, str) or ctx.kind != TaskKind.MULTILABEL else vote:
                    if label not in ctx.labels:
                        invalid.add(str(label))
                        continue
                    rows.append({**base, "record_id": ctx.record_ids[i], "label_id": ctx.labels[label],
                                 "confidence": conf, "token_start": None, "token_end": None, "char_start": None,
                                 "char_end": None})
    table = LabelAssociation.__table__  # type: ignore[attr-defined]
    for start in range(0, len(rows), _INSERT_BATCH):
        session.execute(table.insert(), rows[start : start + _INSERT_BATCH])
    h.last_run_state = run.state
    h.last_run_at = utcnow()
    h.last_run_version = h.version if version is None else version
    h.last_run_duration_s = round(run.duration_s, 3)
    h.last_run_error = run.error
    h.last_run_failed_record = None if run.failed_record_id is None else str(run.failed_record_id)
    h.last_run_invalid_labels = sorted(invalid)
    h.last_run_invalid_spans = run.n_invalid_spans
    h.last_run_hits = len(rows)
    h.last_run_logs = run.logs[-20_000:]
    session.add(h)
    session.flush()
    bump_revision(session, ctx.project_id)
    return RunOutcome(heuristic_id=h.id or 0, name=h.name, state=run.state, hits=len(rows),
                      duration_s=run.duration_s, error=run.error, failed_record=h.last_run_failed_record,
                      invalid_labels=tuple(sorted(invalid)), invalid_spans=run.n_invalid_spans)


def run_heuristics(
    engine: Engine,
    *,
    project_id: int,
    task_id: int,
    heuristic_ids: Sequence[int] | None = None,
    progress: Progress | None = None,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
) -> list[RunOutcome]:
    """Run heuristics of a task on all its project's records and store their votes.

    Labeling functions run in one batch of worker processes (:func:`core.sandbox.run_programs`:
    the records are sent once, one worker per heuristic, as many at once as there are CPUs),
    then lookup-list heuristics in this process; each heuristic's votes are stored, in a
    transaction of their own, as soon as it finishes, so an interrupted run keeps what finished.

    Parameters
    ----------
    heuristic_ids
        Which heuristics; by default every labeling-function and lookup-list heuristic
        of the task (enabled or not: enabling only decides weak supervision).
    progress
        Called as ``progress(done, total)`` in this thread, ``total`` = records × heuristics.
    time_limit_s, memory_limit_mb
        Limits of each labeling function's whole run (see :mod:`core.sandbox`).

    Returns
    -------
    list of RunOutcome
        One per heuristic, in order; failures are reported there and on the heuristic.
    """
    with session_scope(engine) as session:
        task = _task(session, project_id, task_id)
        chosen = [h for h in list_heuristics(session, project_id=project_id, task_id=task_id)
                  if h.kind != HeuristicKind.EXTERNAL or (heuristic_ids is not None and h.id in heuristic_ids)]
        if heuristic_ids is not None:
            wanted = set(heuristic_ids)
            unknown = wanted - {h.id for h in chosen}
            if unknown:
                raise NotFoundError(f"No runnable heuristic with id(s) {sorted(unknown)} in task {task.name!r}.")
            chosen = [h for h in chosen if h.id in wanted]
            external = [h.name for h in chosen if h.kind == HeuristicKind.EXTERNAL]
            if external:
                raise ValidationError(
                    f"{', '.join(external)}: external heuristics are computed elsewhere, not run here."
                )
        if not chosen:
            raise ValidationError(f"Task {task.name!r} has no heuristic to run; add a labeling function first.")
        ctx = _context(session, task)
        if progress:
            progress(0, max(len(ctx.record_ids) * len(chosen), 1))
        jobs = _prepare(session, ctx, chosen)
    n = len(ctx.record_ids)
    total = max(n * len(jobs), 1)
    outcomes: dict[int, RunOutcome] = {}

    def store(job: _Job, run: sandbox.HeuristicRun) -> None:
        with session_scope(engine) as session:
            h = session.get(Heuristic, job.heuristic_id)
            if h is not None:  # else deleted while it ran
                outcomes[job.heuristic_id] = _store_run(session, h, run, ctx, version=job.version)

    functions = [job for job in jobs if job.kind == HeuristicKind.LABELING_FUNCTION]
    if functions:
        _run_functions(functions, ctx, total=total, progress=progress, on_run=store,
                       time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb)
    done = len(functions) * n
    for job in jobs:
        if job.kind != HeuristicKind.LABELING_FUNCTION:
            if progress:
                progress(done, total)
            store(job, _run_lookup(job, ctx))
            done += n
    if progress:
        progress(total, total)
    return [outcomes[job.heuristic_id] for job in jobs if job.heuristic_id in outcomes]


def _run_functions(
    jobs: Sequence[_Job], ctx: _Context, *, total: int, progress: Progress | None,
    on_run: Callable[[_Job, sandbox.HeuristicRun], None], time_limit_s: float, memory_limit_mb: int,
) -> None:
    """Run labeling-function heuristics in one sandbox batch: records pickled once, workers in parallel.

    Each still runs in its own worker with its own limits; ``on_run`` gets each run as it ends.
    A heuristic whose code is invalid fails on its own, before the batch starts.
    """
    by_name: dict[str, _Job] = {}
    programs = []
    for job in jobs:
        program = sandbox.Program(name=job.name, source=job.code, lookup_lists=job.lists)
        try:
            sandbox.check_program(program)
        except ValidationError as e:
            on_run(job, sandbox.HeuristicRun(name=job.name, state="failed", error=str(e)))
            continue
        by_name[job.name] = job
        programs.append(program)
    if not programs:
        return
    offset = (len(jobs) - len(programs)) * len(ctx.record_ids)

    def report(done: int, _total: int) -> None:
        if progress:
            progress(offset + done, total)

    try:
        sandbox.run_programs(
            programs, records=ctx.sandbox_records(), record_ids=ctx.keys, labels=list(ctx.labels),
            kind=ctx.sandbox_kind, token_counts=None if ctx.offsets is None else [len(o) for o in ctx.offsets],
            time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb, progress=report,
            on_run=lambda run: on_run(by_name[run.name], run),
        )
    except ValidationError as e:  # the records themselves: every function fails with the reason
        for program in programs:
            on_run(by_name[program.name], sandbox.HeuristicRun(name=program.name, state="failed", error=str(e)))


def preview_code(
    engine: Engine,
    *,
    project_id: int,
    task_id: int,
    code: str,
    record_key: str,
    time_limit_s: float = PREVIEW_TIME_LIMIT_S,
) -> list[PreviewResult]:
    """Run every function of ``code`` (saved or not) on one record, in the sandbox; nothing is stored.

    Raises
    ------
    ValidationError
        When the code does not define a labeling function or does not parse.
    NotFoundError
        When no record has that key.
    """
    names = sandbox.discover_functions(code)
    with session_scope(engine) as session:
        task = _task(session, project_id, task_id)
        found = session.execute(
            select(Record.id).where(Record.project_id == project_id, Record.key == str(record_key).strip())
        ).scalar()
        if found is None:
            raise NotFoundError(f"No record with id {record_key!r} in this project.")
        ctx = _context(session, task, record_ids=[int(found)])
        lists = _lists_for_code(code, names, lookup_terms_for_code(session, project_id=project_id))
    runs = sandbox.run_heuristics(
        code, records=ctx.sandbox_records(), record_ids=ctx.keys, labels=list(ctx.labels), kind=ctx.sandbox_kind,
        token_counts=None if ctx.offsets is None else [len(o) for o in ctx.offsets], lookup_lists=lists,
        time_limit_s=time_limit_s, max_workers=2,
    )
    out = []
    for name, run in runs.items():
        output: Any = None
        if run.state == RunState.FINISHED and run.votes:
            output = run.votes[0]
            if ctx.offsets is not None:
                text = _text(ctx.data[0].get(ctx.target))
                offs = ctx.offsets[0]
                output = [(label, s, e, text[offs[s][0] : offs[e - 1][1]]) for label, s, e in output or ()]
        out.append(PreviewResult(name=name, state=run.state, output=output, error=run.error, logs=run.logs,
                                 invalid_labels=tuple(sorted(run.invalid_labels))))
    return out
